"""Bad input: a clear error naming the argument, with every array untouched (RELIABILITY.md)."""

import numpy as np
import pytest

import rmsopt
from rmsopt._kernels import cpu

R = rmsopt.RMSprop

# (class, kwargs, exception, message regex)
HYPER_ERRORS = [
    (R, dict(lr=-1.0), ValueError, r"Invalid lr value: -1\.0"),
    (R, dict(lr=-1e-3), ValueError, "Invalid lr"),
    (R, dict(lr=float("nan")), ValueError, "Invalid lr"),
    (R, dict(lr=float("inf")), ValueError, "Invalid lr"),
    (R, dict(lr="0.1"), TypeError, "lr must be a real number, got str"),
    (R, dict(lr=[0.1]), TypeError, "lr must be a real number, got list"),
    (R, dict(lr=True), TypeError, "lr must be a real number, got bool"),
    (R, dict(lr=1e-2 + 0j), TypeError, "lr must be a real number, got complex"),
    (R, dict(rho=1.0), ValueError, r"Invalid rho value: 1\.0"),
    (R, dict(rho=1.5), ValueError, "Invalid rho"),
    (R, dict(rho=-0.1), ValueError, "Invalid rho"),
    (R, dict(alpha=1.5), ValueError, "Invalid rho"),
    (R, dict(rho=0.9, alpha=0.9), TypeError, "rho was given more than once"),
    (R, dict(rho=None, decay="x"), TypeError, "rho must be a real number"),
    (R, dict(eps=0.0), ValueError, "Invalid eps"),
    (R, dict(eps=-1e-8), ValueError, "Invalid eps"),
    (R, dict(eps=None, convention="pytorch"), ValueError, "Invalid convention 'pytorch'"),
    (R, dict(convention=["torch"]), TypeError,
     r"convention must be None or a string, got list \['torch'\]"),
    (R, dict(momentum=1.0), ValueError, "Invalid momentum"),
    (R, dict(momentum=-0.5), ValueError, "Invalid momentum"),
    (R, dict(momentum=None), TypeError, "momentum must be a real number, got NoneType"),
    (R, dict(nesterov=True), ValueError, "nesterov=True requires a momentum > 0"),
    (R, dict(centered=1), TypeError, "centered must be True or False"),
    (R, dict(weight_decay=-0.1), ValueError, "Invalid weight_decay"),
    (R, dict(clip_norm=0.0), ValueError, "Invalid clip_norm"),
    (R, dict(clip_value=-1.0), ValueError, "Invalid clip_value"),
    (R, dict(initial_scale=-1.0), ValueError, "Invalid initial_scale"),
    (R, dict(backend="gpu"), ValueError, "Invalid backend 'gpu'"),
    (rmsopt.SGD, dict(momentum=1.5), ValueError, "Invalid momentum"),
    (rmsopt.AdaGrad, dict(lr_decay=-1.0), ValueError, "Invalid lr_decay"),
    (rmsopt.AdaGrad, dict(initial_accumulator_value=-1.0), ValueError,
     "Invalid initial_accumulator_value"),
    (rmsopt.AdaDelta, dict(rho=1.0), ValueError, "Invalid rho"),
    (rmsopt.Adam, dict(beta1=1.0), ValueError, "Invalid beta1"),
    (rmsopt.Adam, dict(beta2=-0.1), ValueError, "Invalid beta2"),
    (rmsopt.Adam, dict(amsgrad="yes"), TypeError, "amsgrad must be True or False"),
]


def kernel_count():
    return sum(len(k.signatures) for k in cpu._step_kernels.values())


@pytest.mark.parametrize("cls,kwargs,exc,match", HYPER_ERRORS)
def test_invalid_hyperparameters(cls, kwargs, exc, match):
    x = np.arange(4.0)
    before = x.tobytes()
    with pytest.raises(exc, match=match):
        cls(x, **kwargs)
    assert x.tobytes() == before


ONE_MINUS = 1 - 1e-9  # below 1 in float64, 1.0 in float32

# Hyperparameters valid as Python floats that lose their meaning in float32:
# (class, kwargs, message regex); each is accepted for float64 parameters.
FLOAT32_ERRORS = [
    (R, dict(eps=1e-50), "eps=1e-50 rounds to 0 in float32"),
    (rmsopt.SGD, dict(clip_value=1e-50), "clip_value=1e-50 rounds to 0 in float32"),
    (R, dict(clip_norm=1e-50), "clip_norm=1e-50 rounds to 0 in float32"),
    (R, dict(rho=ONE_MINUS), r"Invalid rho value: 0\.999999999 rounds to 1\.0 in float32"),
    (R, dict(momentum=ONE_MINUS), "Invalid momentum value: .* rounds to 1.0 in float32"),
    (rmsopt.SGD, dict(momentum=ONE_MINUS), "Invalid momentum value: .* rounds to 1.0"),
    (rmsopt.AdaDelta, dict(rho=ONE_MINUS), "Invalid rho value: .* rounds to 1.0"),
    (rmsopt.Adam, dict(beta1=ONE_MINUS), "Invalid beta1 value: .* rounds to 1.0"),
    (rmsopt.Adam, dict(beta2=ONE_MINUS), "Invalid beta2 value: .* rounds to 1.0"),
]


@pytest.mark.parametrize("cls,kwargs,match", FLOAT32_ERRORS)
def test_hyperparameters_that_lose_their_meaning_in_float32(cls, kwargs, match):
    x = np.arange(4, dtype=np.float32)
    before = x.tobytes()
    compiled = kernel_count()
    with pytest.raises(ValueError, match=match):
        cls(x, **kwargs)
    assert x.tobytes() == before and kernel_count() == compiled
    cls(np.ones(3, np.float64), **kwargs)  # representable in float64


def readonly():
    a = np.ones(4)
    a.flags.writeable = False
    return a


# (params factory, exception, message regex)
PARAM_ERRORS = [
    (lambda: np.arange(4), ValueError, "params has dtype int64.*float32 or float64"),
    (lambda: np.ones(4, np.float16), ValueError, "params has dtype float16"),
    (lambda: np.ones(4, np.complex128), ValueError, "params has dtype complex128"),
    (lambda: np.array(["a", "b"]), ValueError, "params has dtype <U1"),
    (lambda: np.ones(0), ValueError, "params is empty"),
    (lambda: np.array([1.0, np.nan]), ValueError, "params contains NaN or inf"),
    (lambda: np.array([1.0, np.inf]), ValueError, "params contains NaN or inf"),
    (readonly, ValueError, "params is read-only"),
    (lambda: np.ones((4, 4))[:, 1], ValueError, "params is not C-contiguous"),
    (lambda: [1.0, 2.0], TypeError, r"params\[0\] must be a NumPy array, got float"),
    (lambda: "weights", TypeError, "params must be a NumPy array or a list of arrays, got str"),
    (lambda: [], ValueError, "params is an empty list"),
    (lambda: [np.ones(2), np.ones(2, np.float32)], ValueError,
     r"params\[1\] has dtype float32 but params\[0\] has float64"),
    (lambda: (lambda a: [a[:3], a[2:]])(np.ones(5)), ValueError,
     r"params\[1\] and params\[0\] share memory"),
]


@pytest.mark.parametrize("factory,exc,match", PARAM_ERRORS)
def test_invalid_params(factory, exc, match):
    params = factory()
    before = [np.asarray(p).tobytes() for p in (params if isinstance(params, list) else [params])]
    with pytest.raises(exc, match=match):
        R(params)
    after = [np.asarray(p).tobytes() for p in (params if isinstance(params, list) else [params])]
    assert after == before


# (gradient factory given the params and the optimizer, exception, message regex)
GRAD_ERRORS = [
    (lambda x, o: np.ones(5), ValueError,
     r"grad has shape \(5,\) but its parameter has shape \(2, 2\)"),
    (lambda x, o: np.ones((2, 2), np.complex128), ValueError, "grad has dtype complex128"),
    (lambda x, o: np.full((2, 2), "a"), ValueError, "grad has dtype <U1"),
    (lambda x, o: None, ValueError, "grad has dtype object"),
    (lambda x, o: x, ValueError, "grad shares memory with its parameter array"),
    (lambda x, o: x.T, ValueError, "grad shares memory"),
    (lambda x, o: o.state["nu"].reshape(2, 2), ValueError,
     "grad shares memory with the optimizer state 'nu'"),
    (lambda x, o: o.state["buf"].reshape(2, 2)[::-1], ValueError,
     "grad shares memory with the optimizer state 'buf'"),
    (lambda x, o: o.state["mu"].reshape(2, 2).view(np.int64), ValueError,
     "grad shares memory with the optimizer state 'mu'"),
]


@pytest.mark.parametrize("factory,exc,match", GRAD_ERRORS)
def test_invalid_gradients_touch_nothing(factory, exc, match):
    x = np.arange(4.0).reshape(2, 2) + 1
    opt = R(x, momentum=0.9, centered=True)
    opt.step(np.ones((2, 2)))
    snapshot = x.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}, opt.t
    compiled = kernel_count()
    g = factory(x, opt)
    with pytest.raises(exc, match=match):
        opt.step(g)
    assert (x.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}, opt.t) == snapshot
    assert kernel_count() == compiled


def test_gradient_list_errors():
    xs = [np.ones(2), np.ones(3)]
    opt = R(xs)
    with pytest.raises(ValueError, match="grad must be a list of 2 arrays.*length 1"):
        opt.step([np.ones(2)])
    with pytest.raises(ValueError, match="grad must be a list of 2 arrays.*got ndarray"):
        opt.step(np.ones(2))
    with pytest.raises(ValueError, match=r"grad\[1\] has shape \(2,\)"):
        opt.step([np.ones(2), np.ones(2)])
    assert opt.t == 0 and all((a == 1).all() for a in xs)


def test_gradient_sharing_memory_with_another_parameter_or_the_state():
    """A gradient aliasing anything the step writes would race with the update (threads)."""
    a, b = np.ones(4), np.full(4, 2.0)
    opt = R([a, b], momentum=0.5)
    opt.step([np.ones(4), np.ones(4)])
    snapshot = a.tobytes(), b.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}
    bad = [
        ([b, np.ones(4)], r"grad\[0\] shares memory with params\[1\]"),
        ([np.ones(4), a[::-1]], r"grad\[1\] shares memory with params\[0\]"),
        ([opt.state["nu"][4:], np.ones(4)], r"grad\[0\] shares memory with the optimizer state 'nu'"),
        ([np.ones(4), opt.state["buf"][2:6]], r"grad\[1\] shares memory with the optimizer state"),
    ]
    for grads, match in bad:
        with pytest.raises(ValueError, match=match):
            opt.step(grads)
    assert (a.tobytes(), b.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}) == snapshot
    assert opt.t == 1
    whole = np.ones(8)
    opt.step([whole[:4], whole[4:]])  # gradients may share memory with each other
    assert opt.t == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_invalid_step_lr_touches_nothing(dtype):
    x = np.ones(3, dtype)
    opt = R(x)
    bad_values = [(-1e-3, ValueError), ("1", TypeError), (float("nan"), ValueError),
                  (float("inf"), ValueError), (np.array([0.1]), TypeError)]
    if dtype == np.float32:  # not representable: inf in the dtype
        bad_values.append((1e39, ValueError))
    for bad, exc in bad_values:
        with pytest.raises(exc, match="lr"):
            opt.step(np.ones(3, dtype), lr=bad)
    assert opt.t == 0 and (x == 1).all() and (opt.state["nu"] == 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_zero_step_size_is_valid(dtype):
    """lr=0 (and a schedule's rate that decays into 0 in the dtype) is a step that moves
    nothing but is counted, with the state updated; torch's lr tensor as a 0-d array."""
    x = np.ones(3, dtype)
    opt = R(x, lr=0.0)
    opt.step(np.ones(3, dtype))
    opt.step(np.ones(3, dtype), lr=1e-50)
    opt.step(np.ones(3, dtype), lr=np.array(0.0))
    assert opt.t == 3 and (x == 1).all() and (opt.state["nu"] > 0).all()
    R(np.ones(3, dtype), lr=np.array(1e-2)).step(np.ones(3, dtype))


def test_hyperparameters_must_be_representable_in_float32():
    for kwargs in (dict(lr=1e39), dict(lr=1e-3, clip_value=1e39), dict(eps=1e39)):
        name = next(k for k in kwargs if kwargs[k] == 1e39)
        with pytest.raises(ValueError, match=f"{name}=1e\\+39 overflows to inf in float32"):
            R(np.ones(3, np.float32), **kwargs)
    R(np.ones(3), lr=1e39)  # fine in float64


def _set_state_list(d):
    d["state"] = [1]


# (mutation of a valid float32 RMSprop state dict, message regex)
STATE_DICT_ERRORS = [
    (_set_state_list, "checkpoint state must be a dict of slot name -> array, got list"),
    (lambda d: d["hyper"].update(momentun=0.9), "unknown names: momentun"),
    (lambda d: d["hyper"].update(alpha=0.9, beta=1), "unknown names: alpha, beta"),
    (lambda d: d["hyper"].update(rho=ONE_MINUS), "Invalid rho value: .* rounds to 1.0"),
    (lambda d: d["hyper"].update(clip_norm=1e-50), "clip_norm=1e-50 rounds to 0 in float32"),
    (lambda d: d["hyper"].update(lr=1e-50), "lr=1e-50 rounds to 0 in float32"),
]


@pytest.mark.parametrize("mutate,match", STATE_DICT_ERRORS)
def test_invalid_state_dict_changes_nothing(mutate, match):
    src = R(np.ones(3, np.float32), momentum=0.5)
    src.step(np.full(3, 2.0, np.float32))
    d = src.state_dict()
    mutate(d)
    x = np.zeros(3, np.float32)
    opt = R(x, lr=0.1, centered=True)
    opt.step(np.ones(3, np.float32))
    before = opt.hyper, opt.t, {k: v.tobytes() for k, v in opt.state.items()}, x.tobytes()
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(d)
    assert (opt.hyper, opt.t, {k: v.tobytes() for k, v in opt.state.items()},
            x.tobytes()) == before


def test_caller_gradient_is_never_modified():
    x = np.ones(3)
    g = np.array([1.0, -2.0, 3.0])
    g32 = g.astype(np.float32)
    opt = R(x, clip_value=0.5, clip_norm=0.1, maximize=True, weight_decay=0.1)
    opt.step(g)
    opt.step(g32)
    assert g.tolist() == [1.0, -2.0, 3.0] and g32.tolist() == [1.0, -2.0, 3.0]


def test_float16_is_refused_with_a_decision():
    """float16 parameters are refused rather than silently promoted: the squared gradients of
    RMSprop overflow float16 above 256, and its 10-bit mantissa makes eps=1e-8 vanish."""
    with pytest.raises(ValueError, match="float16.*float32 or float64"):
        R(np.ones(3, np.float16))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_step_on_parameters_made_read_only_after_construction(backend):
    a, b = np.ones(3), np.ones(4)
    opt = R([a, b], backend=backend, momentum=0.5)
    opt.step([np.ones(3), np.ones(4)])
    snapshot = a.tobytes(), b.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}
    b.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[1\] is read-only"):
        opt.step([np.ones(3), np.ones(4)])
    assert (a.tobytes(), b.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}) == snapshot
    assert opt.t == 1
    x = np.ones(3)
    single = R(x, backend=backend)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="params is read-only"):
        single.step(np.ones(3))
    assert (x == 1).all() and single.t == 0


def test_load_into_read_only_parameters_changes_nothing():
    src = R(np.ones(3), momentum=0.5, centered=True)
    src.step(np.full(3, 2.0))
    d = src.state_dict()
    x = np.zeros(3)
    opt = R(x, lr=0.1)
    x.flags.writeable = False
    before = opt.hyper, opt.t, {k: v.tobytes() for k, v in opt.state.items()}, x.tobytes()
    with pytest.raises(ValueError, match="params is read-only"):
        opt.load_state_dict(d)
    assert (opt.hyper, opt.t, {k: v.tobytes() for k, v in opt.state.items()},
            x.tobytes()) == before


def test_messages_say_what_went_wrong():
    """jac returning None says None (not "shape ()"); no rows at all is a valid (empty)
    sparse step, whatever dtype NumPy gives ``[]``."""
    for jac in ((lambda x: None), True):
        fun = (lambda x: (float(x @ x), None)) if jac is True else (lambda x: float(x @ x))
        with pytest.raises(TypeError, match="jac returned None"):
            rmsopt.minimize(fun, np.ones(2), jac=jac)
    E = np.ones((4, 2))
    opt = rmsopt.SGD(E, lr=0.1)
    opt.step_rows([], np.ones((0, 2)))
    assert opt.t == 1 and (E == 1).all()
    with pytest.raises(ValueError, match="rows must be a 1-D array of integers"):
        opt.step_rows([0.5], np.ones((1, 2)))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_nonfinite_gradients_applied_skipped_or_refused(backend):
    """torch's behaviour by default (the NaN spreads); optax's apply_if_finite as "skip"
    (nothing changes, the step is counted in ``skipped``); "raise" changes nothing either."""
    bad = np.array([1.0, np.nan, 1.0])
    x = np.ones(3)
    opt = R(x, lr=0.1, momentum=0.9, backend=backend)
    opt.step(np.ones(3))
    before = x.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}, opt.t
    assert opt.nonfinite == "apply"
    for mode in ("skip", "raise"):
        opt.nonfinite = mode
        for g in (bad, np.array([np.inf, 0.0, 0.0])):
            if mode == "raise":
                with pytest.raises(FloatingPointError, match="NaN or inf"):
                    opt.step(g)
            else:
                opt.step(g)
            assert (x.tobytes(), {k: v.tobytes() for k, v in opt.state.items()},
                    opt.t) == before
    assert opt.skipped == 2
    opt.nonfinite = "skip"
    opt.step(np.full(3, 2.0))  # a finite step is taken as usual
    assert opt.t == 2 and opt.skipped == 2
    E = np.ones((4, 3))
    rows = R(E, lr=0.1, backend=backend)
    rows.nonfinite = "skip"
    rows.step_rows([1], bad[None, :])
    assert rows.t == 0 and rows.skipped == 1 and (E == 1).all()
    opt.nonfinite = "apply"
    with np.errstate(invalid="ignore"):
        opt.step(bad)
    assert np.isnan(x[1]) and opt.t == 3
    for value in ("ignore", None, 1):
        with pytest.raises(ValueError, match="Invalid nonfinite value"):
            opt.nonfinite = value


def test_whole_number_counts_reach_2_to_the_62():
    """Counts (maxiter, schedule steps, seeds) go up to 2**62, an int64 counter's room."""
    from rmsopt import hyper
    assert hyper.count("maxiter", 1000) == 1000
    assert hyper.count("maxiter", float(2 ** 62)) == 2 ** 62
    assert hyper.count("maxiter", np.int64(2 ** 62)) == 2 ** 62
    for too_big in (2 ** 62 + 1, 2 ** 63):
        with pytest.raises(ValueError, match=r"maxiter.*<= 2\*\*62"):
            hyper.count("maxiter", too_big)
