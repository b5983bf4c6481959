"""``benchmarks/gpu_check.py``, the script for the day a GPU is lent, kept from rotting without one.

* the no-GPU path (no device visible; numba-cuda missing): one line, exit status 0, no files;
* the arithmetic and formatting with fake timings: GB/s, ratios to the copy, the Markdown rows,
  strict JSON, ULP distances, the pytest summary, the memory fit, the timing loop;
* its own kernels compile to PTX (float32 ones with no float64 instruction), as on a GPU;
* end to end in the CUDA simulator, ``--quick --skip-tests`` (a subprocess, about 30-45 s):
  every phase runs, the JSON and Markdown are written, and the simulator's CUDA results equal
  the CPU's bit for bit (0 ULP).
"""

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(ROOT))

from benchmarks import gpu_check as gc  # noqa: E402

try:
    from numba import cuda
except ImportError:
    cuda = None
SIMULATOR = cuda is not None and bool(cuda.config.ENABLE_CUDASIM)


def run_script(*args, env=None, timeout=300, code=None):
    cmd = [sys.executable, "-c", code] if code else [sys.executable, str(SCRIPT), *args]
    return subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------ without a GPU

def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(tmp_path):
    # No device visible (also on a machine with a GPU); --budget 0 --skip-tests keeps a run that
    # found one anyway short, and it then fails on the line count.
    out = run_script("--out", str(tmp_path / "out"), "--skip-tests", "--budget", "0",
                     env={"NUMBA_ENABLE_CUDASIM": "0", "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU here"), out.stdout
    assert not (tmp_path / "out").exists()


def test_without_numba_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    code = textwrap.dedent(f"""
        import runpy, sys
        class Block:  # numba-cuda not installed
            def find_spec(self, name, path=None, target=None):
                if name.startswith(("numba.cuda", "numba_cuda")):
                    raise ImportError("No module named " + repr(name))
        sys.meta_path.insert(0, Block())
        sys.argv = ["gpu_check.py", "--out", {str(tmp_path / "out")!r}]
        try:
            runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
        except SystemExit as e:
            sys.exit(e.code)
    """)
    out = run_script(code=code, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and "numba-cuda is not installed" in lines[0], out.stdout
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ fake timings

def test_bandwidth_row_from_fake_timings():
    # plain float32 at 1e8: read x, g, nu; write x, nu: 5 * 4e8 bytes = 2 GB per step
    row = gc.bandwidth_row("plain", np.float32, 10**8,
                           {"copy": 0.5e-3, "rmsopt": 0.625e-3, "handwritten": 0.5e-3,
                            "torch": None}, first={"rmsopt": 1.5})
    assert row["bytes"] == 2 * 10**9
    assert row["gbs"]["copy"] == pytest.approx(4000.0)
    assert row["gbs"]["rmsopt"] == pytest.approx(3200.0)
    assert row["ratio_to_copy"] == pytest.approx({"rmsopt": 0.8, "handwritten": 1.0})
    assert "torch" not in row["gbs"] and row["meets_target"] is False
    # centered float64: x, g, nu, mu read, x, nu, mu written: 7 * 8 bytes per element
    row = gc.bandwidth_row("centered", "float64", 10**6, {"copy": 56e-6, "rmsopt": 64e-6})
    assert row["bytes"] == 56 * 10**6 and row["gbs"]["copy"] == pytest.approx(1000.0)
    assert row["ratio_to_copy"]["rmsopt"] == pytest.approx(0.875) and row["meets_target"]


def fake_report():
    bandwidth = [gc.bandwidth_row(v, d, 10**8, {"copy": 1e-3, "rmsopt": 1.1e-3,
                                               "handwritten": 1.05e-3, "torch": 2e-3},
                                  {"rmsopt": 2.0})
                 for v, d in itertools.product(gc.VARIANTS, gc.DTYPES)]
    sizes = {"empty kernel": None, "one array of 1e3": (1, 1000),
             "100 arrays of 1e3": (100, 1000), "one array of 1e5": (1, 100_000)}
    latency = {"empty kernel": 5e-6, "one array of 1e3": 20e-6, "100 arrays of 1e3": 60e-6,
               "one array of 1e5": 30e-6}
    pipelined = {k: v / 2 for k, v in latency.items()}
    minimize = gc.minimize_row("float64", 10**7, 20, {
        "minimize k": 0.1, "minimize 2k": 0.3, "loop k": 0.05, "loop 2k": 0.2,
        "step": 2e-3, "objective": 4e-3})
    return dict(
        device=dict(mode="gpu", name="Fake GPU", compute_capability="9.0", sms=132,
                    memory_total=141e9, memory_free=140e9, driver="12.4", runtime="12.9",
                    versions={"numba-cuda": "0.30.4"}),
        notes=["n scaled"], tests=dict(returncode=0, counts={"passed": 90, "skipped": 3},
                                       seconds=61.0, log="gpu-check/pytest-cuda.log"),
        golden=gc.golden_summary([
            dict(kind="golden", id="torch-rmsprop", ok=True, max_rel=1e-15, tolerance=1e-9,
                 ulp_float64=2.0, ulp_float32=1.0),
            dict(kind="golden", id="keras-bad", ok=False, max_rel=1e-3, tolerance=1e-9,
                 ulp_float64=math.inf, ulp_float32=3.0),
            dict(kind="config", id="rmsprop", dtype="float32", ulp_params=1.0, ulp_state=0.0,
                 scaled=0.5)]),
        bandwidth=bandwidth, launch=gc.launch_rows(latency, pipelined, sizes),
        minimize=[minimize], startup=[dict(import_s=2.0, first_step_s=3.0, second_step_s=1e-4,
                                           cache_files=10)] * 2,
        errors={"minimize float32": "Traceback...\nValueError: boom\n"},
        skipped_phases={"launch": "time budget spent"}, elapsed_s=300.0)


def test_launch_and_minimize_from_fake_timings():
    report = fake_report()
    rows = {r["case"]: r for r in report["launch"]["rows"]}
    assert rows["one array of 1e3"]["latency_us"] == pytest.approx(20.0)
    assert rows["one array of 1e3"]["pipelined_us"] == pytest.approx(10.0)
    assert rows["one array of 1e3"]["vs_empty_kernel"] == pytest.approx(4.0)
    (pair,) = report["launch"]["many_vs_one"]
    assert pair["many"] == "100 arrays of 1e3" and pair["one"] == "one array of 1e5"
    assert pair["latency_ratio"] == pytest.approx(2.0) and pair["pipelined_ratio"] == 2.0
    m = report["minimize"][0]
    # (0.3 - 0.1) / 20 s = 10 ms per iteration; the loop (0.2 - 0.05) / 20 = 7.5 ms
    assert m["minimize_ms"] == pytest.approx(10.0) and m["loop_ms"] == pytest.approx(7.5)
    assert m["ratio"] == pytest.approx(4 / 3) and m["step_ms"] == pytest.approx(2.0)
    g = report["golden"]
    assert g["max_ulp_float64"] == math.inf and g["max_ulp_float32"] == 3.0
    assert [c["id"] for c in g["configs"]] == ["rmsprop"]


def test_markdown_has_the_expected_rows():
    md = gc.markdown(fake_report())
    assert md.startswith("# rmsopt GPU check\n")
    assert "device: Fake GPU (cc 9.0, 132 SMs, 131.3 GiB), driver 12.4" in md
    assert "passed: 90 passed, 3 skipped in 61 s" in md
    assert "golden cases: 1/2 within tolerance" in md and "failed: keras-bad" in md
    assert "golden, CUDA against CPU, float64: max - ULP" in md  # inf: a NaN mismatch
    assert "| rmsprop | float32 | 1 | 0 | 0.5 |" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and "1e8" in line]
    assert len(table) == 6
    # 2 GB (plain float32: 5 * 4e8 bytes) in 1 ms: 2000 GB/s; rmsopt 1/1.1 of it
    assert ("| plain | float32 | 1e8 | 2000 | 2000 | 1818 (0.91x) | 1905 (0.95x) | 1000 (0.50x) "
            "| yes | 2.00 |") in table
    assert table[-1].startswith("| momentum | float64 | 1e8 | 5600 | 5600 | 5091 (0.91x) |")
    assert "| one array of 1e3 | 20.0 | 10.0 | 4.00 |" in md
    assert "100 arrays of 1e3 vs one array of 1e5: 2.00x synchronised, 2.00x pipelined" in md
    assert "| float64 | 1e7 | 10.000 | 7.500 | 1.33 | 2.000 | 4.000 |" in md
    assert "| cold cache | 2.00 | 3.00 | 0.0001 | 10 |" in md
    assert "- minimize float32: error: ValueError: boom" in md
    assert "- launch: skipped (time budget spent)" in md


def test_report_files_are_strict_json_and_markdown(tmp_path):
    report = fake_report()
    js, md = gc.write_report(report, tmp_path / "out")
    data = json.loads(js.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert data["golden"]["max_ulp_float64"] == "inf"
    assert len(data["bandwidth"]) == 6 and data["bandwidth"][0]["gbs"]["rmsopt"] > 0
    assert md.read_text() == gc.markdown(report)


def test_best_of_interleaves_and_keeps_the_minimum():
    calls = []
    times = {"a": iter([9.0, 3.0, 2.0, 5.0]), "b": iter([8.0, 1.0, 4.0, 0.5])}
    fns = {k: (lambda k=k: calls.append(k) or next(times[k])) for k in times}
    best, first = gc.best_of(fns, lambda fn: fn(), repeats=3, budget=100.0)
    assert first == {"a": 9.0, "b": 8.0} and best == {"a": 2.0, "b": 0.5}
    assert calls == ["a", "b"] * 4  # warm-up, then rounds of one call each
    clock = iter(range(100)).__next__  # a second per reading: the budget of 1 s ends round 1
    calls.clear()
    times = {"a": iter([1.0, 1.0]), "b": iter([1.0, 1.0])}
    gc.best_of(fns, lambda fn: fn(), repeats=10, budget=0.5, clock=clock)
    assert calls == ["a", "b"] * 2


def test_sync_timer_synchronises_around_the_call():
    events, now = [], iter([10.0, 10.25])
    timer = gc.SyncTimer([lambda: events.append("sync")], clock=lambda: next(now))
    assert timer(lambda: events.append("call")) == 0.25
    assert events == ["sync", "call", "sync"]


def test_fit_size_scales_n_down_with_a_note():
    assert gc.fit_size(10**8, 200e9, 136) == (10**8, None)
    assert gc.fit_size(10**8, None, 136) == (10**8, None)
    n, note = gc.fit_size(10**8, 8e9, 136)
    assert n == 50_000_000 and "scaled from 1e+08 to 5.00e+07" in note  # 0.85 * 8e9 / 136
    assert n * 136 <= 0.85 * 8e9
    assert gc.bandwidth_bytes_per_element(torch=False) == 4 * 8 + 7 * 8
    assert gc.bandwidth_bytes_per_element() == 4 * 8 + 7 * 8 + 6 * 8


def test_ulp_distance():
    a = np.array([1.0, -2.0, 0.0, 1e300], dtype=np.float64)
    assert gc.ulp_distance(a, a.copy()) == 0
    b = np.nextafter(np.nextafter(a, np.inf), np.inf)
    assert gc.ulp_distance(a, b) == 2
    f = np.array([1.0, -3.5], dtype=np.float32)
    assert gc.ulp_distance(f, np.nextafter(f, np.float32(0))) == 1
    tiny = np.array([np.finfo(np.float32).smallest_subnormal], np.float32)
    assert gc.ulp_distance(tiny, -tiny) == 2  # through zero (0.0 and -0.0 are equal)
    assert gc.ulp_distance(np.array([0.0]), np.array([-0.0])) == 0
    assert gc.ulp_distance(np.array([np.nan, 1.0]), np.array([np.nan, 1.0])) == 0
    assert gc.ulp_distance(np.array([np.nan]), np.array([1.0])) == math.inf
    assert gc.scaled_difference(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0
    assert gc.scaled_difference(np.array([2.0 + 4 * 2.0**-52]), np.array([2.0])) == \
        pytest.approx(2.0)


def test_parse_pytest_summary():
    text = "....s.F\n== slowest 10 durations ==\n1.00s call t.py::x\n" \
           "1 failed, 92 passed, 3 skipped, 1 warning in 61.20s (0:01:01)\n"
    assert gc.parse_pytest_summary(text) == {"failed": 1, "passed": 92, "skipped": 3,
                                             "warnings": 1}
    assert gc.parse_pytest_summary("== 2 passed, 1 error in 3.0s ==") == {"passed": 2,
                                                                           "errors": 1}
    assert gc.parse_pytest_summary("killed") == {}


def test_finish_tests_collects_and_kills_after_the_deadline(tmp_path):
    def handle(code):
        log = tmp_path / f"log{len(list(tmp_path.iterdir()))}"
        f = open(log, "w")
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
        return dict(proc=proc, file=f, log=log, cmd=["pytest"], start=time.monotonic())

    done = gc.finish_tests(handle("print('3 passed, 1 skipped in 0.10s')"), time.monotonic() + 60)
    assert done["returncode"] == 0 and not done["timed_out"]
    assert done["counts"] == {"passed": 3, "skipped": 1}
    t0 = time.monotonic()
    late = gc.finish_tests(handle("import time; print('started', flush=True); time.sleep(60)"),
                           time.monotonic() + 1.0)
    assert late["timed_out"] and late["returncode"] != 0 and time.monotonic() - t0 < 30


def test_count_labels():
    assert [gc.count(n) for n in (64, 1000, 10**8, 2048, 25_000_000)] == [
        "64", "1e3", "1e8", "2.05e+03", "2.5e+07"]


def test_nothing_in_it_is_an_asv_benchmark():
    """The script lives in asv's benchmark directory: asv must find nothing to run in it."""
    prefixes = ("time_", "timeraw_", "track_", "peakmem_", "mem_")
    names = [n for n in vars(gc) if n.startswith(prefixes)]
    names += [f"{n}.{m}" for n, obj in vars(gc).items() if isinstance(obj, type)
              for m in vars(obj) if m.startswith(prefixes)]
    assert names == []


@pytest.mark.skipif(cuda is None or SIMULATOR, reason="PTX: numba-cuda without the simulator")
def test_the_scripts_kernels_compile_to_ptx():
    """The hand-written kernels are what a GPU compiles: float32 ones have no float64 (a fair
    contender); the quadratic accumulates in float64 by design."""
    import numba

    try:
        cuda.compile_ptx(lambda a: None, (numba.types.float32[::1],), cc=(7, 5))
    except Exception as e:
        pytest.skip(f"cuda.compile_ptx is unavailable here: {e}"[:200])
    k = gc.kernels(256)
    for dtype in (np.float32, np.float64):
        a, s = numba.from_dtype(dtype)[::1], numba.from_dtype(dtype)
        sigs = dict(fill=(a, s), empty=(), plain=(a, a, a, s, s, s, s),
                    centered=(a, a, a, a, s, s, s, s), momentum=(a, a, a, a, s, s, s, s, s),
                    quadratic=(a, a, s, a, numba.types.float64[::1]))
        for name, sig in sigs.items():
            ptx, _ = cuda.compile_ptx(k[name].py_func, sig, cc=(7, 5))
            assert ".entry" in ptx, name
            if dtype == np.float32 and name != "quadratic":
                assert ".f64" not in ptx, name


def test_torch_contender_builds_on_the_cpu():
    torch = pytest.importorskip("torch")
    for variant in gc.VARIANTS:
        step = gc.torch_step(torch, variant, np.float32, 16, device="cpu")
        step()
        (p,) = step.__self__.param_groups[0]["params"]
        assert p.dtype == torch.float32 and float(p.detach()[0]) < 1.0


# ---------------------------------------------------------- the simulator

@pytest.mark.skipif(cuda is None, reason="numba-cuda is not installed")
def test_quick_run_in_the_simulator_end_to_end(tmp_path):
    out_dir = tmp_path / "out"
    t0 = time.monotonic()
    out = run_script("--quick", "--skip-tests", "--out", str(out_dir),
                     env={"NUMBA_ENABLE_CUDASIM": "1"}, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert time.monotonic() - t0 < 120
    data = json.loads((out_dir / "gpu-check.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert data["device"]["mode"] == "sim" and data["quick"] is True
    assert not data.get("errors"), data.get("errors")
    assert not data["skipped_phases"]
    assert data["tests"] == {"skipped": "--skip-tests"}
    rows = data["bandwidth"]
    assert [(r["variant"], r["dtype"]) for r in rows] == list(itertools.product(gc.VARIANTS,
                                                                                gc.DTYPES))
    for r in rows:
        assert r["n"] == gc.QUICK["n"] and set(r["gbs"]) == {"copy", "rmsopt", "handwritten"}
        assert all(v > 0 for v in r["gbs"].values())
    cases = {r["case"] for r in data["launch"]["rows"]}
    assert {"empty kernel", "one array of 64", "100 arrays of 8", "one array of 800"} <= cases
    assert [m["dtype"] for m in data["minimize"]] == list(gc.DTYPES)
    assert len(data["startup"]) == 2
    golden = data["golden"]
    assert len(golden["cases"]) == gc.QUICK["golden_cases"]
    assert all(c["ok"] for c in golden["cases"]), golden["cases"]
    # The simulator runs the rules as Python: the same bits as the CPU backend.
    assert golden["max_ulp_float64"] == 0 and golden["max_ulp_float32"] == 0
    assert len(golden["configs"]) == 2 * len(gc.QUICK["configs"])
    for c in golden["configs"]:
        assert "error" not in c and c["ulp_params"] == 0 and c["ulp_state"] == 0, c
    md = (out_dir / "gpu-check.md").read_text()
    for heading in ("## Golden trajectories", "## One step: bandwidth", "## Launch overhead",
                    "## minimize with a device x0", "## A new process"):
        assert heading in md
    assert "| plain | float32 | 2.05e+03 |" in md and "| momentum | float64 |" in md
    assert "device: CUDA simulator" in out.stdout
