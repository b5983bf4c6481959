"""rmsopt on Dask, on a real LocalCluster with two worker processes.

Chunked runs are compared with in-memory runs: the kernel is element-wise and the test
objectives compute each gradient element with the same operations in NumPy and in every
chunk, so iterates agree to the bit (clip_norm too, when chunks are multiples of the kernel's
task size). ``f`` is a Dask sum, which rounds differently from NumPy's: compared with a
tolerance.
"""

import concurrent.futures
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import Bounds, OptimizeWarning

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

import rmsopt  # noqa: E402
import rmsopt.dask  # noqa: E402
from rmsopt import _config, schedules  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_dask  # noqa: E402

example = bench_dask._example()  # examples/dask_least_squares.py; the workers import it


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def quad(x):
    return 0.5 * (x * x).sum()


def quad_grad(x):
    return 1.0 * x


def smoothing(n, chunks, dtype=np.float64):
    """x0, data and objective of the example's least squares, in memory and chunked."""
    x0 = np.linspace(-1, 1, n).astype(dtype)
    y = example.signal(n).astype(dtype)
    return x0, (y,), da.from_array(x0, chunks=chunks), (da.from_array(y, chunks=chunks),)


def both(method, options, x0, args, dx0, dargs, fun=example.fun, jac=example.jac, **kw):
    """The in-memory and the Dask result of the same run."""
    ref = rmsopt.minimize(fun, x0, args=args, method=method, jac=jac, options=options, **kw)
    res = rmsopt.minimize(fun, dx0, args=dargs, method=method, jac=jac, options=options, **kw)
    return ref, res


def assert_same_run(ref, res, chunks=None):
    assert isinstance(res.x, da.Array) and isinstance(res.jac, da.Array)
    if chunks is not None:
        assert res.x.chunks == chunks
    assert res.x.dtype == ref.x.dtype
    np.testing.assert_array_equal(res.x.compute(), ref.x)
    np.testing.assert_array_equal(res.jac.compute(), ref.jac)
    for key in ("nit", "nfev", "njev", "status", "success", "message"):
        assert res[key] == ref[key], key
    np.testing.assert_allclose(res.fun, ref.fun, rtol=1e-12 if ref.x.dtype == np.float64 else 1e-5)


# --------------------------------------------------------------------- packaging

def test_import_rmsopt_does_not_import_dask():
    code = ("import sys, numpy as np, rmsopt; "
            "rmsopt.minimize(lambda x: (x**2).sum(), np.ones(3), jac=lambda x: 2*x, "
            "options={'maxiter': 0}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------ same iterates as in memory

# Each rule variant compiles once per worker process: the tests share these few.
# RMSPROP has clip_norm on: a norm is computed every step, and clips only when it exceeds 1e6.
RMSPROP = dict(lr=0.01, centered=True, momentum=0.9, nesterov=True, weight_decay=0.01,
               clip_norm=1e6)
ADAM = dict(lr=0.05, amsgrad=True, weight_decay=0.1, decoupled_weight_decay=True)
CONFIGS = [("rmsprop", RMSPROP), ("adam", ADAM), ("sgd", dict(lr=0.02))]


@pytest.mark.parametrize("method,hyper", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_least_squares_same_iterates_as_in_memory(client, method, hyper):
    chunks = ((300, 250, 450),)
    x0, args, dx0, dargs = smoothing(1000, chunks)
    options = dict(hyper, maxiter=6, gtol=0.0, return_all=True)
    ref, res = both(method, options, x0, args, dx0, dargs)
    assert_same_run(ref, res, chunks)
    assert len(res.allvecs) == len(ref.allvecs) == 7
    for a, b in zip(dask.compute(*res.allvecs), ref.allvecs):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(res.history["fun"], ref.history["fun"], rtol=1e-12)
    np.testing.assert_array_equal(res.history["grad_norm"], ref.history["grad_norm"])


def test_float32_stays_float32_and_integers_become_float64(client):
    x0, args, dx0, dargs = smoothing(500, 200, np.float32)
    ref, res = both("sgd", dict(lr=0.01, maxiter=3), x0, args, dx0, dargs)
    assert res.x.dtype == np.float32 and res.jac.dtype == np.float32
    assert_same_run(ref, res)
    res = rmsopt.minimize(quad, da.arange(6, chunks=4), jac=quad_grad, method="sgd",
                          options=dict(maxiter=2))
    assert res.x.dtype == np.float64
    ref = rmsopt.minimize(quad, np.arange(6), jac=quad_grad, method="sgd",
                          options=dict(maxiter=2))
    np.testing.assert_array_equal(res.x.compute(), ref.x)


def test_clip_norm_bitwise_with_task_aligned_chunks(client):
    n = _config.TASK_SIZE + 5000  # two kernel tasks in memory
    options = dict(RMSPROP, clip_norm=1.0, maxiter=3, gtol=0.0)
    x0, args, dx0, dargs = smoothing(n, _config.TASK_SIZE)
    ref, res = both("rmsprop", options, x0, args, dx0, dargs)
    assert_same_run(ref, res)
    assert np.linalg.norm(ref.jac) > 1.0  # it did clip
    # other chunks add the partial sums of squares in another grouping: equal to rounding
    x0, args, dx0, dargs = smoothing(n, 7000)
    ref, res = both("rmsprop", options, x0, args, dx0, dargs)
    np.testing.assert_allclose(res.x.compute(), ref.x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("options,kw", [
    (dict(lr=schedules.warmup(schedules.cosine(0.05, 10), 2)), {}),
    (dict(lr=0.05), dict(bounds=Bounds(-0.2, 0.3))),
    (dict(lr=0.05), dict(bounds=[(-0.1 * i, None) for i in range(300)])),
], ids=["schedule", "scalar-bounds", "per-variable-bounds"])
def test_schedules_and_bounds_as_in_memory(client, options, kw):
    x0, args, dx0, dargs = smoothing(300, 128)
    ref, res = both("adam", dict(ADAM, **options, maxiter=5, gtol=0.0), x0, args, dx0, dargs,
                    **kw)
    assert_same_run(ref, res, ((128, 128, 44),))


# ------------------------------------------------------------------------ statuses

X0 = np.array([1.0, -2.0, 3.0, 0.5, -1.5])


def quad_both(options, fun=quad, jac=quad_grad, method="sgd", **kw):
    ref = rmsopt.minimize(fun, X0, jac=jac, method=method, options=options, **kw)
    res = rmsopt.minimize(fun, da.from_array(X0, chunks=2), jac=jac, method=method,
                          options=options, **kw)
    return ref, res


@pytest.mark.parametrize("options,status", [
    (dict(lr=0.9), 0), (dict(lr=0.3, ftol=1e-2), 2), (dict(lr=0.1, maxiter=4), 1),
])
def test_gtol_ftol_maxiter_stop_as_in_memory(client, options, status):
    ref, res = quad_both(options)
    assert res.status == status
    assert_same_run(ref, res)


def test_jac_true_counts_and_history(client, capsys):
    def fg(x):
        return quad(x), quad_grad(x)

    ref, res = quad_both(dict(lr=0.1, maxiter=4, history=True, disp=True), fun=fg, jac=True)
    assert (res.nit, res.nfev, res.njev) == (4, 5, 5)
    assert_same_run(ref, res)
    assert len(res.history["fun"]) == 5 and "Iterations: 4" in capsys.readouterr().out


def test_non_finite_stops_with_the_last_finite_iterate(client):
    def make():
        calls = {"n": 0}

        def f(x):
            calls["n"] += 1
            return np.nan if calls["n"] == 6 else quad(x)
        return f

    ref = rmsopt.minimize(make(), X0, jac=quad_grad, method="sgd", options=dict(lr=0.1))
    res = rmsopt.minimize(make(), da.from_array(X0, chunks=2), jac=quad_grad, method="sgd",
                          options=dict(lr=0.1))
    assert res.status == ref.status == 3 and not res.success and res.nit == 5
    np.testing.assert_array_equal(res.x.compute(), ref.x)
    assert res.fun == ref.fun


def test_nan_gradient_mid_run(client):
    def g(x):
        return np.where(abs(x) < 0.3, np.nan, x)  # NumPy or Dask, as x

    ref, res = quad_both(dict(lr=0.5, maxiter=20), jac=g)
    assert res.status == 3 and res.nit == 1 and isinstance(res.x, da.Array)
    np.testing.assert_array_equal(res.x.compute(), X0)
    np.testing.assert_array_equal(res.x.compute(), ref.x)


def test_callbacks_stop_iteration_and_keyboard_interrupt(client):
    seen = []

    def cb(intermediate_result):
        seen.append(intermediate_result)
        if intermediate_result.nit == 3:
            raise StopIteration

    ref, res = quad_both(dict(lr=0.1), callback=cb)
    assert res.status == 99 and res.nit == 3
    assert_same_run(ref, res)
    seen = seen[3:]  # the Dask run's (after the in-memory run's three)
    assert [r.nit for r in seen] == [1, 2, 3]
    assert all(isinstance(r.x, da.Array) and isinstance(r.jac, da.Array) for r in seen)
    np.testing.assert_array_equal(seen[-1].x.compute(), ref.x)

    xs = []
    rmsopt.minimize(quad, da.from_array(X0, chunks=2), jac=quad_grad, method="sgd",
                    options=dict(lr=0.1, maxiter=2), callback=xs.append)
    assert len(xs) == 2 and all(isinstance(x, da.Array) for x in xs)

    def make():
        calls = {"n": 0}

        def f(x):
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
            return quad(x)
        return f

    ref = rmsopt.minimize(make(), X0, jac=quad_grad, method="sgd", options=dict(lr=0.1))
    res = rmsopt.minimize(make(), da.from_array(X0, chunks=2), jac=quad_grad, method="sgd",
                          options=dict(lr=0.1))
    assert res.status == ref.status == 4 and res.nit == ref.nit == 4
    np.testing.assert_array_equal(res.x.compute(), ref.x)


# -------------------------------------------------------------------- mini-batches

def mse(w, X, y):
    r = X @ w - y
    return 0.5 * (r * r).mean()


def mse_grad(w, X, y):
    return X.T @ (X @ w - y) / len(y)


def regression(m=300, k=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, k))
    return X, X @ np.arange(1.0, k + 1) + 0.1 * rng.standard_normal(m)


def test_minibatches_repeatable_for_a_seed_and_as_in_memory(client):
    X, y = regression()
    dX = da.from_array(X, chunks=(70, 3))  # samples and parameters both chunked
    w0 = da.zeros(6, chunks=3)
    opts = dict(ADAM, batch_size=60, epochs=1, seed=3)

    def run(**o):
        return rmsopt.minimize(mse, w0, args=(dX, y), jac=mse_grad, method="adam",
                               options=dict(opts, **o))

    a, b, c = run(), run(), run(seed=4)
    np.testing.assert_array_equal(a.x.compute(), b.x.compute())
    assert not np.array_equal(a.x.compute(), c.x.compute())
    assert a.status == 5 and a.steps == a.nit == 5 and a.epochs == 1.0
    ref = rmsopt.minimize(mse, np.zeros(6), args=(X, y), jac=mse_grad, method="adam",
                          options=opts)
    # the same batches; only the sums of the matrix products round differently
    assert (a.nit, a.nfev, a.njev, a.status) == (ref.nit, ref.nfev, ref.njev, ref.status)
    np.testing.assert_allclose(a.x.compute(), ref.x, rtol=1e-10)
    np.testing.assert_allclose(a.fun, ref.fun, rtol=1e-10)


# ------------------------------------------------------------ chunks and the graph

def _keys_in_memory(dask_scheduler):
    return sum(ts.state == "memory" for ts in dask_scheduler.tasks.values())


def test_state_stays_chunked_and_persisted(client):
    x0, args, dx0, dargs = smoothing(1000, 300)
    dargs = client.persist(dargs)
    opt = rmsopt.dask.RMSprop(dx0, **RMSPROP)
    w = dx0
    for _ in range(5):
        w = opt.step(example.jac(w, *dargs))
    assert w is opt.params and opt.t == 5
    # the workers end up holding the current chunks only: parameters, nu, mu, buf and y
    distributed.wait([w, *opt.state.values()])
    expected, deadline = 5 * w.npartitions, time.monotonic() + 20
    while client.run_on_scheduler(_keys_in_memory) > expected and time.monotonic() < deadline:
        time.sleep(0.05)  # the client releases old keys asynchronously
    assert client.run_on_scheduler(_keys_in_memory) == expected
    for a in (w, *opt.state.values()):
        assert a.chunks == dx0.chunks
        assert len(a.__dask_graph__()) == a.npartitions  # the persisted chunks, no chain
    assert sorted(opt.state) == ["buf", "mu", "nu"]


@pytest.mark.parametrize("cls_name, kw", [("AdamW", dict(amsgrad=True)),
                                          ("LaProp", dict(weight_decay=0.1))])  # carries
def test_stateful_optimizer_matches_in_memory_on_2d_chunks(client, cls_name, kw):
    rng = np.random.default_rng(1)
    p = rng.standard_normal((40, 30))
    target = rng.standard_normal((40, 30))
    mem = p.copy()
    ref = getattr(rmsopt, cls_name)(mem, lr=0.05, **kw)
    dp = da.from_array(p, chunks=(16, 12))
    dtarget = da.from_array(target, chunks=(16, 12))
    opt = getattr(rmsopt.dask, cls_name)(dp, lr=0.05, **kw)
    for k in range(4):
        ref.step(mem - target, lr=0.05 / (k + 1))
        new = opt.step(opt.params - dtarget, lr=0.05 / (k + 1))
        np.testing.assert_array_equal(new.compute(), mem)
    np.testing.assert_array_equal(dp.compute(), p)  # the arrays given are unchanged
    for name, s in opt.state.items():
        np.testing.assert_array_equal(s.compute().reshape(-1), ref.state[name])
    assert cls_name in repr(opt) and opt.hyper == ref.hyper and opt.dtype == np.float64


def test_stateful_clip_norm(client):
    n = _config.TASK_SIZE + 100
    g = np.random.default_rng(2).standard_normal(n) * 10
    mem = np.zeros(n)
    hyper = dict(RMSPROP, clip_norm=1.0)
    rmsopt.RMSprop(mem, **hyper).step(g)
    opt = rmsopt.dask.RMSprop(da.zeros(n, chunks=_config.TASK_SIZE), **hyper)
    np.testing.assert_array_equal(opt.step(da.from_array(g, chunks=5000)).compute(), mem)


def test_threads_stepping_one_optimizer_take_turns(client):
    """Each step is computed from the one before and counted: SGD ends at minus the sum of
    all gradients, exactly, and ``t`` counts every step."""
    opt = rmsopt.dask.SGD(da.zeros(64, chunks=16), lr=1.0)
    steps, threads = 5, 4

    def work(k):
        for _ in range(steps):
            opt.step(np.full(64, k + 1.0))

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    assert opt.t == steps * threads
    np.testing.assert_array_equal(opt.params.compute(), -steps * sum(range(1, threads + 1)))


DASK_INTERRUPT_SCRIPT = """
import os, random, signal, threading, time
import dask, dask.array as da, numpy as np
import rmsopt.dask

dask.config.set(scheduler="synchronous")  # (a SIGINT can deadlock a thread pool's own locks)
opt = rmsopt.dask.RMSprop(da.zeros(4096, chunks=1024), lr=1.0, momentum=0.5)
g = da.ones(4096, chunks=1024)
opt.step(g)
start = time.perf_counter(); opt.step(g); step = time.perf_counter() - start
rng, interrupted, torn = random.Random(0), 0, 0
for trial in range(20):
    timer = threading.Timer(rng.uniform(0.0, 2 * step), os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        while True:
            opt.step(g)
    except KeyboardInterrupt:
        interrupted += 1
    timer.join()
    twin = rmsopt.dask.RMSprop(da.zeros(4096, chunks=1024), lr=1.0, momentum=0.5)
    for _ in range(opt.t):
        twin.step(g)
    torn += not (np.array_equal(opt.params.compute(), twin.params.compute()) and all(
        np.array_equal(opt.state[k].compute(), twin.state[k].compute()) for k in opt.state))
print(interrupted, torn)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself is POSIX")
def test_ctrl_c_during_step_is_all_or_nothing():
    """A real SIGINT at random moments of a Dask step loop: parameters, state and ``t`` are
    afterwards those of ``t`` whole steps."""
    out = subprocess.run([sys.executable, "-c", DASK_INTERRUPT_SCRIPT], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    interrupted, torn = map(int, out.stdout.split())
    assert interrupted == 20 and torn == 0


# ---------------------------------------------------------------------- bad input

@pytest.mark.parametrize("x0,exc,match", [
    (da.zeros((2, 3), chunks=1), ValueError, "one dimension"),
    (da.from_array(np.array([1.0, np.nan]), chunks=1), ValueError, "x0 contains NaN"),
    (da.zeros(4, chunks=2, dtype=np.float16), ValueError, "float16"),
    (da.zeros(4, chunks=2, dtype=complex), ValueError, "complex"),
    (da.zeros(0, chunks=2), ValueError, "x0 is empty"),
])
def test_bad_x0(client, x0, exc, match):
    with pytest.raises(exc, match=match):
        rmsopt.minimize(quad, x0, jac=quad_grad)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(jac=None), ValueError, "finite differences"),
    (dict(jac="3-point"), ValueError, "finite differences"),
    (dict(jac=lambda x: x[:-1]), ValueError, r"shape \(4,\); expected \(5,\)"),
    (dict(fun=lambda x: x, jac=quad_grad), ValueError, "must return a scalar"),
    (dict(options=dict(lr=-1.0)), ValueError, "Invalid lr value"),
    (dict(options=dict(momentum=1.5)), ValueError, "Invalid momentum"),
    (dict(options=dict(backend="numpy")), ValueError, "CPU kernel"),
])
def test_bad_calls(client, kwargs, exc, match):
    kwargs = dict(dict(fun=quad, jac=quad_grad), **kwargs)
    with pytest.raises(exc, match=match):
        rmsopt.minimize(x0=da.from_array(X0, chunks=2), **kwargs)


def test_unknown_option_warns(client):
    with pytest.warns(OptimizeWarning, match="Unknown solver options: bogus"):
        rmsopt.minimize(quad, da.from_array(X0, chunks=2), jac=quad_grad, method="sgd",
                        options=dict(maxiter=1, bogus=1))


@pytest.mark.parametrize("params,exc,match", [
    (np.zeros(3), TypeError, "params must be a dask array"),
    (da.zeros(3, dtype=int, chunks=2), ValueError, "float32 or float64"),
    (da.from_array(np.array([np.inf, 1.0]), chunks=1), ValueError, "NaN or inf"),
])
def test_stateful_bad_params(client, params, exc, match):
    with pytest.raises(exc, match=match):
        rmsopt.dask.RMSprop(params)


def test_stateful_bad_grad_and_hyper(client):
    opt = rmsopt.dask.RMSprop(da.zeros(4, chunks=2))
    with pytest.raises(ValueError, match="shape"):
        opt.step(da.zeros(5, chunks=2))
    with pytest.raises(TypeError, match="real array"):
        opt.step(np.array(["a"] * 4))
    assert opt.t == 0
    with pytest.raises(ValueError, match="Invalid rho"):
        rmsopt.dask.RMSprop(da.zeros(4, chunks=2), rho=1.5)


# ------------------------------------------------------- example and benchmark run

def test_example_runs_on_an_existing_cluster(client):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "dask_least_squares.py"), "--n", "2000",
         "--chunks", "1000", "--maxiter", "2", "--memory", "--scheduler",
         client.scheduler.address],
        capture_output=True, text=True, check=True, timeout=120)
    assert "identical iterates: True" in out.stdout, out.stdout + out.stderr


def test_benchmark_runs(client):
    bench = bench_dask.Overhead()
    n = 10**4  # smaller than the benchmark's sizes: a smoke run
    bench.setup(n)
    try:
        for name in dir(bench):
            if name.startswith(("time_", "track_")):
                getattr(bench, name)(n)
    finally:
        bench.teardown(n)
