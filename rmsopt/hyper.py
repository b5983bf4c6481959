"""Hyperparameters: validation, convention presets and the builders of hyperparameter dicts.

Every optimizer turns its keyword arguments into a plain ``dict`` of Python
values (validated here, JSON-serialisable for checkpoints); its rule
(:class:`rmsopt.rules.Rule`) turns that dict into flags and, each step, host
scalars in the array dtype (:func:`as_scalars`).

Conventions
-----------
``convention=`` makes :class:`rmsopt.RMSprop` reproduce another library; any
keyword given explicitly overrides the preset.

=========== ======= ===== ===== =========== ============= ============== ============
convention  lr      rho   eps   eps_in_sqrt initial_scale lr_in_momentum weight decay
=========== ======= ===== ===== =========== ============= ============== ============
rmsopt      1e-3    0.9   1e-8  False       0             False          L2
torch       1e-2    0.99  1e-8  False       0             False          L2
keras       1e-3    0.9   1e-7  True        0             True           decoupled
optax       1e-3    0.9   1e-8  True        0             True           L2
tf1         1e-3    0.9   1e-10 True        1             True           L2
=========== ======= ===== ===== =========== ============= ============== ============

What each preset reproduces, step by step to a relative 1e-9 in float64 (pinned by
``tests/test_golden.py`` with numbers from ``tests/golden/generate.py``):

* ``"torch"``: ``torch.optim.RMSprop`` (run for real), with its momentum, centered, L2
  ``weight_decay``, ``maximize`` and a changing lr (outside the momentum buffer). PyTorch's
  RMSprop has no Nesterov option; rmsopt's ``nesterov=True`` is an extension there.
* ``"keras"``: Keras 3 ``keras.optimizers.RMSprop`` (from its update equations), with momentum,
  centered, a changing lr and ``weight_decay`` decoupled as ``p - p * wd * lr`` before the
  update. The legacy tf.keras ``optimizer_v2`` RMSprop places eps differently without momentum
  (``lr * g / (sqrt(nu) + eps)``): ``eps_in_sqrt=False`` gives that (not among the golden runs).
* ``"optax"``: ``optax.rmsprop`` (``scale_by_rms``/``scale_by_stddev``, ``-lr``, ``trace``),
  with ``momentum``, ``nesterov``, ``centered``, ``bias_correction``, ``eps_in_sqrt``,
  ``initial_scale`` and a changing lr.
* ``"tf1"``: ``tf.compat.v1.train.RMSPropOptimizer`` (kernels ``ApplyRMSProp`` and
  ``ApplyCenteredRMSProp``; the mean square starts at 1), with momentum, centered and a
  changing lr. These three keep lr inside the momentum buffer.

optax's and TF1's rmsprop have no weight decay of their own; rmsopt's L2 ``weight_decay`` is an
extension there. ``clip_norm`` is optax's ``clip_by_global_norm`` (``min(1, c / |g|)``, no
epsilon): torch's ``clip_grad_norm_`` divides by ``|g| + 1e-6``, a relative difference of about
``1e-6 / |g|`` (the golden torch cases with clip_norm agree to 1e-5, the optax ones to 1e-9).

Names across libraries: rmsopt ``rho`` = torch ``alpha`` = keras ``rho`` =
optax ``decay`` = TF1 ``decay``; state ``nu`` = torch ``square_avg`` = keras
``velocity`` = TF1 ``ms``; ``mu`` = torch ``grad_avg`` = keras
``average_gradient`` = TF1 ``mg``; ``buf`` = torch ``momentum_buffer`` = keras
``momentum`` = TF1 ``mom`` = optax ``trace``.
"""

import math
import numbers

import numpy as np
from numba import njit

from . import rules
from ._kernels.cache import cached

RMSPROP_CONVENTIONS = {
    None: dict(lr=1e-3, rho=0.9, eps=1e-8, eps_in_sqrt=False, initial_scale=0.0,
               lr_in_momentum=False, decoupled_weight_decay=False),
    "torch": dict(lr=1e-2, rho=0.99, eps=1e-8, eps_in_sqrt=False, initial_scale=0.0,
                  lr_in_momentum=False, decoupled_weight_decay=False),
    "keras": dict(lr=1e-3, rho=0.9, eps=1e-7, eps_in_sqrt=True, initial_scale=0.0,
                  lr_in_momentum=True, decoupled_weight_decay=True),
    "optax": dict(lr=1e-3, rho=0.9, eps=1e-8, eps_in_sqrt=True, initial_scale=0.0,
                  lr_in_momentum=True, decoupled_weight_decay=False),
    "tf1": dict(lr=1e-3, rho=0.9, eps=1e-10, eps_in_sqrt=True, initial_scale=1.0,
                lr_in_momentum=True, decoupled_weight_decay=False),
}


# ---------------------------------------------------------------- validation

def real(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite Python float within bounds, or a clear error.

    Raises ``TypeError`` for anything that is not a real number (strings,
    lists, None, bools, complex) and ``ValueError`` for values out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"Invalid {name} value: {value!r}; it must be finite") from None
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}"
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        interval = f"{lo or '(-inf'}, {hi or 'inf)'}"
        raise ValueError(f"Invalid {name} value: {value!r}; it must be finite and in {interval}")
    return value


def positive(name, value):
    return real(name, value, low=0.0, low_open=True)


MAX_COUNT = 2 ** 62  # counts live in int64 counters (with room to add to them)


def count(name, value, low=1):
    """A whole number in ``[low, 2**62]`` (an int, or a float with an integral value) as an
    int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if isinstance(value, (int, np.integer)):
        value = int(value)
    else:
        v = float(value)
        if not (math.isfinite(v) and v.is_integer()):
            raise ValueError(f"Invalid {name} value: {value!r}; it must be a whole number")
        value = int(v)
    if not low <= value <= MAX_COUNT:
        raise ValueError(f"Invalid {name} value: {value}; it must be >= {low} and <= 2**62")
    return value


def unit_interval(name, value):
    """A decay or momentum factor in [0, 1)."""
    return real(name, value, low=0.0, high=1.0, high_open=True)


def flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def optional_positive(name, value):
    return None if value is None else positive(name, value)


def learning_rate(value, name="lr"):
    """A learning rate: a finite real >= 0 (0 is a valid step size: schedules end there).

    A 0-d array (PyTorch's tensor ``lr``, as a NumPy array) is taken as its value.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
        value = value.item()
    return real(name, value, low=0.0)


def representable(name, value, dtype, tiny_ok=False):
    """A scalar that reaches a kernel must keep its meaning in the parameters' dtype: not
    overflow to inf (``lr=1e39`` in float32), and, unless ``tiny_ok``, a positive value
    must not round to 0 (``eps=1e-50`` in float32). A schedule's rate may decay into 0."""
    if value is None:
        return
    with np.errstate(over="ignore"):
        cast = dtype.type(value)
    if not np.isfinite(cast):
        raise ValueError(f"{name}={value!r} overflows to inf in {dtype.name}; the largest "
                         f"{dtype.name} is {np.finfo(dtype).max:.4g}")
    if not tiny_ok and value != 0 and cast == 0:
        raise ValueError(f"{name}={value!r} rounds to 0 in {dtype.name}; use a larger value")


def below_one(name, value, dtype):
    """A factor in [0, 1) must stay below 1 in the parameters' dtype (``1 - 1e-9`` does not
    in float32: the decay would become the identity)."""
    if value is not None and dtype.type(value) >= 1:
        raise ValueError(f"Invalid {name} value: {value!r} rounds to 1.0 in {dtype.name}; it "
                         "must stay in [0, 1) in the parameters' dtype")


POSITIVE_IN_DTYPE = ("lr", "eps", "clip_value", "clip_norm")
UNIT_IN_DTYPE = ("rho", "momentum", "beta1", "beta2")
# may be 0, must not overflow: the decay factor and the state's initial values
FINITE_IN_DTYPE = ("weight_decay", "initial_scale", "initial_accumulator_value", "eps_root")


def check_dtype(h, dtype):
    """Every hyperparameter of ``h`` that reaches a kernel keeps its meaning in ``dtype``."""
    for name in POSITIVE_IN_DTYPE:
        representable(name, h.get(name), dtype)
    for name in FINITE_IN_DTYPE:
        representable(name, h.get(name), dtype, tiny_ok=True)
    for name in UNIT_IN_DTYPE:
        below_one(name, h.get(name), dtype)


def pick(name, aliases):
    """The one value given among a parameter's aliases (``rho``/``alpha``/``decay``)."""
    given = {k: v for k, v in aliases.items() if v is not None}
    if len(given) > 1:
        raise TypeError(f"{name} was given more than once, as {' and '.join(given)}")
    return next(iter(given.values()), None)


def common(*, weight_decay, decoupled_weight_decay, maximize, clip_value, clip_norm):
    """The gradient-preparation hyperparameters every optimizer shares."""
    return dict(
        weight_decay=real("weight_decay", weight_decay, low=0.0),
        decoupled_weight_decay=flag("decoupled_weight_decay", decoupled_weight_decay),
        maximize=flag("maximize", maximize),
        clip_value=optional_positive("clip_value", clip_value),
        clip_norm=optional_positive("clip_norm", clip_norm),
    )


def momentum_options(momentum, nesterov, lr_in_momentum):
    momentum = unit_interval("momentum", momentum)
    nesterov = flag("nesterov", nesterov)
    if nesterov and momentum == 0.0:
        raise ValueError("nesterov=True requires a momentum > 0")
    return dict(momentum=momentum, nesterov=nesterov,
                lr_in_momentum=flag("lr_in_momentum", lr_in_momentum))


# ----------------------------------------------------------- host scalars
# Each rule's flags, constants and per-step values are in rmsopt.rules, next to the rule.

def as_scalars(cls, values, dtype):
    """A scalars namedtuple ``cls`` of ``dtype`` scalars from float64 ``values``.

    Each value is rounded by the scalar type's constructor (the same rounding as
    ``np.array(values, dtype)``, a few times faster for a handful of values).
    """
    return cls._make(map(np.dtype(dtype).type, values))


@cached
@njit
def clip_scale(norm, clip_norm):
    """Factor that brings a gradient of global norm ``norm`` down to ``clip_norm``.

    1 when the norm is within bounds, ``clip_norm / norm`` otherwise. A NaN norm
    (a NaN anywhere in the gradient) gives a NaN factor, so every element becomes
    NaN, as in PyTorch: the NaN is seen, not confined to where it arose. An
    infinite norm gives 0, so an infinite element becomes NaN and the others 0.
    ``Optimizer.step`` and the compiled minimize loop both call this function.
    """
    return rules.clip_scale(norm, clip_norm, 1.0)


# ------------------------------------------- builders: keywords -> hyper dict
# Each takes an optimizer's keyword arguments (or a saved hyper dict, whose
# keys are the canonical names) and returns the validated dict.

def _shared(o, decoupled_default=False):
    dwd = o.get("decoupled_weight_decay")
    return common(weight_decay=o.get("weight_decay", 0.0),
                  decoupled_weight_decay=decoupled_default if dwd is None else dwd,
                  maximize=o.get("maximize", False), clip_value=o.get("clip_value"),
                  clip_norm=o.get("clip_norm"))


def _or(value, default):
    return default if value is None else value


def preset(presets, name, o):
    """``o`` over the preset ``presets[name]``: ``{**preset, **given}``, where a None given
    for a key of the preset means the preset's value."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"convention must be None or a string, got "
                        f"{type(name).__name__} {name!r}")
    if name not in presets:
        names = ", ".join(repr(k) for k in presets)
        raise ValueError(f"Invalid convention {name!r}; expected one of {names}")
    chosen = presets[name]
    return {**chosen, **{k: v for k, v in o.items() if not (v is None and k in chosen)}}


def rmsprop(**o):
    rho = pick("rho", {k: o.pop(k, None) for k in ("rho", "alpha", "decay")})
    o = preset(RMSPROP_CONVENTIONS, o.get("convention"), dict(o, rho=rho))
    h = dict(
        convention=o.get("convention"),
        lr=learning_rate(o["lr"]),
        rho=unit_interval("rho", o["rho"]),
        eps=positive("eps", o["eps"]),
        centered=flag("centered", o.get("centered", False)),
        bias_correction=flag("bias_correction", o.get("bias_correction", False)),
        eps_in_sqrt=flag("eps_in_sqrt", o["eps_in_sqrt"]),
        initial_scale=real("initial_scale", o["initial_scale"], low=0.0),
    )
    h.update(momentum_options(o.get("momentum", 0.0), o.get("nesterov", False),
                              o["lr_in_momentum"]))
    h.update(_shared(o, o["decoupled_weight_decay"]))
    return h


def sgd(**o):
    h = dict(lr=learning_rate(_or(o.get("lr"), 1e-3)))
    h.update(momentum_options(o.get("momentum", 0.0), o.get("nesterov", False),
                              _or(o.get("lr_in_momentum"), False)))
    h.update(_shared(o))
    return h


def adagrad(**o):
    h = dict(
        lr=learning_rate(_or(o.get("lr"), 1e-2)),
        lr_decay=real("lr_decay", o.get("lr_decay", 0.0), low=0.0),
        eps=positive("eps", _or(o.get("eps"), 1e-10)),
        initial_accumulator_value=real(
            "initial_accumulator_value", o.get("initial_accumulator_value", 0.0), low=0.0),
        eps_in_sqrt=flag("eps_in_sqrt", _or(o.get("eps_in_sqrt"), False)),
    )
    h.update(_shared(o))
    return h


def adadelta(**o):
    h = dict(
        lr=learning_rate(_or(o.get("lr"), 1.0)),
        rho=unit_interval("rho", _or(o.get("rho"), 0.9)),
        eps=positive("eps", _or(o.get("eps"), 1e-6)),
    )
    h.update(_shared(o))
    return h


def _betas(o):
    """``(beta1, beta2)`` from rmsopt's names or PyTorch's ``betas`` pair, not both."""
    betas = o.get("betas")
    if betas is None:
        return o.get("beta1"), o.get("beta2")
    if o.get("beta1") is not None or o.get("beta2") is not None:
        raise ValueError("give betas=(beta1, beta2) or beta1/beta2, not both")
    if isinstance(betas, np.ndarray):
        pair = betas.shape == (2,)
    else:
        pair = isinstance(betas, (tuple, list)) and len(betas) == 2 \
            and all(np.ndim(b) == 0 for b in betas)
    if not pair:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {type(betas).__name__} "
                        f"{betas!r}")
    return tuple(betas)


def adam(**o):
    beta1, beta2 = _betas(o)
    h = dict(
        lr=learning_rate(_or(o.get("lr"), 1e-3)),
        beta1=unit_interval("beta1", _or(beta1, 0.9)),
        beta2=unit_interval("beta2", _or(beta2, 0.999)),
        eps=positive("eps", _or(o.get("eps"), 1e-8)),
        amsgrad=flag("amsgrad", o.get("amsgrad", False)),
    )
    h.update(_shared(o))
    return h


def lion(**o):
    beta1, beta2 = _betas(o)
    h = dict(
        lr=learning_rate(_or(o.get("lr"), 1e-4)),
        beta1=unit_interval("beta1", _or(beta1, 0.9)),
        beta2=unit_interval("beta2", _or(beta2, 0.99)),
    )
    h.update(_shared(o, decoupled_default=True))
    return h


def adabelief(**o):
    beta1, beta2 = _betas(o)
    h = dict(
        lr=learning_rate(_or(o.get("lr"), 1e-3)),
        beta1=unit_interval("beta1", _or(beta1, 0.9)),
        beta2=unit_interval("beta2", _or(beta2, 0.999)),
        eps=positive("eps", _or(o.get("eps"), 1e-16)),
        eps_root=real("eps_root", _or(o.get("eps_root"), 1e-16), low=0.0),
    )
    h.update(_shared(o, decoupled_default=True))
    return h


def laprop(**o):
    beta1, beta2 = _betas(o)
    h = dict(
        lr=learning_rate(_or(o.get("lr"), 4e-4)),
        beta1=unit_interval("beta1", _or(beta1, 0.9)),
        beta2=unit_interval("beta2", _or(beta2, 0.999)),
        eps=positive("eps", _or(o.get("eps"), 1e-15)),
    )
    h.update(_shared(o, decoupled_default=True))
    return h
