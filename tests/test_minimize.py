"""scipy's generic minimize tests, in spirit, over every rmsopt method; plus rmsopt's extras."""

import warnings

import numba
import numpy as np
import pytest
import scipy.optimize as so
from scipy.optimize import OptimizeResult, OptimizeWarning, rosen, rosen_der

import rmsopt
from rmsopt import schedules

METHODS = list(rmsopt.METHODS)
LR = {"rmsprop": 1e-2, "sgd": 1e-3, "adagrad": 0.5, "adadelta": 1.0, "adam": 1e-2, "adamw": 1e-2,
      "lion": 1e-3, "adabelief": 1e-2, "laprop": 1e-2}


def quad(x, a=None):
    a = np.arange(1, x.size + 1) if a is None else a
    return 0.5 * np.sum(a * x * x)


def quad_grad(x, a=None):
    a = np.arange(1, x.size + 1) if a is None else a
    return a * x


X0 = np.array([1.0, -2.0, 0.5])


@pytest.mark.parametrize("method", METHODS)
def test_every_attribute_present(method):
    res = rmsopt.minimize(quad, X0, method=method, jac=quad_grad,
                          options=dict(lr=LR[method], maxiter=50))
    assert isinstance(res, OptimizeResult)
    for attr in ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success", "message"):
        assert attr in res, attr
    assert res.x.shape == X0.shape and res.jac.shape == X0.shape
    assert res.fun == quad(res.x)
    np.testing.assert_array_equal(res.jac, quad_grad(res.x))


# Known-good counts on a fixed problem: regression guards (as scipy's test_nfev).
# 40 iterations -> 41 evaluations of f and g (x0 and after each step); forward differences
# add n = 3 calls of fun per gradient, central differences 2n.
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("jac,nfev,njev", [("callable", 41, 41), (True, 41, 41),
                                           (None, 164, 0), ("2-point", 164, 0),
                                           ("3-point", 287, 0)])
def test_exact_nfev_njev(method, jac, nfev, njev):
    calls = []

    def f(x):
        calls.append(x.copy())
        return (quad(x), quad_grad(x)) if jac is True else quad(x)

    res = rmsopt.minimize(f, X0, method=method, options=dict(lr=LR[method], maxiter=40, gtol=0),
                          jac=quad_grad if jac == "callable" else jac)
    assert (res.nit, res.nfev, res.njev) == (40, nfev, njev)
    assert len(calls) == nfev
    if jac in ("callable", True):  # never twice at the same x
        assert len({c.tobytes() for c in calls}) == len(calls)


@pytest.mark.parametrize("method", METHODS)
def test_stop_iteration_equals_maxiter(method):
    k = 7
    opts = dict(lr=LR[method], gtol=0)
    ref = rmsopt.minimize(quad, X0, method=method, jac=quad_grad, options=dict(opts, maxiter=k))

    def cb(intermediate_result):
        if intermediate_result.nit == k:
            raise StopIteration

    res = rmsopt.minimize(quad, X0, method=method, jac=quad_grad, callback=cb, options=opts)
    assert res.status == 99 and not res.success and "StopIteration" in res.message
    np.testing.assert_array_equal(res.x, ref.x)
    assert (res.nit, res.nfev, res.njev, res.fun) == (ref.nit, ref.nfev, ref.njev, ref.fun)


@pytest.mark.parametrize("method", METHODS)
def test_callbacks_get_copies_in_both_styles(method):
    seen_x, seen_r = [], []

    def cb_x(xk):
        seen_x.append(xk)
        xk[:] = 1e6  # must not affect the run

    def cb_r(intermediate_result):
        seen_r.append(intermediate_result)
        intermediate_result.x[:] = 1e6

    opts = dict(lr=LR[method], maxiter=5, gtol=0)
    ref = rmsopt.minimize(quad, X0, method=method, jac=quad_grad, options=opts)
    a = rmsopt.minimize(quad, X0, method=method, jac=quad_grad, callback=cb_x, options=opts)
    b = rmsopt.minimize(quad, X0, method=method, jac=quad_grad, callback=cb_r, options=opts)
    np.testing.assert_array_equal(a.x, ref.x)
    np.testing.assert_array_equal(b.x, ref.x)
    assert len(seen_x) == len(seen_r) == 5
    assert isinstance(seen_r[0], OptimizeResult) and "fun" in seen_r[0]
    assert len({id(v) for v in seen_x}) == 5


@pytest.mark.parametrize("method", METHODS)
def test_nan_objective_stops_with_last_finite_iterate(method):
    def f(x):
        return np.nan if x[0] < 0.6 else quad(x)

    trajectory = []
    res = rmsopt.minimize(f, X0, method=method, jac=quad_grad, callback=lambda xk:
                          trajectory.append(xk), options=dict(lr=0.05 if method != "adadelta"
                                                              else 1.0, maxiter=10000))
    assert res.status == 3 and not res.success and "non-finite" in res.message
    assert np.isfinite(res.fun) and res.x[0] >= 0.6
    assert res.fun == quad(res.x)
    np.testing.assert_array_equal(res.x, trajectory[-1] if trajectory else X0)


def test_nan_at_x0_gives_status_3_and_x0():
    res = rmsopt.minimize(lambda x: np.nan, X0, jac=quad_grad)
    assert res.status == 3 and not res.success and res.nit == 0
    np.testing.assert_array_equal(res.x, X0)


def test_nan_gradient_mid_run():
    def g(x):
        return np.full_like(x, np.inf) if x[0] < 0.9 else quad_grad(x)

    res = rmsopt.minimize(quad, X0, jac=g, options=dict(lr=0.01))
    assert res.status == 3 and np.isfinite(res.x).all() and res.x[0] >= 0.9


@pytest.mark.parametrize("method", METHODS)
def test_unknown_option_warns(method):
    with pytest.warns(OptimizeWarning, match="Unknown solver options: bogus"):
        rmsopt.minimize(quad, X0, method=method, jac=quad_grad,
                        options=dict(maxiter=1, bogus=1))


@pytest.mark.parametrize("method", METHODS)
def test_show_options(method):
    text = rmsopt.show_options(method, disp=False)
    assert "maxiter" in text and "gtol" in text and "lr" in text
    assert rmsopt.METHODS[method].__name__ in text
    assert method in rmsopt.show_options(disp=False)
    # options only: not the class's own parameter `params` or its examples
    assert "params :" not in text and ">>>" not in text and "Examples" not in text
    assert "lr : " in text or "lr : default" in text
    # each option once, the text dedented as a whole (its first line included)
    assert sum(line.strip().startswith("lr : ") for line in text.splitlines()) == 1
    assert text.splitlines()[2].startswith("Also a scipy custom method")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("jac", ["callable", True, None])
def test_scipy_custom_method_gives_the_identical_result(method, jac):
    fun = (lambda x: (quad(x), quad_grad(x))) if jac is True else quad
    j = quad_grad if jac == "callable" else jac
    bounds = [(-0.5, 2.0), (None, 0.0), (0.1, None)]
    calls = []
    opts = dict(lr=LR[method], maxiter=30, gtol=0)
    ours = rmsopt.minimize(fun, X0, method=method, jac=j, bounds=bounds, options=opts,
                           callback=lambda xk: calls.append(("ours", xk)))
    theirs = so.minimize(fun, X0, method=getattr(rmsopt.methods, method), jac=j, bounds=bounds,
                         options=opts, callback=lambda xk: calls.append(("scipy", xk)))
    for key in ("x", "fun", "jac", "nit", "nfev", "njev", "status", "message"):
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    assert len(calls) == 60


def test_scipy_custom_method_tolerates_tol_bounds_object_and_extra_keys():
    res = so.minimize(quad, X0, method=rmsopt.methods.rmsprop, jac=quad_grad, tol=1e-3,
                      bounds=so.Bounds([-1, -1, 0.2], [2, 2, 2]), options=dict(lr=0.01),
                      hess=None, constraints=())
    assert res.success and res.status == 0
    assert np.max(np.abs(res.jac[:2])) <= 1e-3 and res.jac[2] > 0  # at the bound: projected
    assert res.x[2] == 0.2


def test_bounds_project_every_iterate():
    seen = []
    res = rmsopt.minimize(quad, X0, jac=quad_grad, bounds=so.Bounds([0.3, -np.inf, 0.4], np.inf),
                          callback=lambda xk: seen.append(xk), options=dict(lr=0.05, maxiter=300))
    assert all(s[0] >= 0.3 and s[2] >= 0.4 for s in seen)
    np.testing.assert_allclose(res.x, [0.3, 0.0, 0.4], atol=1e-3)


def test_x0_unchanged_and_float32_preserved():
    x0 = np.array([1.0, -2.0], dtype=np.float32)
    before = x0.tobytes()
    res = rmsopt.minimize(quad, x0, jac=quad_grad, options=dict(lr=0.01, maxiter=20))
    assert x0.tobytes() == before
    assert res.x.dtype == np.float32 and res.jac.dtype == np.float32


def test_integer_and_scalar_x0():
    res = rmsopt.minimize(quad, [3, 4], jac=quad_grad, options=dict(maxiter=2))
    assert res.x.dtype == np.float64
    res = rmsopt.minimize(lambda x: float(x[0] ** 2), 3.0, jac=lambda x: 2 * x,
                          options=dict(maxiter=2))
    assert res.x.shape == (1,)


def test_maxiter_zero():
    res = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=0))
    assert res.nit == 0 and res.nfev == 1 and res.status == 1
    np.testing.assert_array_equal(res.x, X0)


def test_compiled_loop_clips_huge_gradients_with_the_same_bits():
    """The compiled chunk and Optimizer.step share the norm kernel and clip_scale."""
    numba = pytest.importorskip("numba")

    @numba.njit
    def fun(x):
        return np.sum(x * x) * 1e-300

    @numba.njit
    def jac(x):
        return x * 1e200  # its squares overflow float64: the scaled norm pass

    options = dict(lr=0.1, clip_norm=1.0, maxiter=5, gtol=0.0)
    x0 = np.array([1.0, -2.0, 0.5])
    python = rmsopt.minimize(fun, x0, jac=jac, method="sgd", options=dict(options, compiled=False))
    fast = rmsopt.minimize(fun, x0, jac=jac, method="sgd", options=dict(options, compiled=True))
    assert python.nit == fast.nit == 5
    assert python.x.tobytes() == fast.x.tobytes()
    # each step moves by lr * clip_norm along -x: the gradient was not zeroed
    np.testing.assert_allclose(np.linalg.norm(python.x - x0), 0.5, rtol=1e-12)


@pytest.mark.parametrize("compiled", [False, True])
def test_schedules_that_reach_zero_run_on(compiled):
    """README's warmup(cosine(...)) ends at 0, exponential(...) underflows to 0 in float32:
    both loops run on to maxiter (a step of 0 is valid); an rate that overflows float32
    is refused in both."""
    numba = pytest.importorskip("numba")

    @numba.njit
    def fun(x):
        return np.sum(x * x)

    @numba.njit
    def jac(x):
        return 2 * x

    x0 = X0.astype(np.float32)
    for lr in (schedules.warmup(schedules.cosine(1e-2, 50), 10), schedules.exponential(1e-2, 0.1),
               lambda k: 1e-2 if k < 2 else 1e-50):
        res = rmsopt.minimize(fun, x0, jac=jac,
                              options=dict(lr=lr, maxiter=100, gtol=0.0, compiled=compiled))
        assert res.status == 1 and res.nit == 100 and np.isfinite(res.x).all()
    options = dict(lr=lambda k: 1e-2 if k < 2 else 1e39, maxiter=5, gtol=0.0, compiled=compiled)
    with pytest.raises(ValueError, match="lr=1e\\+39 overflows to inf in float32"):
        rmsopt.minimize(fun, x0, jac=jac, options=options)


def test_converges_with_gtol_and_ftol():
    # with a constant lr RMSprop keeps oscillating at the scale of lr: a decaying lr converges
    res = rmsopt.minimize(quad, X0, jac=quad_grad,
                          options=dict(lr=schedules.exponential(0.01, 0.999), gtol=1e-4))
    assert res.success and res.status == 0 and np.max(np.abs(res.jac)) <= 1e-4
    res = rmsopt.minimize(quad, X0, method="adam", jac=quad_grad,
                          options=dict(lr=0.01, gtol=0, ftol=1e-12))
    assert res.success and res.status == 2


def test_rosenbrock_every_method():
    opts = {"rmsprop": dict(lr=1e-3, maxiter=20000), "sgd": dict(lr=1e-4, momentum=0.9,
                                                                maxiter=20000),
            "adagrad": dict(lr=0.5, maxiter=20000), "adam": dict(lr=1e-2, maxiter=20000)}
    for method, o in opts.items():
        res = rmsopt.minimize(rosen, [-1.5, 2.0], method=method, jac=rosen_der, options=o)
        assert np.linalg.norm(res.x - 1) < 0.05, (method, res.x)


def test_learning_rate_schedule_equals_per_step_lr():
    sched = schedules.warmup(schedules.cosine(0.05, 30), 5)
    res = rmsopt.minimize(quad, X0, jac=quad_grad,
                          options=dict(lr=sched, maxiter=30, gtol=0, momentum=0.9))
    x = X0.copy()
    opt = rmsopt.RMSprop(x, momentum=0.9)
    for k in range(30):
        opt.step(quad_grad(x), lr=sched(k))
    np.testing.assert_array_equal(res.x, x)


def test_return_all_and_history():
    res = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=10, gtol=0,
                                                                return_all=True))
    assert len(res.allvecs) == 11
    np.testing.assert_array_equal(res.allvecs[0], X0)
    np.testing.assert_array_equal(res.allvecs[-1], res.x)
    assert res.history["fun"].shape == (11,) and res.history["fun"][0] == quad(X0)
    assert (np.diff(res.history["time"]) >= 0).all()


def test_history_time_starts_after_set_up():
    """Time 0 is the first record (after the first evaluation): a slow first evaluation
    (an objective's set-up) is not in the plotted times."""
    calls = []

    def f(x):
        if not calls:
            import time

            time.sleep(0.2)
        calls.append(1)
        return quad(x)

    res = rmsopt.minimize(f, X0, jac=quad_grad, options=dict(maxiter=5, history=True))
    assert res.history["time"][0] == 0.0 and res.history["time"][-1] < 0.15


def test_disp_prints_a_report(capsys):
    rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=3, disp=True))
    out = capsys.readouterr().out
    assert "Iterations: 3" in out and "Function evaluations: 4" in out


def test_keyboard_interrupt_returns_best_iterate():
    calls = {"n": 0}

    def f(x):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return quad(x)

    res = rmsopt.minimize(f, X0, jac=quad_grad, options=dict(lr=0.01))
    assert res.status == 4 and not res.success and "Interrupted" in res.message
    # 24 steps were taken; the 25th evaluation (at the 24th iterate) was interrupted, so the
    # best evaluated iterate is the 23rd
    assert res.nit == 24 and res.nfev == 25 and res.njev == 24
    assert res.fun == quad(res.x) and res.fun < quad(X0)
    np.testing.assert_array_equal(res.jac, quad_grad(res.x))


def test_other_callback_exceptions_propagate():
    def cb(xk):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        rmsopt.minimize(quad, X0, jac=quad_grad, callback=cb)


# ------------------------------------------------------------------- mini-batches

def regression(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    X = np.c_[np.ones(n), rng.uniform(0, 2, n)]
    y = 4 + 3 * X[:, 1] + 0.1 * rng.standard_normal(n)
    return X, y


def mse(w, X, y):
    r = X @ w - y
    return 0.5 * np.mean(r * r)


def mse_grad(w, X, y):
    return X.T @ (X @ w - y) / len(y)


def test_minibatch_converges_and_is_repeatable():
    X, y = regression()
    opts = dict(lr=0.01, batch_size=64, epochs=20, seed=3)
    a = rmsopt.minimize(mse, np.zeros(2), args=(X, y), jac=mse_grad, options=opts)
    b = rmsopt.minimize(mse, np.zeros(2), args=(X, y), jac=mse_grad, options=opts)
    c = rmsopt.minimize(mse, np.zeros(2), args=(X, y), jac=mse_grad, options=dict(opts, seed=4))
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    exact = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(a.x, exact, atol=0.05)
    assert a.status == 5 and a.success and a.steps == 20 * 32 and a.epochs == 20
    assert a.fun == mse(a.x, X, y)  # reported on the whole data set


def test_minibatch_slices_every_sample_array_with_the_same_indices():
    X, y = regression(100)
    ids = np.arange(100)
    seen = []

    def f(w, X_, y_, ids_, scale):
        seen.append(ids_.copy())
        assert scale == 2.0 and np.array_equal(X_[:, 1] * 3 + 4, (4 + 3 * X[ids_, 1]))
        return mse(w, X_, y_)

    res = rmsopt.minimize(f, np.zeros(2), args=(X, y, ids, 2.0), jac=lambda w, X_, y_, i, s:
                          mse_grad(w, X_, y_), options=dict(batch_size=30, epochs=2, seed=0))
    epoch1 = np.concatenate(seen[0:4])
    assert sorted(epoch1.tolist()) == list(range(100)) and len(seen[0]) == 30
    assert res.steps == 8


def test_smallest_batches_and_epochs_and_data_as_one_position():
    """batch_size=1 and epochs=1 are valid; ``data=1`` is ``data=(1,)``."""
    X, y = regression(20)
    res = rmsopt.minimize(mse, np.zeros(2), args=(X, y), jac=mse_grad,
                          options=dict(batch_size=1, epochs=1, seed=0))
    assert res.status == 5 and res.steps == 20 and res.epochs == 1

    def f(w, X_, s):
        r = X_ @ w - 1.0
        return s[0] * 0.5 * float(np.mean(r * r))

    def g(w, X_, s):
        return s[0] * X_.T @ (X_ @ w - 1.0) / len(X_)

    opts = dict(batch_size=5, epochs=1, seed=0)
    a, b = (rmsopt.minimize(f, np.zeros(2), args=(X, np.ones(2)), jac=g,
                            options=dict(opts, data=data)) for data in (0, (0,)))
    assert a.steps == 4 and a.x.tobytes() == b.x.tobytes()


def test_no_history_or_iterates_unless_asked():
    res = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=3))
    assert "history" not in res and "allvecs" not in res
    res = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=3, history=True))
    assert res.history["fun"].shape == (4,) and "allvecs" not in res


BAD_X0 = [
    (np.array([1.0, np.nan]), ValueError, "x0 contains NaN or inf"),
    (np.array([1.0, np.inf]), ValueError, "x0 contains NaN or inf"),
    (np.array([1 + 1j]), ValueError, "x0 must be a real float or integer array, got dtype complex128"),
    (np.array(["a"]), ValueError, "got dtype <U1"),
    (np.array([None]), ValueError, "got dtype object"),
    (np.array([]), ValueError, "x0 is empty"),
    (np.ones((2, 2)), ValueError, "'x0' must only have one dimension"),
    (np.ones(2, np.float16), ValueError, "float16"),
]


@pytest.mark.parametrize("x0,exc,match", BAD_X0)
def test_bad_x0(x0, exc, match):
    before = x0.tobytes()
    calls = []
    with pytest.raises(exc, match=match):
        rmsopt.minimize(lambda x: calls.append(1) or 0.0, x0)
    assert x0.tobytes() == before and not calls


BAD_CALLS = [
    (dict(fun=lambda x: np.ones(2)), ValueError, "must return a scalar value"),
    (dict(fun=lambda x: "a"), TypeError, "must return a real scalar, got str"),
    (dict(fun=lambda x: None), TypeError, "must return a real scalar, got NoneType"),
    (dict(jac=lambda x: np.ones(5)), ValueError, r"jac returned an array of shape \(5,\); expected \(3,\)"),
    (dict(jac="4-point"), ValueError, "Invalid jac '4-point'"),
    (dict(fun=lambda x: quad(x), jac=True), TypeError, "with jac=True, fun must return a tuple"),
    (dict(method="bfgs"), ValueError, r"Unknown solver \(method\) 'bfgs'"),
    (dict(options=dict(maxiter=-1)), ValueError, "Invalid maxiter value: -1"),
    (dict(options=dict(maxiter=1.5)), ValueError, "Invalid maxiter value: 1.5; it must be a whole"),
    (dict(options=dict(maxiter="10")), TypeError, "maxiter must be an integer"),
    (dict(bounds=[(np.nan, 1), (0, 1), (0, 1)]), ValueError, "bounds contain NaN"),
    (dict(bounds=so.Bounds(np.zeros(2), np.ones(2))), ValueError, r"bounds have shapes \(2,\)"),
    (dict(options=dict(betas=(0.9,)), method="adam"), TypeError, "betas must be a pair"),
    (dict(options=dict(betas=(0.9, 0.99), beta1=0.9), method="adam"), ValueError, "not both"),
    (dict(options=dict(lr=-1.0)), ValueError, "Invalid lr"),
    (dict(options=dict(rho="x")), TypeError, "rho must be a real number"),
    (dict(options=dict(batch_size=0)), ValueError, "Invalid batch_size"),
    (dict(options=dict(epochs=2)), ValueError, "epochs needs batch_size"),
    (dict(options=dict(batch_size=4)), ValueError, "batch_size needs data"),
    (dict(bounds=[(0, 1)]), ValueError, r"bounds must be 3 \(low, high\) pairs"),
    (dict(bounds=[(2, 1), (0, 1), (0, 1)]), ValueError, "lower bound above"),
    (dict(callback=3), TypeError, "callback must be callable"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD_CALLS)
def test_bad_calls(kwargs, exc, match):
    x0 = X0.copy()
    call = dict(fun=quad, jac=quad_grad)
    call.update(kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        with pytest.raises(exc, match=match):
            rmsopt.minimize(call.pop("fun"), x0, **call)
    np.testing.assert_array_equal(x0, X0)


def test_method_is_case_insensitive():
    a = rmsopt.minimize(quad, X0, method="RMSprop", jac=quad_grad, options=dict(maxiter=3))
    b = rmsopt.minimize(quad, X0, method="rmsprop", jac=quad_grad, options=dict(maxiter=3))
    np.testing.assert_array_equal(a.x, b.x)


def test_progress_bar_shows_f_and_gradient_norm(capsys):
    pytest.importorskip("tqdm")
    res = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=200, gtol=0, progress=True))
    err = capsys.readouterr().err
    assert "200/200" in err and "gnorm=" in err and "f=" in err
    ref = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=200, gtol=0))
    np.testing.assert_array_equal(res.x, ref.x)


def test_maxiter_takes_integral_floats_as_scipy():
    a = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=1e2, gtol=0))
    b = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=100, gtol=0))
    assert a.nit == b.nit == 100 and a.x.tobytes() == b.x.tobytes()


def test_maxiter_before_the_epochs_end_says_maxiter():
    X, y = regression()
    res = rmsopt.minimize(mse, np.zeros(2), args=(X, y), jac=mse_grad,
                          options=dict(lr=0.01, batch_size=64, epochs=10, maxiter=50, seed=0))
    assert res.status == 1 and not res.success and res.steps == 50 and res.epochs < 10
    assert "Maximum number of iterations" in res.message
    done = rmsopt.minimize(mse, np.zeros(2), args=(X, y), jac=mse_grad,
                           options=dict(lr=0.01, batch_size=64, epochs=2, maxiter=5000, seed=0))
    assert done.status == 5 and done.success and done.epochs == 2


def test_disp_warns_on_an_unsuccessful_stop(capsys):
    with pytest.warns(OptimizeWarning, match="Maximum number of iterations") as record:
        rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=3, disp=True))
    assert record[0].filename == __file__  # the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error", OptimizeWarning)  # a success does not warn
        rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(maxiter=3, disp=True, gtol=1e9))


@pytest.mark.parametrize("via_scipy", [False, True])
def test_unknown_options_warn_at_the_callers_line_with_a_hint(via_scipy):
    options = dict(maxiter=1, learning_rate=0.1, max_iter=3, momentun=0.9, bogus=1)
    with pytest.warns(OptimizeWarning) as record:
        if via_scipy:
            so.minimize(quad, X0, jac=quad_grad, method=rmsopt.methods.rmsprop, options=options)
        else:
            rmsopt.minimize(quad, X0, jac=quad_grad, options=options)
    w = record[0]
    assert w.filename == __file__
    text = str(w.message)
    assert "Unknown solver options: bogus, learning_rate, max_iter, momentun" in text
    for hint in ("learning_rate: did you mean 'lr'", "max_iter: did you mean 'maxiter'",
                 "momentun: did you mean 'momentum'"):
        assert hint in text
    assert "bogus:" not in text


@pytest.mark.parametrize("method,key,hint", [
    ("rmsprop", "betas",
     "betas is an option of method 'adam', 'adamw', 'lion', 'adabelief', 'laprop', not 'rmsprop'"),
    ("rmsprop", "beta_1", "beta_1 ('beta1') is an option of method 'adam', 'adamw', 'lion'"),
    ("sgd", "rho", "rho is an option of method 'rmsprop', 'adadelta', not 'sgd'"),
    ("adam", "alpha", "alpha ('rho') is an option of method 'rmsprop', 'adadelta', not 'adam'"),
    ("adagrad", "decay", "decay ('rho') is an option of method 'rmsprop', 'adadelta'"),
    ("adam", "centered", "centered is an option of method 'rmsprop', not 'adam'"),
])
def test_unknown_option_hints_name_the_methods_that_take_it(method, key, hint):
    """Another method's option, or another library's name for it, is said to be so; a
    name that is another library's spelling is not matched to a look-alike (AdaGrad's
    ``decay`` is not its ``lr_decay``)."""
    with pytest.warns(OptimizeWarning) as record:
        rmsopt.minimize(quad, X0, jac=quad_grad, method=method,
                        options={"maxiter": 1, key: 0.9})
    text = str(record[0].message)
    assert hint in text and "lr_decay" not in text


def test_torch_spellings():
    """method="adamw", Adam(betas=...), a 0-d array lr (torch's tensor lr)."""
    a = rmsopt.minimize(quad, X0, method="adamw", jac=quad_grad,
                        options=dict(lr=np.array(1e-2), betas=(0.8, 0.99), maxiter=20))
    w = X0.copy()
    opt = rmsopt.AdamW(w, lr=1e-2, beta1=0.8, beta2=0.99)
    for _ in range(20):
        opt.step(quad_grad(w))
    assert a.x.tobytes() == w.tobytes()
    assert rmsopt.Adam(X0.copy(), betas=[0.8, 0.99]).hyper["beta2"] == 0.99
    assert rmsopt.methods.adamw.__name__ == "_minimize_adamw"


def test_which_args_are_data_is_explicit_or_warned():
    """args=(mu, X, y) with mu of shape (2,): the first array used to set the sample count
    silently (2 samples: nothing batched, 2 steps, success)."""
    X, y = regression()
    mu = np.array([0.5, 0.5])

    def f(w, mu, X, y):
        return mse(w, X, y) + 0.5 * float(mu @ w)

    def g(w, mu, X, y):
        return mse_grad(w, X, y) + 0.5 * mu

    opts = dict(lr=0.01, batch_size=64, epochs=2, seed=0)
    with pytest.warns(OptimizeWarning, match=r"args\[0\] sets the sample count 2, so args\[1\] "
                      r"\(shape \(2000, 2\)\), args\[2\] \(shape \(2000,\)\) are not batched"):
        with pytest.raises(ValueError, match=r"batch_size=64 exceeds the 2 samples of args\[0\]"):
            rmsopt.minimize(f, np.zeros(2), args=(mu, X, y), jac=g, options=opts)
    res = rmsopt.minimize(f, np.zeros(2), args=(mu, X, y), jac=g, options=dict(opts, data=(1, 2)))
    assert res.status == 5 and res.steps == 2 * 32
    ref = rmsopt.minimize(lambda w, X, y, mu: f(w, mu, X, y), np.zeros(2), args=(X, y, mu),
                          jac=lambda w, X, y, mu: g(w, mu, X, y), options=opts)
    assert res.x.tobytes() == ref.x.tobytes()
    with pytest.raises(ValueError, match=r"disagree on the sample count: args\[0\] has 2, "
                                         r"args\[1\] has 2000"):
        rmsopt.minimize(f, np.zeros(2), args=(mu, X, y), jac=g, options=dict(opts, data=(0, 1)))
    with pytest.raises(ValueError, match=r"data names args\[5\]"):
        rmsopt.minimize(f, np.zeros(2), args=(mu, X, y), jac=g, options=dict(opts, data=(5,)))


def test_front_door_messages_for_common_slips():
    """A fun returning (f, g) without jac=True, flat bounds, betas as an array, and an
    optimizer's repr showing its schedule rather than the rate at t = 0."""
    from rmsopt.problems import rosenbrock

    with pytest.raises(TypeError, match="pass jac=True"):
        rmsopt.minimize(rosenbrock, X0)
    with pytest.raises(ValueError, match=r"\(low, high\) pairs"):
        rmsopt.minimize(quad, np.zeros(2), jac=quad_grad, bounds=[0, 1])
    assert rmsopt.Adam(X0.copy(), betas=np.array([0.8, 0.99])).hyper["beta1"] == 0.8
    cosine = rmsopt.schedules.cosine(1e-2, 100)
    assert "lr=cosine(lr=0.01, period=100" in repr(rmsopt.RMSprop(X0.copy(), lr=cosine))


def _stop(intermediate_result):
    raise StopIteration


def test_success_is_true_exactly_for_the_successful_statuses():
    """gtol (0), ftol (2) and completed epochs (5) succeed; maxiter (1), non-finite (3),
    interrupt (4) and a callback's StopIteration (99) do not."""
    from rmsopt.problems import linear_data, mse

    runs = {
        0: dict(options={"lr": 0.1, "gtol": 1e-3, "maxiter": 5000}),
        1: dict(options={"lr": 1e-3, "maxiter": 3}),
        2: dict(options={"lr": 1e-3, "ftol": 1e-1, "maxiter": 5000}),
        3: dict(fun=lambda x: (np.inf if x[0] < 0.99 else quad(x)), options={"lr": 1e-3}),
        99: dict(callback=_stop, options={"lr": 1e-3}),
    }
    for status, kw in runs.items():
        res = rmsopt.minimize(kw.get("fun", quad), X0, jac=quad_grad,
                              callback=kw.get("callback"), options=kw["options"])
        assert res.status == status and res.success == (status in (0, 2)), (status, res)
    X, y = linear_data(64)
    res = rmsopt.minimize(mse, np.zeros(2), args=(X, y), jac=True,
                          options={"lr": 1e-2, "batch_size": 16, "epochs": 2, "seed": 0})
    assert res.status == 5 and res.success

    def interrupting(x):
        raise KeyboardInterrupt

    res = rmsopt.minimize(quad, X0, jac=lambda x: interrupting(x) if x[0] != X0[0]
                          else quad_grad(x), options={"lr": 1e-3})
    assert res.status == 4 and not res.success


def test_maxiter_defaults_to_ten_thousand():
    """Without maxiter a run that never meets gtol stops after exactly 10000 iterations (the
    constant rate keeps RMSprop circling the minimum at a distance ~lr)."""
    res = rmsopt.minimize(quad, X0, jac=quad_grad, options=dict(lr=0.05))
    assert res.status == 1 and not res.success and res.nit == 10000


def test_show_options_lists_the_hyperparameters_and_no_examples():
    text = rmsopt.show_options("rmsprop", disp=False)
    assert "rho : float" in text and "momentum : float" in text and "backend :" in text
    assert "params :" not in text and "Examples" not in text and ">>>" not in text


@pytest.mark.parametrize("compiled, size, used", [
    (False, 2, False),                       # compiled=False: never the compiled loop
    (None, 2, True),                         # default: compiled below COMPILED_LOOP_SIZE
    (None, None, False),                     # ... and not from it on
    (True, None, True),                      # compiled=True: at any size
])
def test_the_compiled_option_chooses_the_loop(monkeypatch, compiled, size, used):
    from rmsopt import _config, compiled as compiled_module
    calls = []
    prepare = compiled_module.prepare

    def spy(*args, **kwargs):
        calls.append(1)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(compiled_module, "prepare", spy)
    n = _config.COMPILED_LOOP_SIZE if size is None else size

    @numba.njit
    def f(x):
        return 0.5 * np.sum((x - 1.0) ** 2)

    @numba.njit
    def g(x):
        return x - 1.0

    options = {"lr": 0.1, "maxiter": 3}
    if compiled is not None:
        options["compiled"] = compiled
    res = rmsopt.minimize(f, np.zeros(n), jac=g, options=options)
    assert res.nit == 3 and bool(calls) == used
