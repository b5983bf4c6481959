"""The compiled minimize loop: the Python loop's results to the bit, its statuses, no recompile.

Each distinct variant compiles a chunk (seconds), so the cases here are few and chosen to
cover every rule, both dtypes, both kernel paths (inlined and the threaded step kernel),
bounds, schedules, clipping and ``jac=True``.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from numba import njit

import rmsopt
from rmsopt import _config, compiled


@njit
def rosen(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] * x[0]) ** 2


@njit
def rosen_der(x):
    d = x[1] - x[0] * x[0]
    return np.array([-2.0 * (1.0 - x[0]) - 400.0 * x[0] * d, 200.0 * d])


@njit
def rosen_both(x):
    return rosen(x), rosen_der(x)


@njit
def quadratic(x, a):
    return 0.5 * np.sum(a * x * x)


@njit
def quadratic_der(x, a):
    return a * x


def same_results(a, b):
    """Every field of two OptimizeResults, bitwise, histories and iterates included."""
    for k in ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message"):
        assert np.array_equal(a[k], b[k]), k
    assert a.x.dtype == b.x.dtype
    for k in ("fun", "grad_norm"):
        assert np.array_equal(a.history[k], b.history[k]), k
    assert len(a.allvecs) == len(b.allvecs)
    assert all(np.array_equal(u, v) for u, v in zip(a.allvecs, b.allvecs))


def both_loops(fun, x0, **kw):
    options = dict(kw.pop("options"), return_all=True)
    a = rmsopt.minimize(fun, x0, options=dict(options, compiled=True), **kw)
    b = rmsopt.minimize(fun, x0, options=dict(options, compiled=False), **kw)
    return a, b


CASES = [
    ("rmsprop", dict(lr=1e-3), np.float64),
    ("rmsprop", dict(lr=1e-3, centered=True, momentum=0.5, nesterov=True, clip_norm=1.0,
                     bias_correction=True, eps_in_sqrt=True, eps=1e-6), np.float32),
    ("adam", dict(lr=1e-2, amsgrad=True, weight_decay=1e-3), np.float64),
    ("sgd", dict(lr=1e-4, momentum=0.9, clip_value=50.0), np.float32),
    ("adagrad", dict(lr=0.5, lr_decay=1e-3), np.float64),
    ("adadelta", dict(), np.float64),
    # LaProp carries the average of the rates between steps: the loop keeps it as the optimizer
    ("laprop", dict(lr=rmsopt.schedules.exponential(2e-2, 0.999), weight_decay=1e-3), np.float64),
    ("laprop", dict(lr=1e-2, clip_norm=1.0, decoupled_weight_decay=False, weight_decay=1e-3),
     np.float32),
]


@pytest.mark.parametrize("method, options, dtype", CASES,
                         ids=[f"{m}-{np.dtype(d).name}-{i}" for i, (m, _, d) in enumerate(CASES)])
def test_compiled_equals_python_loop(method, options, dtype):
    x0 = np.array([-1.5, 2.0], dtype)
    a, b = both_loops(rosen, x0, method=method, jac=rosen_der,
                      options=dict(options, maxiter=3000))
    same_results(a, b)
    assert a.x.dtype == dtype and a.nit > 0


def test_bounds_schedule_ftol_and_jac_true():
    x0 = np.array([-1.5, 2.0])
    a, b = both_loops(rosen_both, x0, jac=True, bounds=[(-2.0, 0.8), (None, 0.9)],
                      options=dict(lr=rmsopt.schedules.exponential(1e-2, 0.999), ftol=1e-10,
                                   maxiter=20000))
    same_results(a, b)
    assert a.x[0] <= 0.8 and a.x[1] <= 0.9


def test_threaded_kernel_path():
    n = 2 * _config.PARALLEL_THRESHOLD
    scale = np.linspace(0.5, 2.0, n)
    x0 = np.ones(n)
    a, b = both_loops(quadratic, x0, args=(scale,), jac=quadratic_der,
                      options=dict(lr=1e-2, maxiter=40))
    same_results(a, b)


@njit
def cliff(x):
    """Finite until x[0] passes 0.5, then NaN: the loop must stop on the last finite point."""
    return np.nan if x[0] > 0.5 else (x[0] - 2.0) ** 2 + x[1] ** 2


@njit
def cliff_der(x):
    return np.array([2.0 * (x[0] - 2.0), 2.0 * x[1]])


def test_non_finite_stop_returns_the_last_finite_iterate():
    a, b = both_loops(cliff, np.array([0.0, 1.0]), jac=cliff_der,
                      options=dict(lr=1e-2, maxiter=1000))
    same_results(a, b)
    assert a.status == 3 and not a.success and np.isfinite(a.fun) and a.x[0] <= 0.5


def test_another_objective_of_the_same_types_reuses_the_compiled_loop():
    x0 = np.array([-1.5, 2.0])
    options = dict(lr=1e-3, maxiter=50, compiled=True)
    rmsopt.minimize(rosen, x0, jac=rosen_der, options=options)
    chunks = len(compiled._chunks)

    @njit
    def shifted(x):
        return rosen(x - 0.5)

    @njit
    def shifted_der(x):
        return rosen_der(x - 0.5)

    res = rmsopt.minimize(shifted, x0, jac=shifted_der, options=options)
    assert res.nit == 50
    assert len(compiled._chunks) == chunks


def test_auto_mode_and_option_errors():
    x0 = np.array([-1.5, 2.0])
    python_fun = rosen.py_func
    res = rmsopt.minimize(python_fun, x0, jac=rosen_der, options=dict(maxiter=5))
    assert res.nit == 5  # a Python fun runs the Python loop
    with pytest.raises(ValueError, match="compiled=True.*fun is not a Numba"):
        rmsopt.minimize(python_fun, x0, jac=rosen_der, options=dict(compiled=True))
    with pytest.raises(ValueError, match="compiled=True.*jac"):
        rmsopt.minimize(rosen, x0, jac="2-point", options=dict(compiled=True))
    with pytest.raises(TypeError, match="compiled must be"):
        rmsopt.minimize(rosen, x0, jac=rosen_der, options=dict(compiled="yes"))
    assert np.array_equal(x0, [-1.5, 2.0])


@njit
def bad_size_der(x):
    return rosen_der(x) if x[0] < -1.4 else np.zeros(3)


def test_jac_of_the_wrong_size_mid_run():
    with pytest.raises(ValueError, match=r"jac returned an array of shape \(3,\)"):
        rmsopt.minimize(rosen, np.array([-1.5, 2.0]), jac=bad_size_der,
                        options=dict(lr=1e-2, compiled=True))


def test_callback_between_chunks_gets_copies_and_can_stop():
    x0 = np.array([-1.5, 2.0])
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result)
        intermediate_result.x[:] = 99.0  # a copy: the run must not notice
        if len(seen) == 2:
            raise StopIteration

    res = rmsopt.minimize(rosen, x0, jac=rosen_der, callback=callback,
                          options=dict(lr=1e-3, maxiter=10**7, gtol=0.0, compiled=True))
    assert res.status == 99 and not res.success and len(seen) == 2
    assert seen[1].nit == res.nit and np.all(res.x != 99.0)


def test_keyboard_interrupt_returns_the_best_iterate():
    def callback(xk):
        raise KeyboardInterrupt

    res = rmsopt.minimize(rosen, np.array([-1.5, 2.0]), jac=rosen_der, callback=callback,
                          options=dict(lr=1e-3, maxiter=10**7, compiled=True))
    assert res.status == 4 and not res.success
    assert res.fun == rosen(res.x) and res.nit > 0


CTRL_C = textwrap.dedent("""
    import sys, time, numpy as np
    sys.path.insert(0, {root!r})
    import rmsopt
    from numba import njit

    @njit
    def linear(x):
        return x[0]

    @njit
    def linear_der(x):
        return np.ones_like(x)

    options = dict(lr=1e-3, maxiter=10, compiled=True)
    rmsopt.minimize(linear, np.zeros(2), jac=linear_der, options=options)  # compile
    print("running", flush=True)
    res = rmsopt.minimize(linear, np.zeros(2), jac=linear_der,
                          options=dict(options, maxiter=10**12))
    print(res.status, res.nit, flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_interrupts_a_compiled_run():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen([sys.executable, "-c", CTRL_C.format(root=root)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "running"
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)  # a hang fails here
    status, nit = out.split()
    assert status == "4", err
    assert int(nit) > 0


@pytest.mark.parametrize("schedule", [
    rmsopt.schedules.cosine(1e-2, 100),  # reaches 0 at the last iteration
    rmsopt.schedules.warmup(rmsopt.schedules.exponential(1e-2, 0.5), 10),  # underflows
    lambda k: 1e-3 if k < 100 else -1.0,  # invalid only where no step is taken
])
def test_schedules_agree_to_the_last_iteration(schedule):
    """The compiled loop asks the schedule for the rates of the steps it takes, as the
    Python loop does: none at k = maxiter (it used to ask, and raise, there)."""
    a, b = both_loops(rosen, np.array([-1.5, 2.0]), jac=rosen_der,
                      options=dict(lr=schedule, maxiter=100, gtol=0.0, return_all=True))
    same_results(a, b)
    assert a.status == 1 and a.nit == 100


def test_a_callback_stops_both_loops_at_the_same_iterate():
    """Called after every iteration in both loops (it used to run once per compiled chunk)."""
    def run(compiled_mode):
        calls = []

        def cb(intermediate_result):
            calls.append(intermediate_result.nit)
            if intermediate_result.fun < 0.1:
                raise StopIteration

        res = rmsopt.minimize(rosen, np.array([-1.5, 2.0]), jac=rosen_der, callback=cb,
                              options=dict(lr=1e-3, maxiter=20000, compiled=compiled_mode))
        return res, calls

    (a, calls_a), (b, calls_b) = run(True), run(False)
    assert a.status == b.status == 99 and a.nit == b.nit and a.x.tobytes() == b.x.tobytes()
    assert calls_a == calls_b == list(range(1, a.nit + 1))
