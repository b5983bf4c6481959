"""One command for the day a CUDA GPU is lent: tests, golden runs and benchmarks in one go.

    python benchmarks/gpu_check.py [--out DIR] [--quick] [--skip-tests] [--budget S]

On a machine with a CUDA GPU (and ``pip install -e ".[test,cuda]"``, nothing else), within
``--budget`` seconds (default 450, compilation included; a phase that would start after it is
skipped and says so), it

1. prints the device (name, compute capability, SMs, memory, driver and runtime);
2. runs ``tests/test_cuda.py`` for real, not in the simulator (a pytest-xdist subprocess with
   a timeout, its log in ``DIR/pytest-cuda.log``), in the background while 3 runs in a pool
   of processes: both mostly compile kernels, on the CPU; the benchmarks wait for both;
3. replays the golden trajectories (``tests/golden``) on the CUDA backend: each case against
   its reference at the golden tolerance, and against the CPU backend in ULPs (float64 and
   float32), plus every configuration of ``tests/configs.py`` against the CPU in both dtypes;
4. times one optimizer step at n = 1e8, float32 and float64, plain, centered and momentum
   RMSprop: rmsopt's one-launch step, a device-to-device copy of the same bytes, a
   hand-written ``numba.cuda`` RMSprop kernel with the same traffic on the same arrays, and
   ``torch.optim.RMSprop(foreach=True)`` on CUDA when torch has CUDA; GB/s from
   :func:`rmsopt.bench.traffic_bytes` and the ratio to the copy (target: >= 0.85);
5. launch overhead: a step at n = 1e3 (synchronised latency, and per step in a pipelined
   run) against an empty kernel, and 100 arrays against one array of the same total;
6. ``minimize`` with a device ``x0`` at n = 1e7 per iteration, against the hand-written loop
   (``RMSprop.step`` plus the same objective);
7. a new process's first CUDA step, twice on one empty ``NUMBA_CACHE_DIR``: what an on-disk
   cache of the CUDA kernels saves (rmsopt caches only its CPU kernels so far: Numba's
   ``cache=True`` keys a kernel on its own bytecode and file, not on ``rules.py``, which would
   break the never-stale rule of :mod:`rmsopt._kernels.cache`);

and writes ``DIR/gpu-check.json`` (after every phase, so a run cut short keeps what it
measured) and ``DIR/gpu-check.md``. Without a GPU it says so in one line and exits 0.
Under ``NUMBA_ENABLE_CUDASIM=1`` it runs the same code at tiny sizes (``--quick``), which is
how the tests keep it from rotting. Exit status: 0, or 1 when a correctness check (the tests,
a golden case) failed; the performance targets are reported, never fatal.

Measuring is kept apart from arithmetic and formatting: the ``measure_*`` functions take a
``timer`` (``timer(fn) -> seconds`` of one call), :func:`best_of` times contenders in
interleaved rounds, and :func:`bandwidth_row`, :func:`launch_rows`, :func:`minimize_row`
and :func:`markdown` only compute and format, so the tests feed them fake timings.
Timing is ``synchronize; perf_counter; fn(); synchronize; perf_counter``, best of k
(the simulator has no timing events; at 1e8 the few microseconds of a synchronise do not
matter, and at 1e3 the empty kernel shows them).

This module is in asv's benchmark directory: it defines nothing asv would run (no
``time_``/``track_``/``peakmem_`` names) and imports ``numba.cuda`` only when called.
"""

import argparse
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.* (golden data, configurations) and a source checkout
    sys.path.insert(0, str(ROOT))

VARIANTS = ("plain", "centered", "momentum")
DTYPES = ("float32", "float64")
CONTENDERS = ("rmsopt", "handwritten", "torch")
TARGET_RATIO = 0.85  # rmsopt's step against the device copy of the same bytes
HYPER = dict(lr=1e-3, rho=0.9, eps=1e-8)

# Sizes and repeats: the real run, and --quick (the simulator: a Python thread per GPU thread).
FULL = dict(n=100_000_000, launch_n=1_000, arrays=100, arrays_each=(1_000, 10_000),
            minimize_n=10_000_000, minimize_iterations=20, repeats=20, budget=3.0,
            pipeline=100, threads=256, max_blocks=16_384, golden_cases=None, configs=None,
            config_shape=(64, 33), config_steps=10, test_timeout=240, golden_budget=150.0,
            golden_workers=8, test_workers=6)
QUICK = dict(n=2_048, launch_n=64, arrays=100, arrays_each=(8,), minimize_n=128,
             minimize_iterations=2, repeats=2, budget=1.0, pipeline=2, threads=8,
             max_blocks=2, golden_cases=3, configs=("rmsprop-centered-momentum", "adam-amsgrad",
                                                     "rmsprop-clip-norm"),
             config_shape=(3, 7), config_steps=3, test_timeout=240, golden_budget=60.0,
             golden_workers=2, test_workers=1)


# ------------------------------------------------------------------ the GPU

def gpu_status():
    """``("gpu" | "sim" | None, why)``: a real GPU, the simulator, or neither and why not."""
    try:
        from numba import cuda
    except ImportError as e:
        return None, f"numba-cuda is not installed ({e}; pip install -e '.[test,cuda]')"
    if cuda.config.ENABLE_CUDASIM:
        return "sim", "the CUDA simulator (NUMBA_ENABLE_CUDASIM=1): tiny sizes, no real timings"
    try:
        available = cuda.is_available()
    except Exception as e:  # a broken driver install
        return None, f"numba.cuda.is_available() raised {type(e).__name__}: {e}"
    if not available:
        return None, "numba.cuda.is_available() is False"
    try:
        if len(cuda.gpus) == 0:
            return None, "no CUDA device is visible (CUDA_VISIBLE_DEVICES?)"
    except Exception as e:
        return None, f"listing the CUDA devices raised {type(e).__name__}: {e}"
    return "gpu", ""


def _version(dist):
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def torch_cuda():
    """``torch`` when it is importable and has CUDA, else None."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


def device_info(cuda, mode):
    """What the run ran on, as a dict (JSON-ready)."""
    dev = cuda.get_current_device()
    info = dict(mode=mode, compute_capability=".".join(map(str, dev.compute_capability)))
    name = getattr(dev, "name", "CUDA simulator" if mode == "sim" else "?")
    info["name"] = name.decode() if isinstance(name, bytes) else str(name)
    try:
        info["sms"] = int(dev.MULTIPROCESSOR_COUNT)
    except Exception:
        info["sms"] = None
    free, total = cuda.current_context().get_memory_info()
    info["memory_free"] = float(free) if math.isfinite(free) else None
    info["memory_total"] = float(total) if math.isfinite(total) else None
    for key, get in (("runtime", lambda: cuda.runtime.get_version()),
                     ("driver", lambda: cuda.cudadrv.driver.get_version())):
        try:
            info[key] = ".".join(map(str, get()))
        except Exception:
            info[key] = None
    info["versions"] = {k: _version(k) for k in ("rmsopt", "numba", "numba-cuda", "llvmlite",
                                                 "numpy", "torch")}
    info["versions"]["python"] = platform.python_version()
    torch = torch_cuda()
    info["torch_cuda"] = None if torch is None else torch.version.cuda
    return info


def describe_device(info):
    """One line about the device."""
    mem = f", {info['memory_total'] / 2**30:.1f} GiB" if info.get("memory_total") else ""
    sms = f", {info['sms']} SMs" if info.get("sms") else ""
    return (f"device: {info['name']} (cc {info['compute_capability']}{sms}{mem}), "
            f"driver {info.get('driver')}, runtime {info.get('runtime')}, "
            f"numba-cuda {info['versions'].get('numba-cuda')}")


def fit_size(n, free, bytes_per_element, headroom=0.85):
    """``(n', note)``: ``n`` scaled down (two significant digits) if ``n`` elements of
    ``bytes_per_element`` bytes do not fit in ``headroom * free`` bytes; note is None if
    ``n`` fits (or ``free`` is unknown)."""
    if free is None or n * bytes_per_element <= headroom * free:
        return n, None
    m = headroom * free / bytes_per_element
    digits = 10 ** max(0, int(math.floor(math.log10(m))) - 1)
    m = max(digits, int(m // digits * digits))
    return m, (f"n scaled from {n:.0e} to {m:.2e}: {n * bytes_per_element / 1e9:.1f} GB needed, "
               f"{free / 1e9:.1f} GB free")


def bandwidth_bytes_per_element(dtypes=DTYPES, torch=True):
    """Peak device bytes per element of the bandwidth phase (its largest case).

    rmsopt's x, g and states (the hand-written kernel reuses them), the copy's two buffers
    (together the step's traffic), and torch's own parameter, gradient, states and about
    two temporaries of the foreach ops.
    """
    from rmsopt.bench import traffic_bytes

    worst = 0
    for dtype in dtypes:
        item = np.dtype(dtype).itemsize
        for variant in VARIANTS:
            states = 1 + ("centered" in variant) + ("momentum" in variant)
            need = (2 + states) * item + traffic_bytes(variant, dtype, 1)
            if torch:
                need += (4 + states) * item
            worst = max(worst, need)
    return worst


# --------------------------------------------------------------------- timing

class SyncTimer:
    """``timer(fn)``: the seconds of one ``fn()`` call, synchronised before and after."""

    def __init__(self, syncs, clock=time.perf_counter):
        self.syncs, self.clock = list(syncs), clock

    def _sync(self):
        for sync in self.syncs:
            sync()

    def __call__(self, fn):
        self._sync()
        t0 = self.clock()
        fn()
        self._sync()
        return self.clock() - t0


def best_of(fns, timer, repeats, budget, clock=time.perf_counter):
    """Time each of ``fns`` (name -> callable) in interleaved rounds: ``(best, first)``.

    ``first[name]`` is the warm-up call (compilation, first touch); ``best[name]`` the
    minimum over at most ``repeats`` rounds, fewer once ``budget`` seconds have passed (at
    least one round). A round calls every contender once, so a disturbance hits them alike.
    """
    first = {name: timer(fn) for name, fn in fns.items()}
    best, start = dict.fromkeys(fns, math.inf), clock()
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            best[name] = min(best[name], timer(fn))
        if clock() - start > budget:
            break
    return best, first


# ------------------------------------------------------ results (no measuring)

def bandwidth_row(variant, dtype, n, seconds, first=None):
    """GB/s of each contender and its ratio to the device copy, from ``seconds``
    (name -> best time or None; ``"copy"`` moves the step's bytes)."""
    from rmsopt.bench import traffic_bytes

    nbytes = traffic_bytes(variant, dtype, n)
    gbs = {k: nbytes / t / 1e9 for k, t in seconds.items() if t}
    ratio = {k: gbs[k] / gbs["copy"] for k in gbs if k != "copy"} if "copy" in gbs else {}
    return dict(variant=variant, dtype=np.dtype(dtype).name, n=int(n), bytes=int(nbytes),
                seconds=dict(seconds), gbs=gbs, ratio_to_copy=ratio,
                meets_target=ratio.get("rmsopt", 0.0) >= TARGET_RATIO if ratio else None,
                first_call_s=dict(first or {}))


def launch_rows(latency, pipelined, sizes):
    """Rows of the launch-overhead table from per-case seconds.

    ``latency[case]``: one synchronised call; ``pipelined[case]``: per call in a run of
    back-to-back calls; ``sizes[case]``: ``(arrays, elements each)``, None for the empty
    kernel. Each row carries its ratio to the empty kernel; a ``many``/``one`` pair of
    the same total is reported as ``many_vs_one``.
    """
    base = latency.get("empty kernel")
    rows = []
    for case, t in latency.items():
        row = dict(case=case, latency_us=t * 1e6, size=sizes.get(case))
        if case in pipelined:
            row["pipelined_us"] = pipelined[case] * 1e6
        if base:
            row["vs_empty_kernel"] = t / base
        rows.append(row)
    pairs = []
    for case, size in sizes.items():
        if size and size[0] > 1:
            one = next((c for c, s in sizes.items() if s == (1, size[0] * size[1])), None)
            if one is not None and case in latency and one in latency:
                pairs.append(dict(many=case, one=one,
                                  latency_ratio=latency[case] / latency[one],
                                  pipelined_ratio=(pipelined[case] / pipelined[one]
                                                   if case in pipelined and one in pipelined
                                                   else None)))
    return dict(rows=rows, many_vs_one=pairs)


def minimize_row(dtype, n, iterations, seconds):
    """Per-iteration costs of ``minimize`` on the device and of the hand-written loop.

    ``seconds``: ``minimize``/``loop`` runs of ``iterations`` and ``2 * iterations``
    (keys ``"minimize k"``, ``"minimize 2k"``, ``"loop k"``, ``"loop 2k"``; set-up and the
    first evaluation cancel in the difference), and one ``"step"`` and ``"objective"``.
    """
    per = {name: (seconds[f"{name} 2k"] - seconds[f"{name} k"]) / iterations
           for name in ("minimize", "loop")}
    return dict(dtype=np.dtype(dtype).name, n=int(n), iterations=int(iterations),
                minimize_ms=per["minimize"] * 1e3, loop_ms=per["loop"] * 1e3,
                ratio=per["minimize"] / per["loop"] if per["loop"] > 0 else None,
                step_ms=seconds["step"] * 1e3, objective_ms=seconds["objective"] * 1e3,
                seconds=dict(seconds))


def ulp_distance(a, b):
    """Largest distance in units in the last place between ``a`` and ``b`` (same dtype).

    Equal NaNs are 0 apart, a NaN against a number infinitely; values of opposite sign
    count the ULPs through zero (approximately, as a float).
    """
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.size == 0:
        return 0.0
    itype = np.int32 if a.dtype == np.float32 else np.int64

    def ordered(x):
        i = x.view(itype)
        return np.where(i < 0, np.iinfo(itype).min - i, i).astype(np.int64)

    oa, ob = ordered(a), ordered(b)
    same = (oa >= 0) == (ob >= 0)
    with np.errstate(over="ignore"):
        exact = np.abs(oa - ob).astype(np.float64)
    through_zero = np.abs(oa.astype(np.float64)) + np.abs(ob.astype(np.float64))
    d = np.where(same, exact, through_zero)
    na, nb = np.isnan(a), np.isnan(b)
    d = np.where(na & nb, 0.0, np.where(na | nb, np.inf, d))
    return float(d.max())


def scaled_difference(a, b):
    """``max|a - b| / (eps * max|b|)``: the tests' rounding-level measure (close_to_scale)."""
    a, b = np.asarray(a), np.asarray(b)
    scale = np.finfo(b.dtype).eps * np.max(np.abs(b)) if b.size else 0.0
    diff = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) if b.size else 0.0
    return float(diff / scale) if scale else (0.0 if diff == 0 else math.inf)


def parse_pytest_summary(text):
    """Counts from pytest's last summary line (``3 passed, 1 skipped in 2.0s``)."""
    counts = {}
    for line in reversed(text.splitlines()):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|"
                           r"warnings?)", line)
        if found and re.search(r"\bin [\d.]+s", line):
            for number, word in found:
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(number)
            break
    return counts


# ----------------------------------------------------------------- formatting

def count(n):
    """``1e8`` for powers of ten from 1000 on, else the number: ``64``, ``2.5e+07``."""
    n = int(n)
    if n >= 1000:
        e = int(round(math.log10(n)))
        return f"1e{e}" if 10 ** e == n else f"{n:.3g}"
    return str(n)


def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def markdown(report):
    """The report as Markdown: device, tests, golden, bandwidth, launch, minimize."""
    out = ["# rmsopt GPU check", ""]
    dev = report.get("device")
    if dev:
        out += [describe_device(dev), ""]
    for note in report.get("notes", []):
        out.append(f"- note: {note}")
    if report.get("notes"):
        out.append("")

    tests = report.get("tests")
    if tests:
        out += ["## tests/test_cuda.py on the device", ""]
        if tests.get("skipped"):
            out.append(f"skipped ({tests['skipped']})")
        else:
            counts = ", ".join(f"{v} {k}" for k, v in tests.get("counts", {}).items()) or "-"
            status = ("timed out" if tests.get("timed_out") else
                      "passed" if tests.get("returncode") == 0 else
                      f"FAILED (exit {tests.get('returncode')})")
            out.append(f"{status}: {counts} in {tests.get('seconds', 0):.0f} s "
                       f"(log: {tests.get('log')})")
        out.append("")

    golden = report.get("golden")
    if golden:
        out += ["## Golden trajectories and configurations on CUDA", ""]
        if golden.get("error"):
            out.append(f"error: {golden['error'].splitlines()[-1]}")
        cases = golden.get("cases", [])
        failed = [c["id"] for c in cases if not c.get("ok")]
        out.append(f"golden cases: {len(cases) - len(failed)}/{len(cases)} within tolerance of "
                   "the reference (float64)"
                   + (f"; failed: {', '.join(failed)}" if failed else ""))
        for c in cases:
            for key in ("error", "error_float32"):
                if c.get(key):
                    out.append(f"- {c['id']}: {key.replace('_', ' ')}: {c[key]}")
            if not c.get("ok") and "max_rel" in c:
                out.append(f"- {c['id']}: relative difference {_fmt(c['max_rel'], '.2e')} > "
                           f"{c['tolerance']:.0e}")
        if golden.get("stopped"):
            out.append(f"- stopped: {golden['stopped']}")
        for key, label in (("max_ulp_float64", "float64"), ("max_ulp_float32", "float32")):
            if key in golden:
                out.append(f"golden, CUDA against CPU, {label}: max {_fmt(golden[key], '.0f')} "
                           "ULP")
        configs = golden.get("configs", [])
        if configs:
            out += ["", "| configuration | dtype | max ULP (params) | max ULP (state) | "
                        "max diff / (eps max) |", "|---|---|---:|---:|---:|"]
            for c in configs:
                out.append(f"| {c['id']} | {c['dtype']} | {_fmt(c.get('ulp_params'), '.0f')} | "
                           f"{_fmt(c.get('ulp_state'), '.0f')} | {_fmt(c.get('scaled'), '.1f')} |"
                           + (f" error: {c['error']}" if c.get("error") else ""))
        out.append("")

    rows = report.get("bandwidth")
    if rows:
        out += ["## One step: bandwidth (GB/s, ratio to a device copy of the same bytes)", "",
                f"target: rmsopt >= {TARGET_RATIO:.0%} of the copy", "",
                "| variant | dtype | n | MB/step | copy GB/s | rmsopt | hand-written numba.cuda |"
                " torch foreach | target | rmsopt first call s |",
                "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        for r in rows:
            if r.get("error"):
                out.append(f"| {r['variant']} | {r['dtype']} | {_fmt(r.get('n'), '.0e')} | "
                           f"error: {r['error']} |")
                continue
            cells = []
            for k in CONTENDERS:
                g = r["gbs"].get(k)
                cells.append("-" if g is None else
                             f"{g:.4g} ({r['ratio_to_copy'][k]:.2f}x)" if k in r["ratio_to_copy"]
                             else f"{g:.4g}")
            target = {True: "yes", False: "NO", None: "-"}[r.get("meets_target")]
            out.append(f"| {r['variant']} | {r['dtype']} | {count(r['n'])} | "
                       f"{r['bytes'] / 1e6:.4g} | {_fmt(r['gbs'].get('copy'), '.4g')} | "
                       + " | ".join(cells)
                       + f" | {target} | {_fmt(r['first_call_s'].get('rmsopt'), '.2f')} |")
        out.append("")

    launch = report.get("launch")
    if launch:
        out += ["## Launch overhead (plain RMSprop, float32)", ""]
        if launch.get("error"):
            out.append(f"error: {launch['error'].splitlines()[-1]}")
        else:
            out += ["| case | synchronised us | pipelined us/step | vs empty kernel |",
                    "|---|---:|---:|---:|"]
            for r in launch["rows"]:
                out.append(f"| {r['case']} | {r['latency_us']:.1f} | "
                           f"{_fmt(r.get('pipelined_us'), '.1f')} | "
                           f"{_fmt(r.get('vs_empty_kernel'), '.2f')} |")
            for p in launch["many_vs_one"]:
                out.append(f"\n{p['many']} vs {p['one']}: {p['latency_ratio']:.2f}x synchronised, "
                           f"{_fmt(p['pipelined_ratio'], '.2f')}x pipelined")
        out.append("")

    mins = report.get("minimize")
    if mins:
        out += ["## minimize with a device x0 (quadratic, jac=True), ms per iteration", "",
                "| dtype | n | minimize | hand-written loop | ratio | step alone | objective |",
                "|---|---|---:|---:|---:|---:|---:|"]
        for r in mins:
            if r.get("error"):
                out.append(f"| {r['dtype']} | {_fmt(r.get('n'), '.0e')} | error: {r['error']} |")
                continue
            out.append(f"| {r['dtype']} | {count(r['n'])} | {r['minimize_ms']:.3f} | "
                       f"{r['loop_ms']:.3f} | {_fmt(r['ratio'], '.2f')} | {r['step_ms']:.3f} | "
                       f"{r['objective_ms']:.3f} |")
        out.append("")

    startup = report.get("startup")
    if startup:
        out += ["## A new process: first CUDA step (RMSprop, momentum, clip_norm), s", "",
                "| run | import + device arrays | first step (compile or load) | second step | "
                "cache files |", "|---|---:|---:|---:|---:|"]
        for i, r in enumerate(startup, 1):
            out.append(f"| {'cold' if i == 1 else 'warm'} cache | {r['import_s']:.2f} | "
                       f"{r['first_step_s']:.2f} | {r['second_step_s']:.4f} | {r['cache_files']} |")
        out.append("")

    for phase, text in report.get("errors", {}).items():
        out.append(f"- {phase}: error: {text.strip().splitlines()[-1]}")
    for phase, why in report.get("skipped_phases", {}).items():
        out.append(f"- {phase}: skipped ({why})")
    if "elapsed_s" in report:
        out.append(f"\nwall time {report['elapsed_s']:.0f} s")
    return "\n".join(out).rstrip() + "\n"


def _clean(obj):
    """JSON-ready: numpy scalars to Python, non-finite floats to strings, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def write_report(report, out_dir):
    """Write ``gpu-check.json`` (strict JSON) and ``gpu-check.md``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "gpu-check.json", out_dir / "gpu-check.md"
    js.write_text(json.dumps(_clean(report), indent=1, allow_nan=False) + "\n")
    md.write_text(markdown(report))
    return js, md


# ------------------------------------------------------------------- kernels

_kernels = {}
cuda = None  # numba.cuda, set by kernels(): the simulator swaps a kernel's *global* ``cuda``


def kernels(threads):
    """The script's own device kernels (built on first use, per block size)."""
    global cuda
    if threads in _kernels:
        return _kernels[threads]
    from numba import cuda

    @cuda.jit
    def fill(a, value):
        for i in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
            a[i] = value

    @cuda.jit
    def empty():
        pass

    # Hand-written RMSprop (torch's equations), as a user would write it: same traffic as
    # rmsopt's step (read x, g, the states; write x, the states).
    @cuda.jit
    def plain(x, g, nu, lr, rho, one_minus_rho, eps):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            gi = g[i]
            v = rho * nu[i] + one_minus_rho * gi * gi
            nu[i] = v
            x[i] -= lr * gi / (math.sqrt(v) + eps)

    @cuda.jit
    def centered(x, g, nu, mu, lr, rho, one_minus_rho, eps):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            gi = g[i]
            v = rho * nu[i] + one_minus_rho * gi * gi
            a = rho * mu[i] + one_minus_rho * gi
            nu[i] = v
            mu[i] = a
            x[i] -= lr * gi / (math.sqrt(v - a * a) + eps)

    @cuda.jit
    def momentum(x, g, nu, buf, lr, rho, one_minus_rho, eps, mom):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            gi = g[i]
            v = rho * nu[i] + one_minus_rho * gi * gi
            b = mom * buf[i] + gi / (math.sqrt(v) + eps)
            nu[i] = v
            buf[i] = b
            x[i] -= lr * b

    @cuda.jit
    def quadratic(x, c, one, g, f):
        """``g = c (x - 1)``; ``f[0] += sum(c (x - 1)^2) / 2`` (a block sum, one atomic);
        ``one`` has x's dtype, so a float32 objective computes in float32."""
        part = cuda.shared.array(threads, np.float64)
        lane = cuda.threadIdx.x
        acc = np.float64(0)
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            d = x[i] - one
            gi = c[i] * d
            g[i] = gi
            acc += np.float64(d) * np.float64(gi)
        part[lane] = acc
        cuda.syncthreads()
        w = threads // 2
        while w > 0:
            if lane < w:
                part[lane] += part[lane + w]
            cuda.syncthreads()
            w //= 2
        if lane == 0:
            cuda.atomic.add(f, 0, 0.5 * part[0])

    _kernels[threads] = dict(fill=fill, empty=empty, plain=plain, centered=centered,
                             momentum=momentum, quadratic=quadratic)
    return _kernels[threads]


def _grid(n, cfg):
    return max(1, min(-(-int(n) // cfg["threads"]), cfg["max_blocks"])), cfg["threads"]


def _device_full(cuda, n, value, dtype, cfg):
    """A device array of ``n`` elements equal to ``value``, filled on the device."""
    a = cuda.device_array(int(n), dtype=dtype)
    kernels(cfg["threads"])["fill"][_grid(n, cfg)](a, np.dtype(dtype).type(value))
    return a


def _release(cuda, torch=None):
    """Free what the last case left: Numba's deferred deallocations, torch's cache."""
    import gc

    gc.collect()
    try:
        cuda.current_context().deallocations.clear()
    except Exception:
        pass
    if torch is not None:
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ measuring

def torch_step(torch, variant, dtype, n, device="cuda"):
    """``torch.optim.RMSprop(foreach=True).step`` on one parameter of ``n`` elements."""
    from rmsopt.bench import VARIANTS as KW

    kw = KW[variant]
    p = torch.nn.Parameter(torch.ones(int(n), dtype=getattr(torch, np.dtype(dtype).name),
                                      device=device))
    p.grad = torch.full_like(p, 0.5)
    return torch.optim.RMSprop([p], lr=HYPER["lr"], alpha=HYPER["rho"], eps=HYPER["eps"],
                               centered=kw.get("centered", False),
                               momentum=kw.get("momentum", 0.0), foreach=True).step


def measure_bandwidth(cuda, variant, dtype, n, timer, cfg, torch=None):
    """``(seconds, first)`` of one step of each contender at ``n`` (see :func:`best_of`)."""
    try:
        return _bandwidth(cuda, variant, dtype, n, timer, cfg, torch)
    finally:  # the arrays of this case are unreachable now
        _release(cuda, torch)


def _bandwidth(cuda, variant, dtype, n, timer, cfg, torch):
    import rmsopt
    from rmsopt.bench import VARIANTS as KW
    from rmsopt.bench import traffic_bytes

    dtype = np.dtype(dtype)
    kw = KW[variant]
    k = kernels(cfg["threads"])
    x = _device_full(cuda, n, 1.0, dtype, cfg)
    g = _device_full(cuda, n, 0.5, dtype, cfg)
    opt = rmsopt.RMSprop(x, backend="cuda", **HYPER, **kw)
    nbytes = traffic_bytes(variant, dtype, n) // 2  # read once and written once: the traffic
    src = cuda.device_array(nbytes, dtype=np.uint8)
    dst = cuda.device_array(nbytes, dtype=np.uint8)
    s = dict(opt.state)  # the hand-written kernel runs on rmsopt's own arrays
    lr, rho, eps = (dtype.type(HYPER[key]) for key in ("lr", "rho", "eps"))
    omr, mom = dtype.type(1 - HYPER["rho"]), dtype.type(kw.get("momentum", 0.0))
    args = {"plain": (x, g, s["nu"], lr, rho, omr, eps),
            "centered": (x, g, s["nu"], s.get("mu"), lr, rho, omr, eps),
            "momentum": (x, g, s["nu"], s.get("buf"), lr, rho, omr, eps, mom)}[variant]
    hand = k[variant][_grid(n, cfg)]
    fns = {"copy": lambda: dst.copy_to_device(src), "rmsopt": lambda: opt.step(g),
           "handwritten": lambda: hand(*args)}
    if torch is not None:
        fns["torch"] = torch_step(torch, variant, dtype, n)
    return best_of(fns, timer, cfg["repeats"], cfg["budget"])


def measure_launch(cuda, timer, cfg):
    """Latency and pipelined per-step time of small steps, against an empty kernel."""
    try:
        return _launch(cuda, timer, cfg)
    finally:
        _release(cuda)


def _launch(cuda, timer, cfg):
    import rmsopt

    k = kernels(cfg["threads"])
    dtype = np.float32
    fns, sizes = {"empty kernel": lambda: k["empty"][1, cfg["threads"]]()}, {"empty kernel": None}

    def add(number, each):
        xs = [_device_full(cuda, each, 1.0, dtype, cfg) for _ in range(number)]
        gs = [_device_full(cuda, each, 0.5, dtype, cfg) for _ in range(number)]
        opt = rmsopt.RMSprop(xs if number > 1 else xs[0], backend="cuda", **HYPER)
        grads = gs if number > 1 else gs[0]
        name = f"{number} arrays of {count(each)}" if number > 1 else f"one array of {count(each)}"
        fns[name], sizes[name] = (lambda: opt.step(grads)), (number, each)

    add(1, cfg["launch_n"])
    for each in cfg["arrays_each"]:
        add(cfg["arrays"], each)
        add(1, cfg["arrays"] * each)
    latency, _ = best_of(fns, timer, cfg["repeats"], cfg["budget"])
    reps = cfg["pipeline"]

    def pipelined(fn):
        def run():
            for _ in range(reps):
                fn()
        return run

    pipe, _ = best_of({name: pipelined(fn) for name, fn in fns.items()}, timer,
                      max(1, cfg["repeats"] // 4), cfg["budget"])
    return launch_rows(latency, {name: t / reps for name, t in pipe.items()}, sizes)


def measure_minimize(cuda, dtype, n, timer, cfg):
    """The seconds :func:`minimize_row` needs: minimize and the hand-written loop on a device
    quadratic, ``k`` and ``2k`` iterations; one step; one objective evaluation."""
    try:
        return _minimize(cuda, dtype, n, timer, cfg)
    finally:
        _release(cuda)


def _minimize(cuda, dtype, n, timer, cfg):
    import rmsopt

    dtype = np.dtype(dtype)
    k = kernels(cfg["threads"])
    grid = _grid(n, cfg)
    rng = np.random.default_rng(0)
    c = cuda.to_device(rng.uniform(0.5, 2.0, int(n)).astype(dtype))
    x0 = _device_full(cuda, n, 0.0, dtype, cfg)
    g = cuda.device_array(int(n), dtype=dtype)
    f = cuda.device_array(1, dtype=np.float64)
    zero, one = np.zeros(1), dtype.type(1)

    def fun(x):
        f.copy_to_device(zero)
        k["quadratic"][grid](x, c, one, g, f)
        return float(f.copy_to_host()[0]), g  # minimize copies g (fun reuses it)

    iterations = cfg["minimize_iterations"]
    options = dict(lr=HYPER["lr"], gtol=0.0)

    def run_minimize(its):
        return lambda: rmsopt.minimize(fun, x0, jac=True, options=dict(options, maxiter=its))

    def run_loop(its):
        def run():
            w = cuda.device_array_like(x0)
            w.copy_to_device(x0)
            opt = rmsopt.RMSprop(w, backend="cuda", lr=HYPER["lr"])
            _, grad = fun(w)
            for _ in range(its):
                opt.step(grad)
                _, grad = fun(w)
        return run

    w = cuda.device_array_like(x0)
    w.copy_to_device(x0)
    opt = rmsopt.RMSprop(w, backend="cuda", lr=HYPER["lr"])
    fns = {"minimize k": run_minimize(iterations), "minimize 2k": run_minimize(2 * iterations),
           "loop k": run_loop(iterations), "loop 2k": run_loop(2 * iterations),
           "step": lambda: opt.step(g), "objective": lambda: fun(w)}
    seconds, _ = best_of(fns, timer, max(1, cfg["repeats"] // 4), cfg["budget"])
    return minimize_row(dtype, n, iterations, seconds)


# A new process's first CUDA step, timed in a child: run twice on one NUMBA_CACHE_DIR, the
# second run shows what an on-disk cache of the CUDA kernels saves (today: nothing, only the
# CPU kernels are cached; see the module's notes).
STARTUP = """
import json, time
t0 = time.perf_counter()
import numpy as np, rmsopt
from numba import cuda
x = cuda.to_device(np.ones(1000, np.float32))
g = cuda.to_device(np.full(1000, 0.5, np.float32))
cuda.synchronize()
t1 = time.perf_counter()
opt = rmsopt.RMSprop(x, backend="cuda", momentum=0.9, clip_norm=1.0)
opt.step(g)
cuda.synchronize()
t2 = time.perf_counter()
opt.step(g)
cuda.synchronize()
print(json.dumps(dict(import_s=t1 - t0, first_step_s=t2 - t1,
                      second_step_s=time.perf_counter() - t2)))
"""


def measure_startup(cache_dir, runs=2, timeout=120):
    """``STARTUP`` in ``runs`` new processes sharing the empty ``cache_dir``: their timings
    and the number of files the cache holds after each."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    rows = []
    for run in range(runs):
        out = subprocess.run([sys.executable, "-c", STARTUP], cwd=ROOT, env=env, timeout=timeout,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"startup run {run + 1} failed: {out.stderr[-2000:]}")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["cache_files"] = sum(1 for f in cache_dir.rglob("*") if f.is_file())
        rows.append(row)
    return rows


# -------------------------------------------------------- golden and configs

def replay_golden(case, backend, dtype, cuda=None):
    """The case's trajectory (steps x parameters) on ``backend`` in ``dtype``; the gradient
    is computed on the host from a copy of the parameters, as ``tests/test_golden.py``."""
    import rmsopt
    from tests import test_golden as tg

    p0 = np.array(tg.DATA["p0"], dtype=dtype)
    p = cuda.to_device(p0) if backend == "cuda" else p0
    opt = getattr(rmsopt, case["optimizer"])(p, backend=backend, **case["kwargs"])
    host = (lambda: p.copy_to_host()) if backend == "cuda" else (lambda: p.copy())
    out = []
    for lr in case["lrs"] or [None] * tg.DATA["steps"]:
        g = tg.gradient(host()).astype(dtype)
        opt.step(cuda.to_device(g) if backend == "cuda" else g, lr=lr)
        out.append(host())
    return np.array(out)


def golden_case(cuda, index):
    """Golden case ``index`` on CUDA: float64 against the reference at the golden tolerance
    (``ok``), and float64 and float32 against the CPU backend in ULPs."""
    from tests import test_golden as tg

    case = tg.CASES[index]
    entry = dict(kind="golden", id=case["id"], source=case["source"])
    try:
        want = np.array(case["trajectory"])
        got = replay_golden(case, "cuda", np.float64, cuda)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(got == want, 0.0, np.abs(got - want) / np.abs(want))
        entry["max_rel"] = float(rel.max()) if np.isfinite(rel).all() else math.inf
        entry["tolerance"] = getattr(tg, "tolerance", lambda case: tg.RTOL)(case)
        entry["ok"] = bool(np.isfinite(got).all() and (rel <= entry["tolerance"]).all())
        entry["ulp_float64"] = ulp_distance(got, replay_golden(case, "cpu", np.float64))
    except Exception as e:
        entry.update(ok=False, error=f"{type(e).__name__}: {e}")
        return entry
    try:  # float32 has no reference: CUDA against the CPU only, not part of ``ok``
        entry["ulp_float32"] = ulp_distance(replay_golden(case, "cuda", np.float32, cuda),
                                            replay_golden(case, "cpu", np.float32))
    except Exception as e:
        entry["error_float32"] = f"{type(e).__name__}: {e}"
    return entry


def config_case(cuda, name, dtype, shape, steps):
    """Configuration ``name`` of ``tests/configs.py``: CUDA against the CPU after ``steps``."""
    from tests.configs import CONFIGS
    from tests.test_backends import gradient

    row = dict(kind="config", id=name, dtype=np.dtype(dtype).name)
    try:
        cls, kwargs = next((c, k) for n, c, k in CONFIGS if n == name)
        x0 = np.random.default_rng(1).standard_normal(shape).astype(dtype)
        xc, xd = x0.copy(), cuda.to_device(x0)
        oc, od = cls(xc, backend="cpu", **kwargs), cls(xd, backend="cuda", **kwargs)
        for t in range(1, steps + 1):
            grad = gradient(xc, t)  # from the CPU's parameters: any difference shows
            oc.step(grad)
            od.step(cuda.to_device(grad))
        got = xd.copy_to_host()
        states = {k: (od.state[k].copy_to_host(), v) for k, v in oc.state.items()}
        row["ulp_params"] = ulp_distance(got, xc)
        row["ulp_state"] = max((ulp_distance(a, b) for a, b in states.values()), default=0.0)
        row["scaled"] = max([scaled_difference(got, xc)]
                            + [scaled_difference(a, b) for a, b in states.values()])
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def check_tasks(cfg):
    """The golden and configuration checks as independent tasks (for a pool of processes)."""
    from tests import test_golden as tg
    from tests.configs import CONFIGS

    count = len(tg.CASES) if not cfg["golden_cases"] else min(cfg["golden_cases"], len(tg.CASES))
    tasks = [("golden", i) for i in range(count)]
    for name, _, _ in CONFIGS:
        if not cfg["configs"] or name in cfg["configs"]:
            tasks += [("config", name, dtype) for dtype in DTYPES]
    return tasks


def run_check_task(task, cfg):
    from numba import cuda

    if task[0] == "golden":
        return golden_case(cuda, task[1])
    return config_case(cuda, task[1], task[2], cfg["config_shape"], cfg["config_steps"])


def _worker_init(simulator):
    if simulator:
        _shrink_for_simulator()


def golden_summary(entries, stopped=None):
    """The golden phase's result from its task results (in task order)."""
    cases = [e for e in entries if e["kind"] == "golden"]
    result = dict(cases=cases, configs=[e for e in entries if e["kind"] == "config"])
    for key in ("ulp_float64", "ulp_float32"):
        values = [c[key] for c in cases if key in c]
        result[f"max_{key}"] = max(values) if values else None
    if stopped:
        result["stopped"] = stopped
    return result


def golden_check(cfg, deadline, workers=1, simulator=False, clock=time.monotonic):
    """Run :func:`check_tasks` (in ``workers`` spawned processes: compilation dominates and
    is single-threaded) until ``deadline``; returns :func:`golden_summary`."""
    tasks = check_tasks(cfg)
    if workers <= 1:
        entries = []
        for task in tasks:
            if clock() > deadline:
                break
            entries.append(run_check_task(task, cfg))
        left = len(tasks) - len(entries)
        return golden_summary(entries, left and f"time budget spent: {left} checks not run")
    import concurrent.futures as cf
    import multiprocessing

    pool = cf.ProcessPoolExecutor(min(workers, len(tasks)),
                                  mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_worker_init, initargs=(simulator,))
    try:
        futures = [pool.submit(run_check_task, task, cfg) for task in tasks]
        cf.wait(futures, timeout=max(0.0, deadline - clock()))
        entries, left = [], 0
        for task, future in zip(tasks, futures):
            if future.done() and future.exception() is None:
                entries.append(future.result())
            elif future.done():
                entries.append(dict(kind=task[0], id=str(task[1]), ok=False,
                                    error=f"worker: {future.exception()!r}"))
            else:
                left += 1
        return golden_summary(entries, left and f"time budget spent: {left} checks not run")
    finally:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:  # the workers this function started, still compiling
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(5)


# ---------------------------------------------------------------- the tests

def start_tests(out_dir, workers=6):
    """Start ``pytest tests/test_cuda.py`` on the device (not the simulator) in the
    background; :func:`finish_tests` collects it."""
    log = Path(out_dir) / "pytest-cuda.log"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=10",
           "tests/test_cuda.py"]
    import importlib.util

    if workers > 1 and importlib.util.find_spec("xdist"):  # compilation spreads over processes
        cmd += ["-n", str(workers)]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    f = open(log, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    return dict(proc=proc, file=f, log=log, cmd=cmd, start=time.monotonic())


def finish_tests(handle, until):
    """Wait for the tests until the monotonic time ``until``, then kill them; the result."""
    proc, timed_out = handle["proc"], False
    try:
        rc = proc.wait(timeout=max(0.0, until - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # the pytest this script started, and its workers
        rc = proc.wait()
    handle["file"].close()
    text = handle["log"].read_text(errors="replace")
    return dict(command=" ".join(handle["cmd"]), returncode=rc, timed_out=timed_out,
                seconds=time.monotonic() - handle["start"], counts=parse_pytest_summary(text),
                log=str(handle["log"]), tail=text[-3000:])


# --------------------------------------------------------------------- main

def _shrink_for_simulator():
    """The tests' tiny launch shape: the simulator starts a Python thread per GPU thread."""
    from rmsopt import _config

    _config.CUDA_THREADS_PER_BLOCK, _config.CUDA_TASK_SIZE, _config.CUDA_MAX_BLOCKS = 4, 8, 2
    _config.REDUCE_LANES = 8


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu-check", help="folder for the JSON, Markdown and logs "
                   "(default ./gpu-check)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the simulator, a smoke test)")
    p.add_argument("--skip-tests", action="store_true", help="do not run tests/test_cuda.py")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run; "
                   "phases that would start after it are skipped (default 450)")
    p.add_argument("--n", type=float, default=None, help="elements of the bandwidth phase "
                   "(default 1e8)")
    p.add_argument("--test-timeout", type=float, default=None,
                   help="seconds for tests/test_cuda.py (default 240)")
    p.add_argument("--no-torch", action="store_true", help="leave torch out even if it has CUDA")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    mode, why = gpu_status()
    if mode is None:
        print(f"gpu_check: no CUDA GPU here ({why}); nothing to measure.")
        return 0

    start = time.monotonic()
    deadline = start + args.budget
    notes = []
    if mode == "sim" and not args.quick:
        notes.append("the CUDA simulator: --quick sizes forced")
        args.quick = True
    cfg = dict(QUICK if args.quick else FULL)
    if args.n:
        cfg["n"] = int(args.n)
    if args.test_timeout:
        cfg["test_timeout"] = args.test_timeout
    if mode == "sim":
        _shrink_for_simulator()
        notes.append("timings in the simulator measure Python, not a GPU")

    from numba import cuda

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(device=device_info(cuda, mode), quick=args.quick, notes=notes,
                  skipped_phases={}, started=time.strftime("%Y-%m-%d %H:%M:%S"))
    print(describe_device(report["device"]), flush=True)
    failed = False

    def save():
        report["elapsed_s"] = time.monotonic() - start
        write_report(report, out_dir)

    def phase(name, fn, need=0.0):
        """Run one phase unless the budget is spent; errors are recorded, not raised."""
        if time.monotonic() + need > deadline:
            report["skipped_phases"][name] = "time budget spent"
            return None
        t0 = time.monotonic()
        print(f"gpu_check: {name} ...", flush=True)
        try:
            return fn()
        except Exception:
            report.setdefault("errors", {})[name] = traceback.format_exc()
            print(f"gpu_check: {name} failed:\n{traceback.format_exc()}", flush=True)
            return None
        finally:
            report.setdefault("phase_seconds", {})[name] = time.monotonic() - t0
            save()

    save()
    # The tests (a subprocess) and the golden checks (a pool) compile kernels on the CPU side
    # at the same time; the benchmarks start once both are done, on a quiet machine.
    handle = None
    if args.skip_tests:
        report["tests"] = dict(skipped="--skip-tests")
    elif mode == "sim":
        report["tests"] = dict(skipped="the simulator: run NUMBA_ENABLE_CUDASIM=1 pytest "
                                       "tests/test_cuda.py instead")
    else:
        print("gpu_check: tests/test_cuda.py started in the background", flush=True)
        handle = start_tests(out_dir, cfg["test_workers"])
    try:
        tests_until = min(time.monotonic() + cfg["test_timeout"], deadline - 120)

        golden_deadline = min(deadline - 120, time.monotonic() + cfg["golden_budget"])
        golden = phase("golden", lambda: golden_check(cfg, golden_deadline, cfg["golden_workers"],
                                                      mode == "sim"))
        if golden is not None:
            report["golden"] = golden
            failed |= not golden["cases"] or not all(c.get("ok") for c in golden["cases"])
        failed |= "golden" in report.get("errors", {})

        if handle is not None:
            tests = phase("tests", lambda: finish_tests(handle, tests_until))
            if tests is not None:
                report["tests"] = tests
                failed |= tests["returncode"] != 0
                print(f"gpu_check: tests: exit {tests['returncode']}, {tests['counts']}"
                      + (" (timed out)" if tests["timed_out"] else ""), flush=True)
        save()

        torch = None if args.no_torch or mode == "sim" else torch_cuda()
        timer = SyncTimer([cuda.synchronize] + ([torch.cuda.synchronize] if torch else []))
        free, _ = cuda.current_context().get_memory_info()
        n, note = fit_size(cfg["n"], free if math.isfinite(free) else None,
                           bandwidth_bytes_per_element(torch=torch is not None))
        if note:
            notes.append(note)
        rows = report["bandwidth"] = []
        for variant in VARIANTS:
            for dtype in DTYPES:
                def one(variant=variant, dtype=dtype):
                    seconds, first = measure_bandwidth(cuda, variant, dtype, n, timer, cfg, torch)
                    return bandwidth_row(variant, dtype, n, seconds, first)

                row = phase(f"bandwidth {variant} {dtype}", one, need=10.0)
                if row is None and f"bandwidth {variant} {dtype}" in report.get("errors", {}):
                    err = report["errors"][f"bandwidth {variant} {dtype}"].strip().splitlines()[-1]
                    row = dict(variant=variant, dtype=dtype, n=n, error=err)
                if row is not None:
                    rows.append(row)
                    save()

        launch = phase("launch", lambda: measure_launch(cuda, timer, cfg), need=10.0)
        if launch is not None:
            report["launch"] = launch
        mins = report["minimize"] = []
        for dtype in DTYPES:
            r = phase(f"minimize {dtype}", lambda dtype=dtype: measure_minimize(
                cuda, dtype, cfg["minimize_n"], timer, cfg), need=10.0)
            if r is not None:
                mins.append(r)
        startup = phase("startup", lambda: measure_startup(out_dir / "startup-cache"), need=30.0)
        if startup is not None:
            report["startup"] = startup
        save()
        print(markdown(report), flush=True)
        print(f"gpu_check: wrote {out_dir / 'gpu-check.json'} and {out_dir / 'gpu-check.md'}")
        return 1 if failed else 0
    finally:  # interrupted (Ctrl-C, an error outside a phase): stop the tests this run started
        if handle is not None and handle["proc"].poll() is None:
            os.killpg(handle["proc"].pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
