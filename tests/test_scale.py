"""minimize without copies per iteration: what the copies were for, kept without them.

The host loop keeps x in two buffers and steps out of place (the kernel reads one buffer
and writes the other), fun and jac get read-only views, the memo compares with the other
buffer, and the best iterate is copied only when a step would overwrite it.
"""

import numpy as np
import pytest
from numba import njit

import rmsopt
from rmsopt import _config
from rmsopt import backend as _backend
from rmsopt.bench import peak_bytes

from .configs import CONFIGS, IDS

N = 200_000  # threaded steps (above the parallel threshold), small enough for a test


def quadratic(x, c):
    d = x - 1.0
    g = c * d
    return 0.5 * float(d @ g), g


def problem(n=N, dtype=np.float64):
    c = np.random.default_rng(0).uniform(0.5, 2.0, n).astype(dtype)
    return np.zeros(n, dtype), c


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_out_of_place_step_equals_the_step_in_place(name, cls, kwargs, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1000).astype(dtype)
    a, b = x.copy(), x.copy()
    inplace, twin = cls(a, **kwargs), cls(b, **kwargs)
    other = np.full_like(b, np.nan)
    bufs = _backend.Buffers([b]), _backend.Buffers([other])
    cur = 0
    for t in range(5):
        g = (np.cos(a * (t + 1)) * 3).astype(dtype)
        before = (b if cur == 0 else other).copy()
        inplace.step(g)
        twin.apply([g], twin.hyper["lr"], bufs[cur], bufs[1 - cur])
        assert (b if cur == 0 else other).tobytes() == before.tobytes()  # the source is read only
        cur = 1 - cur
        assert a.tobytes() == (b if cur == 0 else other).tobytes()
        for s, s2 in zip(inplace.state.values(), twin.state.values()):
            assert s.tobytes() == s2.tobytes()


def test_fun_writing_into_x_does_not_corrupt_the_iterate():
    """scipy's test_x_overwritten_user_function: fun and jac overwrite their argument."""
    def fquad(x):
        a = np.arange(x.size)
        x -= a
        x *= x
        return np.sum(x)

    def fquad_jac(x):
        a = np.arange(x.size)
        x *= 2
        x -= 2 * a
        return x

    x0 = np.zeros(3)
    res = rmsopt.minimize(fquad, x0, jac=fquad_jac, options=dict(lr=0.05, maxiter=3000))
    np.testing.assert_allclose(res.x, np.arange(3), atol=2e-4)
    clean = rmsopt.minimize(lambda x: np.sum((x - np.arange(3)) ** 2), x0,
                            jac=lambda x: 2 * (x - np.arange(3)),
                            options=dict(lr=0.05, maxiter=3000))
    assert res.x.tobytes() == clean.x.tobytes()
    assert (res.nit, res.nfev, res.njev) == (clean.nit, clean.nfev, clean.njev)  # counted once


def test_a_njit_fun_writing_into_x_gets_a_copy():
    @njit
    def f(x):
        x[0] = 99.0
        return 0.0

    res = rmsopt.minimize(f, np.zeros(2), method="sgd", jac=lambda x: np.ones(2),
                          options=dict(lr=0.1, maxiter=3, compiled=False))
    assert res.nit == 3 and res.nfev == 4
    np.testing.assert_allclose(res.x, -0.3)


def test_fun_and_jac_get_read_only_views_of_the_iterate():
    seen = []

    def f(x):
        seen.append((x.flags.writeable, x.copy()))
        return float(x @ x)

    res = rmsopt.minimize(f, np.ones(4), jac=lambda x: 2 * x, options=dict(maxiter=5))
    assert not any(w for w, _ in seen)
    assert len({c.tobytes() for _, c in seen}) == res.nfev == 6


@pytest.mark.parametrize("jac_true", [True, False])
def test_a_reused_gradient_buffer_gives_the_same_run(jac_true):
    """A function that returns the same array every call: the loop keeps its own copy of
    the previous gradient (for the non-finite stop), so nothing changes."""
    out = np.empty(3)

    def g_reused(x):
        np.multiply(x, np.arange(1.0, 4.0), out=out)
        return out

    def f(x):
        v = 0.5 * float(np.sum(np.arange(1.0, 4.0) * x * x))
        return (v, g_reused(x)) if jac_true else v

    def f_fresh(x):
        v = 0.5 * float(np.sum(np.arange(1.0, 4.0) * x * x))
        return (v, np.arange(1.0, 4.0) * x) if jac_true else v

    x0 = np.array([1.0, -2.0, 0.5])
    opts = dict(lr=0.01, maxiter=50, return_all=True)
    a = rmsopt.minimize(f, x0, jac=True if jac_true else g_reused, options=opts)
    b = rmsopt.minimize(f_fresh, x0, jac=True if jac_true else (lambda x: np.arange(1.0, 4.0) * x),
                        options=opts)
    assert a.x.tobytes() == b.x.tobytes() and a.jac.tobytes() == b.jac.tobytes()
    assert all(u.tobytes() == v.tobytes() for u, v in zip(a.allvecs, b.allvecs))


@pytest.mark.parametrize("compiled,reuse", [(False, False), (False, True), (True, False)])
def test_non_finite_stop_returns_the_gradient_of_the_iterate_returned(compiled, reuse):
    """res.jac belongs to res.x (it used to be the non-finite gradient). A compiled
    objective returns fresh arrays, so only the Python loop meets a reused one."""
    out = np.empty(2)

    def fg(x):
        g = 2 * x
        if reuse:
            out[:] = g
            g = out
        return float(x @ x) if x[0] > 0.5 else np.nan, g

    if compiled:
        f = njit(lambda x: float(x @ x) if x[0] > 0.5 else np.nan)
        res = rmsopt.minimize(f, np.array([1.0, 1.0]), jac=njit(lambda x: 2 * x),
                              options=dict(lr=0.1, compiled=True))
    else:
        res = rmsopt.minimize(fg, np.array([1.0, 1.0]), jac=True, options=dict(lr=0.1))
    assert res.status == 3 and res.x[0] > 0.5
    np.testing.assert_array_equal(res.jac, 2 * res.x)
    assert res.fun == float(res.x @ res.x)


def test_ctrl_c_returns_the_best_iterate_after_f_went_up():
    """The best iterate is copied into a third buffer only when a step would overwrite it;
    a run whose f rises (lr too large) and is then interrupted returns it."""
    xs, fs = [], []

    def f(x):
        if len(fs) == 40:
            raise KeyboardInterrupt
        v = float(np.sum(x * x))
        xs.append(x.copy()), fs.append(v)
        return v

    res = rmsopt.minimize(f, np.array([3.0, -2.0, 1.0]), jac=lambda x: 2 * x,
                          options=dict(lr=0.5, momentum=0.9))
    k = int(np.argmin(fs))
    assert res.status == 4 and 0 < k < len(fs) - 2 and max(fs[k + 1:]) > fs[k]
    assert res.x.tobytes() == xs[k].tobytes() and res.fun == fs[k]
    np.testing.assert_array_equal(res.jac, 2 * xs[k])


def _handwritten(x0, c, iterations):
    w = x0.copy()
    opt = rmsopt.RMSprop(w, lr=1e-3)
    f, g = quadratic(w, c)
    for _ in range(iterations):
        opt.step(g)
        f, g = quadratic(w, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_peak_memory_is_the_hand_written_loops_plus_one_buffer(dtype):
    """Peak bytes (tracemalloc: NumPy reports its data): no copies held per iteration, and
    nothing that grows with the iteration count."""
    x0, c = problem(dtype=dtype)
    nbytes = x0.nbytes

    def run(k):
        return lambda: rmsopt.minimize(quadratic, x0, args=(c,), jac=True,
                                       options=dict(lr=1e-3, maxiter=k, gtol=0))

    run(2)()  # compile outside the measurement
    hand = peak_bytes(lambda: _handwritten(x0, c, 20))
    few, many = peak_bytes(run(5)), peak_bytes(run(40))
    assert many <= few + nbytes // 8
    assert many <= hand + nbytes + nbytes // 8, (many / nbytes, hand / nbytes)


def test_same_results_as_a_hand_written_loop_at_scale():
    x0, c = problem(dtype=np.float32)
    res = rmsopt.minimize(quadratic, x0, args=(c,), jac=True,
                          options=dict(lr=1e-3, maxiter=30, gtol=0))
    w = x0.copy()
    opt = rmsopt.RMSprop(w, lr=1e-3)
    for _ in range(30):
        opt.step(quadratic(w, c)[1])
    assert res.x.tobytes() == w.tobytes() and res.nit == 30 and res.nfev == 31


def test_large_numba_objectives_run_the_python_loop_by_default():
    @njit
    def fg(x, c):
        d = x - 1.0
        return 0.5 * np.sum(c * d * d), c * d

    x0, c = problem(_config.COMPILED_LOOP_SIZE)
    opts = dict(lr=1e-3, maxiter=20, gtol=0)
    auto = rmsopt.minimize(fg, x0, args=(c,), jac=True, options=opts)
    python = rmsopt.minimize(fg, x0, args=(c,), jac=True, options=dict(opts, compiled=False))
    forced = rmsopt.minimize(fg, x0, args=(c,), jac=True, options=dict(opts, compiled=True))
    assert auto.x.tobytes() == python.x.tobytes() == forced.x.tobytes()
    small = rmsopt.minimize(fg, x0[:100], args=(c[:100],), jac=True,
                            options=dict(opts, compiled=True))
    assert small.nit == 20


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bounded", [False, True])
def test_threaded_gradient_norm_equals_the_serial_one(dtype, bounded):
    from rmsopt import loop

    n = _config.NORM_THRESHOLD + 12345  # a partial last block
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    bounds = (np.full(n, -0.5, dtype), np.full(n, 0.5, dtype)) if bounded else None
    lb, ub = bounds if bounded else (np.empty(0, dtype),) * 2
    g[n - 1] = 40.0  # the largest element in the last, partial block
    assert loop._grad_norm(x, g, bounds) == loop.grad_norm(x, g, lb, ub) > 0
    assert loop.grad_norm_threaded(x, g, lb, ub, 1000) == loop.grad_norm(x, g, lb, ub)
    assert loop._grad_norm(x[:1000], g[:1000], None) == loop.grad_norm(x[:1000], g[:1000], lb[:0], ub[:0])
    g[7] = np.inf
    assert loop._grad_norm(x, g, bounds) == loop.grad_norm(x, g, lb, ub)
    g[n - 2] = np.nan
    assert np.isnan(loop._grad_norm(x, g, bounds))
