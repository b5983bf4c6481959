"""``python -m rmsopt bench``: one optimizer step, side by side in one run.

For each RMSprop variant, dtype and size it times

* ``rmsopt``: ``RMSprop.step`` (the whole call, host overhead included);
* ``numpy``: the best in-place NumPy version we could write (no temporaries
  beyond one scratch array);
* ``torch``: ``torch.optim.RMSprop`` (CPU), when torch is installed;
* ``cuda``: ``RMSprop.step`` on device arrays (``backend="cuda"``, synchronised),
  when numba-cuda and a GPU are there (not the simulator);
* ``floor``: a Numba kernel with exactly the variant's memory traffic (read x,
  g and the state; write x and the state) and trivial arithmetic: what the
  machine's memory bandwidth allows.

Times are the minimum over repeats (the least disturbed run on a shared
machine), reported with their ratio to the floor. Then the per-iteration costs of
``minimize``, and the time to the first result (:func:`first_call_table`): the first
``opt.step`` and ``minimize`` calls of a fresh interpreter, with an empty kernel cache
(everything compiled) and a filled one.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from numba import njit, prange

from . import RMSprop, _config

VARIANTS = {
    "plain": dict(),
    "centered": dict(centered=True),
    "momentum": dict(momentum=0.9),
}


@njit(parallel=True, nogil=True)
def _floor1(x, g, a):
    for i in prange(x.size):
        s = a[i] + g[i]
        a[i] = s
        x[i] = x[i] + s


@njit(parallel=True, nogil=True)
def _floor2(x, g, a, b):
    for i in prange(x.size):
        s = a[i] + g[i]
        t = b[i] + s
        a[i] = s
        b[i] = t
        x[i] = x[i] + t


_serial_floors = (njit(nogil=True)(_floor1.py_func), njit(nogil=True)(_floor2.py_func))


def floor_step(x, g, states):
    """The same-traffic kernel: reads x, g and each state; writes x and each state.

    Threaded from the size where rmsopt's step is (:data:`rmsopt._config.PARALLEL_THRESHOLD`),
    serial below, as rmsopt is: a threaded floor at 1e3 elements times the threads' wake-up,
    not the memory (it made rmsopt look 50x faster than the floor).
    """
    parallel = x.size >= _config.PARALLEL_THRESHOLD
    kernels = (_floor1, _floor2) if parallel else _serial_floors
    kernels[len(states) - 1](x, g, *states)


def numpy_step(x, g, nu, scratch, lr, rho, eps, mu=None, buf=None, momentum=0.0):
    """RMSprop (torch semantics) in place with NumPy ufuncs and one scratch array."""
    nu *= rho
    np.multiply(g, g, out=scratch)
    scratch *= 1 - rho
    nu += scratch
    if mu is not None:
        mu *= rho
        np.multiply(g, 1 - rho, out=scratch)
        mu += scratch
        np.multiply(mu, mu, out=scratch)
        np.subtract(nu, scratch, out=scratch)
        np.maximum(scratch, 0, out=scratch)
        np.sqrt(scratch, out=scratch)
    else:
        np.sqrt(nu, out=scratch)
    scratch += eps
    np.divide(g, scratch, out=scratch)
    if buf is not None:
        buf *= momentum
        buf += scratch
        np.multiply(buf, lr, out=scratch)
    else:
        scratch *= lr
    x -= scratch


def _best(fn, repeats, budget):
    """Minimum time of ``fn()`` over ``repeats`` calls (fewer if ``budget`` seconds pass)."""
    fn()  # warm-up (compilation, page faults)
    best, start = np.inf, time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return best


def torch_step(n, dtype, kw):
    # torch's OpenMP threads otherwise spin for a while after each of its steps, taking the
    # cores from whichever contender runs next in the round. Read when torch's libgomp loads.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import torch
    except ImportError:
        return None
    p = torch.nn.Parameter(torch.ones(n, dtype=getattr(torch, np.dtype(dtype).name)))
    p.grad = torch.full_like(p, 0.5)
    opt = torch.optim.RMSprop([p], lr=1e-3, alpha=0.9, eps=1e-8,
                              centered=kw.get("centered", False), momentum=kw.get("momentum", 0))
    return opt.step


def _cuda_step(n, dtype, kw):
    """A synchronised ``RMSprop.step`` on device arrays, or None without a GPU."""
    try:
        from numba import cuda
    except ImportError:
        return None
    if cuda.config.ENABLE_CUDASIM or not cuda.is_available():
        return None
    x = cuda.to_device(np.ones(n, dtype=dtype))
    g = cuda.to_device(np.full(n, 0.5, dtype=dtype))
    opt = RMSprop(x, lr=1e-3, rho=0.9, eps=1e-8, backend="cuda", **kw)

    def step():
        opt.step(g)
        cuda.synchronize()

    return step


def best_interleaved(fns, repeats, budget):
    """Minimum time of each of ``fns`` (dict name -> callable), timed in rounds.

    Each round calls every contender once, so a disturbance of the shared machine
    hits them alike rather than one of them; at most ``repeats`` rounds, fewer if
    ``budget`` seconds pass.
    """
    for fn in fns.values():
        fn()  # warm-up (compilation, page faults)
    best, start = dict.fromkeys(fns, np.inf), time.perf_counter()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
        if time.perf_counter() - start > budget:
            break
    return best


def measure(variant, dtype, n, repeats=20, budget=8.0):
    """Times (seconds) of one step for each contender: dict name -> time (None if absent).

    The contenders run in interleaved rounds (see :func:`best_interleaved`).
    """
    kw = VARIANTS[variant]
    x = np.ones(n, dtype=dtype)
    g = np.full(n, 0.5, dtype=dtype)
    opt = RMSprop(x, lr=1e-3, rho=0.9, eps=1e-8, **kw)
    nu, scratch = np.zeros(n, dtype), np.empty(n, dtype)
    mu = np.zeros(n, dtype) if kw.get("centered") else None
    buf = np.zeros(n, dtype) if kw.get("momentum") else None
    lr, rho, eps, momentum = (dtype(v) for v in (1e-3, 0.9, 1e-8, kw.get("momentum", 0.0)))
    states = [s for s in (nu, mu, buf) if s is not None]
    fns = {"rmsopt": lambda: opt.step(g),
           "numpy": lambda: numpy_step(x, g, nu, scratch, lr, rho, eps, mu, buf, momentum),
           "torch": torch_step(n, dtype, kw),
           "cuda": _cuda_step(n, dtype, kw),
           "floor": lambda: floor_step(x, g, states)}
    times = best_interleaved({k: f for k, f in fns.items() if f is not None}, repeats, budget)
    return {k: times.get(k) for k in fns}


def traffic_bytes(variant, dtype, n):
    """Bytes a step must move: read x, g, each state; write x, each state."""
    states = 1 + ("centered" in variant) + ("momentum" in variant)
    return (3 + 2 * states) * n * np.dtype(dtype).itemsize


def table(sizes, variants=("plain", "centered", "momentum"), dtypes=(np.float32, np.float64),
          out=print):
    """Measure and print the table; returns the rows.

    ``sizes``: element counts, or a dict dtype -> element counts (the targets
    compare float32 at twice the float64 count: the same bytes).
    """
    import numba

    out(f"one step, {numba.get_num_threads()} threads; time [us] (ratio to the same-traffic floor)")
    header = f"{'variant':<9} {'dtype':<7} {'n':>9} {'floor GB/s':>10}"
    names = ("rmsopt", "numpy", "torch", "cuda", "floor")
    out(header + "".join(f"{k:>20}" for k in names) + f"{'torch/rmsopt':>14}")
    rows = []
    for variant in variants:
        for dtype in dtypes:
            for n in (sizes[dtype] if isinstance(sizes, dict) else sizes):
                t = measure(variant, dtype, int(n))
                gbs = traffic_bytes(variant, dtype, int(n)) / t["floor"] / 1e9
                cells = "".join(
                    f"{'-':>20}" if t[k] is None else f"{t[k] * 1e6:12.1f} ({t[k] / t['floor']:4.2f}x)"
                    for k in names)
                speedup = "-" if t["torch"] is None else f"{t['torch'] / t['rmsopt']:.2f}x"
                out(f"{variant:<9} {np.dtype(dtype).name:<7} {int(n):>9.0e} {gbs:10.1f}{cells}"
                    f"{speedup:>14}")
                rows.append(dict(variant=variant, dtype=np.dtype(dtype).name, n=int(n), **t))
    return rows


def threads_table(n, dtype=np.float64, threads=(1, 2), out=print):
    """Plain RMSprop and the floor at each thread count (``numba.set_num_threads``).

    Returns ``{threads: (rmsopt seconds, floor seconds)}``.
    """
    import numba

    before, rows = numba.get_num_threads(), {}
    out(f"\nthreads, plain RMSprop, {np.dtype(dtype).name}, n={int(n):.0e}: time [us] "
        "(ratio to the floor at the same thread count)")
    try:
        for k in threads:
            if k > numba.config.NUMBA_NUM_THREADS:
                continue
            numba.set_num_threads(k)
            t = measure("plain", dtype, int(n))
            rows[k] = (t["rmsopt"], t["floor"])
            out(f"  {k} thread{'s' if k > 1 else ' '}  rmsopt {t['rmsopt'] * 1e6:12.1f} "
                f"({t['rmsopt'] / t['floor']:4.2f}x)   floor {t['floor'] * 1e6:12.1f}")
    finally:
        numba.set_num_threads(before)
    return rows


def arrays_table(count=100, each=10_000, dtype=np.float64, repeats=50, budget=2.0, out=print):
    """One step over ``count`` arrays of ``each`` elements against one array of the same total.

    All arrays of an optimizer go through one kernel call (a task table), so
    many small arrays should cost about what one big array does. Returns
    ``(many seconds, one seconds)``.
    """
    xs = [np.ones(each, dtype) for _ in range(count)]
    gs = [np.full(each, 0.5, dtype) for _ in range(count)]
    x, g = np.ones(count * each, dtype), np.full(count * each, 0.5, dtype)
    many, one = RMSprop(xs, lr=1e-3), RMSprop(x, lr=1e-3)
    t = best_interleaved({"many": lambda: many.step(gs), "one": lambda: one.step(g)},
                          repeats, budget)
    t_many, t_one = t["many"], t["one"]
    out(f"\n{count} arrays of {each:.0e} vs one of {count * each:.0e} ({np.dtype(dtype).name}, "
        f"plain RMSprop): {t_many * 1e6:.1f} us vs {t_one * 1e6:.1f} us "
        f"({t_many / t_one:.2f}x)")
    return t_many, t_one


def torch_rmsprop_steps(total, tensors, dtype):
    """Step functions of ``rmsopt.torch.RMSprop`` and ``torch.optim.RMSprop``, side by side.

    Each contender gets its own ``tensors`` parameters of ``total // tensors`` elements
    (ones, with a gradient of 0.5) and torch's default hyperparameters.

    Parameters
    ----------
    total : int
        Elements over all the tensors of one contender.
    tensors : int
        Number of parameter tensors.
    dtype : torch.dtype or str
        ``torch.float32`` or ``torch.float64``, or its name (``"float32"``: a caller that
        passes the name need not import torch first, so that this function imports it with
        ``OMP_WAIT_POLICY`` set).

    Returns
    -------
    dict
        ``{"rmsopt.torch": step, "torch foreach": step, "torch for-loop": step}``: the bound
        ``step`` methods of ``rmsopt.torch.RMSprop`` and of ``torch.optim.RMSprop`` with
        ``foreach=True`` and ``foreach=False``.

    Raises
    ------
    ImportError
        If torch is not installed.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see torch_step
    import torch

    from . import torch as rmsopt_torch

    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype

    def params():
        ps = [torch.nn.Parameter(torch.ones(total // tensors, dtype=dtype)) for _ in range(tensors)]
        for p in ps:
            p.grad = torch.full_like(p, 0.5)
        return ps

    return {"rmsopt.torch": rmsopt_torch.RMSprop(params()).step,
            "torch foreach": torch.optim.RMSprop(params(), foreach=True).step,
            "torch for-loop": torch.optim.RMSprop(params(), foreach=False).step}


def torch_table(total=5_000_000, tensors=20, small=200, repeats=20, budget=10.0, out=print):
    """``rmsopt.torch.RMSprop`` against ``torch.optim.RMSprop`` (float32, CPU), one step.

    ``total`` parameters in ``tensors`` tensors, the contenders in interleaved rounds; then
    rmsopt.torch over ``small`` tensors against one tensor of the same total (the adapter's
    cost per tensor). Returns ``{name: seconds}`` (None, with a line saying so, without
    torch). Targets (#15): >= 3x faster than torch's best; ``small`` tensors <= 1.5x one.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see torch_step
    try:
        import torch
    except ImportError:
        out("\nrmsopt.torch vs torch.optim: skipped (torch is not installed)")
        return None
    import numba

    t = best_interleaved(torch_rmsprop_steps(total, tensors, torch.float32), repeats, budget)
    best_torch = min(t["torch foreach"], t["torch for-loop"])
    out(f"\nrmsopt.torch.RMSprop vs torch.optim.RMSprop, float32, {total:.0e} parameters in "
        f"{tensors} tensors ({numba.get_num_threads()} numba threads, {torch.get_num_threads()} "
        "torch threads): time [ms]")
    for name, seconds in t.items():
        ratio = seconds / t["rmsopt.torch"]
        out(f"  {name:<15} {seconds * 1e3:9.2f}   ({ratio:.2f}x rmsopt.torch)")
    out(f"  speed-up over torch's best: {best_torch / t['rmsopt.torch']:.2f}x (target >= 3x)")
    many = torch_rmsprop_steps(total, small, torch.float32)["rmsopt.torch"]
    one = torch_rmsprop_steps(total, 1, torch.float32)["rmsopt.torch"]
    spread = best_interleaved({"many": many, "one": one}, repeats, budget)
    out(f"  rmsopt.torch, {small} tensors vs one of the same total: {spread['many'] * 1e3:.2f} ms "
        f"vs {spread['one'] * 1e3:.2f} ms ({spread['many'] / spread['one']:.2f}x, target <= 1.5x)")
    return {**t, f"rmsopt.torch {small} tensors": spread["many"],
            "rmsopt.torch 1 tensor": spread["one"]}


# ------------------------------------------------------- minimize per iteration

def _rosen(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] * x[0]) ** 2


def _rosen_der(x):
    d = x[1] - x[0] * x[0]
    return np.array([-2.0 * (1.0 - x[0]) - 400.0 * x[0] * d, 200.0 * d])


rosen_jit, rosen_der_jit = njit(_rosen), njit(_rosen_der)


@njit
def _handwritten(x, iterations, lr, rho, eps):
    """RMSprop on Rosenbrock as a user would write it by hand in Numba."""
    nu = np.zeros_like(x)
    f = 0.0
    for _ in range(iterations):
        f = rosen_jit(x)
        g = rosen_der_jit(x)
        for k in range(x.size):
            nu[k] = rho * nu[k] + (1.0 - rho) * g[k] * g[k]
            x[k] -= lr * g[k] / (np.sqrt(nu[k]) + eps)
    return f


def _bare_python(x, iterations, lr, rho, eps):
    """The same loop in plain Python/NumPy, calling the Python fun and jac."""
    nu = np.zeros_like(x)
    for _ in range(iterations):
        _rosen(x)
        g = _rosen_der(x)
        nu *= rho
        nu += (1.0 - rho) * g * g
        x -= lr * g / (np.sqrt(nu) + eps)


def minimize_costs(iterations=20000, repeats=5, budget=5.0):
    """Seconds per iteration on 2-D Rosenbrock for each way of running RMSprop.

    Returns a dict: ``compiled`` (minimize with @njit fun and jac: the nopython
    loop) and ``handwritten`` (a hand-written @njit loop), both the marginal cost
    of an iteration (from runs of ``iterations`` and twice as many), with
    ``compiled_call`` the compiled loop's fixed cost per minimize call; ``python``
    (minimize with Python fun and jac), ``bare`` (a plain Python loop calling the
    same fun and jac) and ``lbfgsb`` (scipy's L-BFGS-B per iteration, for scale).
    """
    from scipy.optimize import minimize as scipy_minimize

    from . import minimize

    x0 = np.array([-1.5, 2.0])
    o = dict(lr=1e-3, rho=0.9, eps=1e-8, gtol=0.0)

    def marginal(run):
        short = _best(lambda: run(iterations), repeats, budget)
        long = _best(lambda: run(2 * iterations), repeats, budget)
        return (long - short) / iterations, 2 * short - long

    costs = {}
    costs["compiled"], costs["compiled_call"] = marginal(
        lambda n: minimize(rosen_jit, x0, jac=rosen_der_jit,
                           options=dict(o, maxiter=n, compiled=True)))
    costs["handwritten"], _ = marginal(lambda n: _handwritten(x0.copy(), n, 1e-3, 0.9, 1e-8))
    few = iterations // 10  # the Python loops are slower: fewer iterations, same per-iteration cost
    costs["python"] = _best(lambda: minimize(_rosen, x0, jac=_rosen_der,
                                             options=dict(o, maxiter=few)), repeats, budget) / few
    costs["bare"] = _best(lambda: _bare_python(x0.copy(), few, 1e-3, 0.9, 1e-8),
                          repeats, budget) / few
    nit = scipy_minimize(_rosen, x0, jac=_rosen_der, method="L-BFGS-B").nit
    costs["lbfgsb"] = _best(lambda: scipy_minimize(_rosen, x0, jac=_rosen_der,
                                                   method="L-BFGS-B"), repeats, budget) / nit
    return costs


def minimize_table(out=print, iterations=20000):
    """Print :func:`minimize_costs` with the two ratios the targets are about."""
    c = minimize_costs(iterations)
    out("\nminimize on 2-D Rosenbrock, time per iteration [us]")
    for name, label in (("compiled", "rmsopt.minimize, @njit fun/jac (compiled loop)"),
                        ("handwritten", "hand-written @njit RMSprop loop"),
                        ("python", "rmsopt.minimize, Python fun/jac"),
                        ("bare", "bare Python loop, same fun/jac"),
                        ("lbfgsb", "scipy L-BFGS-B (per iteration, for scale)")):
        out(f"  {label:<50} {c[name] * 1e6:9.3f}")
    out(f"  (compiled loop: plus {c['compiled_call'] * 1e3:.2f} ms once per minimize call)")
    for label, ratio, target in (
            ("compiled / hand-written", c["compiled"] / c["handwritten"], 2.0),
            ("Python objective / bare loop", c["python"] / c["bare"], 1.3)):
        out(f"  {label}: {ratio:.2f}x (target <= {target}"
            f"{'' if ratio <= target else '; MISSED'})")
    return c


# ------------------------------------------------------- minimize at scale

def _quadratic(x, c):
    """``f = sum(c (x - 1)^2) / 2`` and its gradient (``jac=True``), as NumPy users write it."""
    d = x - 1.0
    g = c * d
    return 0.5 * float(d @ g), g


@njit(parallel=True, nogil=True)
def _quadratic_jit(x, c):
    """:func:`_quadratic` in Numba, threaded, as Numba users write it."""
    g = np.empty_like(x)
    f = 0.0
    for i in prange(x.size):
        d = x[i] - 1.0
        g[i] = c[i] * d
        f += d * g[i]
    return 0.5 * f, g


def scale_problem(n, dtype, seed=0):
    """``(x0, c)`` of the quadratic at size ``n``: curvatures in [0.5, 2]."""
    c = np.random.default_rng(seed).uniform(0.5, 2.0, int(n)).astype(dtype)
    return np.zeros(int(n), dtype), c


def scale_contenders(n, dtype, iterations, lr=1e-3):
    """Callables that each run ``iterations`` RMSprop iterations of the quadratic at ``n``."""
    from . import minimize

    x0, c = scale_problem(n, dtype)
    options = dict(lr=lr, maxiter=iterations, gtol=0.0)

    def handwritten(fun):
        def run():
            w = x0.copy()
            opt = RMSprop(w, lr=lr)
            f, g = fun(w, c)
            for _ in range(iterations):
                opt.step(g)
                f, g = fun(w, c)
        return run

    def naive():
        x, nu = x0.copy(), np.zeros_like(x0)
        f, g = _quadratic(x, c)
        for _ in range(iterations):
            nu = 0.9 * nu + 0.1 * g * g
            x = x - lr * g / (np.sqrt(nu) + 1e-8)
            f, g = _quadratic(x, c)

    return {
        "minimize": lambda: minimize(_quadratic, x0, args=(c,), jac=True, options=options),
        "hand-written": handwritten(_quadratic),
        "minimize @njit": lambda: minimize(_quadratic_jit, x0, args=(c,), jac=True,
                                           options=options),
        "hand-written @njit": handwritten(_quadratic_jit),
        "naive numpy": naive,
    }


def peak_bytes(fn):
    """Peak bytes traced by ``tracemalloc`` while ``fn()`` runs, above what was held before
    (NumPy reports its array data to tracemalloc)."""
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def scale_costs(n, dtype, iterations=10, repeats=5, budget=20.0, memory=True):
    """Per-iteration seconds (and peak bytes) of each contender of :func:`scale_contenders`.

    The time of one iteration is the difference between runs of ``iterations`` and of
    ``2 * iterations`` divided by ``iterations`` (set-up and first evaluation cancel);
    peak memory is that of a run of ``iterations``.
    """
    short = scale_contenders(n, dtype, iterations)
    long = scale_contenders(n, dtype, 2 * iterations)
    fns = {**{("short", k): v for k, v in short.items()},
           **{("long", k): v for k, v in long.items()}}
    t = best_interleaved(fns, repeats, budget)
    out = {k: {"seconds": (t["long", k] - t["short", k]) / iterations} for k in short}
    if memory:
        for k, fn in short.items():
            out[k]["peak"] = peak_bytes(fn)
    return out


def scale_table(sizes=(1e6, 1e7), dtypes=(np.float32, np.float64), out=print, iterations=10):
    """Print :func:`scale_costs`: ms per iteration, ratio to the hand-written loop, peak MB."""
    out("\nminimize at scale: quadratic, jac=True, RMSprop; ms per iteration (ratio to the "
        "hand-written loop with the same fun), peak MB above the inputs")
    names = list(scale_contenders(2, np.float64, 1))
    out(f"{'dtype':<8} {'n':>6} " + " ".join(f"{k:>22}" for k in names))
    results = {}
    for dtype in dtypes:
        for n in sizes:
            c = scale_costs(n, dtype, iterations)
            results[np.dtype(dtype).name, n] = c
            cells = []
            for k in names:
                ref = c["hand-written @njit" if "njit" in k else "hand-written"]["seconds"]
                ms, ratio = c[k]["seconds"] * 1e3, c[k]["seconds"] / ref
                cells.append(f"{ms:8.2f} ({ratio:4.2f}x) {c[k]['peak'] / 2**20:5.0f}")
            out(f"{np.dtype(dtype).name:<8} {n:6.0e} " + " ".join(f"{s:>22}" for s in cells))
    return results


# ------------------------------------------------------- time to the first result

_OBJECTIVES = """
import numpy as np
from numba import njit

@njit
def rosen(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

@njit
def rosen_der(x):
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])
"""

#: The first calls :func:`first_call_times` times: name -> (set-up code, the call). The set-up
#: (imports, a README-style @njit objective's definition, not its compilation) is not timed.
FIRST_CALLS = {
    "first opt.step": ("import numpy as np, rmsopt\nx, g = np.ones(10), np.ones(10)",
                       "rmsopt.RMSprop(x).step(g)"),
    "first compiled minimize": (
        "import rmsopt" + _OBJECTIVES,
        "rmsopt.minimize(rosen, np.array([-1.5, 2.0]), jac=rosen_der, options={'maxiter': 100})"),
    # rmsopt's own share: Numba's one-time set-up (its first compile: 0.3-0.6 s), the
    # objective's compilation and scipy.optimize's import done beforehand, as a warm-up would
    "first compiled minimize, warmed-up objective": (
        "import rmsopt, scipy.optimize" + _OBJECTIVES
        + "x = np.zeros(2)\nx.flags.writeable = False  # minimize passes a read-only view\n"
          "rosen(x), rosen_der(x)",
        "rmsopt.minimize(rosen, np.array([-1.5, 2.0]), jac=rosen_der, options={'maxiter': 100})"),
    "first Python-objective minimize": (
        "import rmsopt" + _OBJECTIVES.replace("@njit\n", ""),
        "rmsopt.minimize(rosen, np.array([-1.5, 2.0]), jac=rosen_der, options={'maxiter': 100})"),
    # The floors under the rows above, for reading rmsopt's own share off them: Numba's
    # one-time set-up at its first compile or cache load (here of rmsopt's smallest kernel),
    # and the import of scipy.optimize, whose OptimizeResult minimize returns.
    "floor: Numba's first kernel (a trivial one)": (
        "import numpy as np, rmsopt\nfrom rmsopt._kernels import cpu\nx = np.ones(10)",
        "cpu.address(x)"),
    "floor: import scipy.optimize": ("import numpy as np, rmsopt", "import scipy.optimize"),
}

#: Targets of issue #12, seconds on an idle 2-core machine: (empty cache, filled cache).
FIRST_CALL_TARGETS = {
    "first opt.step": (1.0, None),
    "first compiled minimize": (2.0, 0.15),
    "first compiled minimize, warmed-up objective": (None, 0.15),
    "first Python-objective minimize": (None, 0.15),
    "floor: Numba's first kernel (a trivial one)": (None, None),
    "floor: import scipy.optimize": (None, None),
}

_TIMED = """
import time
{setup}
t0 = time.perf_counter()
{call}
print("first-call-seconds", time.perf_counter() - t0)
"""


def _package_parent():
    return str(pathlib.Path(__file__).resolve().parent.parent)


def first_call_seconds(setup, call, cache_dir):
    """Seconds of ``call`` in a fresh interpreter after ``setup``, kernel cache in ``cache_dir``.

    The interpreter imports this copy of rmsopt (its folder first on ``PYTHONPATH``);
    ``NUMBA_CACHE_DIR`` points the on-disk kernel cache (:mod:`rmsopt._kernels.cache`)
    at ``cache_dir``.
    """
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), RMSOPT_CACHE="1",
               PYTHONPATH=os.pathsep.join(filter(None, (_package_parent(),
                                                        os.environ.get("PYTHONPATH")))))
    out = subprocess.run([sys.executable, "-c", _TIMED.format(setup=setup, call=call)], env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"the first call failed:\n{out.stderr[-2000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("first-call-seconds")][-1]
    return float(line.split()[1])


def first_call_times(calls=None, repeats=3):
    """Cold and warm seconds of each first call, each in fresh interpreters.

    Cold: an empty kernel cache (a new temporary directory for every run), so the call
    compiles everything it needs. Warm: a cache filled by one run of the same call, as a
    second run of a script finds it. Each is the minimum over ``repeats`` runs, cold and
    warm interleaved (the least disturbed run on a shared machine).

    Parameters
    ----------
    calls : dict, optional
        name -> (set-up code, call code); default :data:`FIRST_CALLS`.
    repeats : int
        Runs of each kind.

    Returns
    -------
    dict
        name -> ``{"cold": seconds, "warm": seconds}``.
    """
    calls = FIRST_CALLS if calls is None else calls
    times = {name: {"cold": np.inf, "warm": np.inf} for name in calls}
    root = tempfile.mkdtemp(prefix="rmsopt-first-call-")
    try:
        for name, (setup, call) in calls.items():
            filled = pathlib.Path(tempfile.mkdtemp(prefix="filled-", dir=root))
            first_call_seconds(setup, call, filled)  # fills the cache (a cold run too)
            for _ in range(repeats):
                empty = pathlib.Path(tempfile.mkdtemp(prefix="empty-", dir=root))
                t = times[name]
                t["cold"] = min(t["cold"], first_call_seconds(setup, call, empty))
                t["warm"] = min(t["warm"], first_call_seconds(setup, call, filled))
                shutil.rmtree(empty, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return times


def first_call_table(calls=None, repeats=3, targets=None, out=print):
    """Print :func:`first_call_times` with the targets next to them; returns the times."""
    targets = FIRST_CALL_TARGETS if targets is None else targets
    t = first_call_times(calls, repeats)
    out(f"\ntime to the first result, after import, fresh interpreters (best of {repeats}); "
        "[s] (target)")
    width = max(map(len, t)) + 2
    out(f"  {'':<{width}}{'empty cache':<28}filled cache")
    for name, row in t.items():
        cells = []
        for kind, target in zip(("cold", "warm"), targets.get(name, (None, None))):
            mark = "" if target is None else \
                f" (<= {target:g}{'' if row[kind] <= target else '; MISSED'})"
            cells.append(f"{row[kind]:6.3f}{mark}".ljust(28))
        out(f"  {name:<{width}}" + "".join(cells).rstrip())
    return t
