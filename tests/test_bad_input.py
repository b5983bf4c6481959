"""Bad input, generated (hypothesis): every public entry point, one bad argument at a time.

RELIABILITY.md, "Bad input: a clear error, nothing touched": the constructors (``params`` and
every keyword), ``step``, ``step_rows``, ``load_state_dict``, ``load``, ``minimize`` (``x0``,
``jac``, ``fun``, ``bounds``, ``method`` and every option), the schedules and the Dask
optimizers (``rmsopt.dask``) get generated bad values (the CUDA ones: ``test_cuda.py``, under
the simulator). Each call must raise ValueError or TypeError whose message names the argument, with
the caller's arrays and the optimizer (parameters, state, ``t``, hyperparameters, schedule)
bitwise unchanged and no new kernel compiled; ``minimize`` must not have called ``fun``.

``KNOWN_GAPS`` at the end pins, one by one, the inputs this suite found mishandled when it was
written (all fixed since; each is now a regression test). A new gap goes there with its id in
``OPEN_GAPS`` (``xfail(strict=True)``: it turns red once fixed). The hand-written cases are in
``test_errors.py``.

Examples per test come from the profile of ``conftest.py``: ``ci`` by default (30 each);
``HYPOTHESIS_PROFILE=long`` soaks (20,000 each).
"""

import copy
import functools
import inspect
import json
import math
import os
import tempfile
from decimal import Decimal

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import Bounds

import rmsopt
from rmsopt import checkpoint, hyper, rules, schedules
from rmsopt._kernels import cpu
from rmsopt.backend import BACKENDS
from rmsopt.minimize import METHODS

CLASSES = tuple(rmsopt.optimizer.OPTIMIZERS.values())  # every registered optimizer
FLOATS = (np.float32, np.float64)
LONGDOUBLE = [np.longdouble] if np.dtype(np.longdouble).itemsize > 8 else []


# ------------------------------------------------------------------ helpers

def kernel_count():
    return sum(len(k.signatures) for k in cpu._step_kernels.values())


def keywords(cls):
    """The hyperparameter keywords of an optimizer class (minimize's options too)."""
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params")]


def param_list(opt):
    return list(opt.params) if isinstance(opt.params, (list, tuple)) else [opt.params]


def snapshot(opt):
    """Everything a failed call must leave as it was, bitwise."""
    return dict(hyper=opt.hyper, t=opt.t, schedule=repr(opt.schedule),
                state={k: (v.dtype.str, v.shape, v.tobytes()) for k, v in opt.state.items()},
                params=[(a.dtype.str, a.shape, a.tobytes()) for a in param_list(opt)],
                kernels=kernel_count())


def array_bytes(obj):
    """The bytes of every array in ``obj`` (an array or a list/tuple of them)."""
    if isinstance(obj, np.ndarray):
        return (obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, (list, tuple)):
        return [array_bytes(o) for o in obj]
    return None


def raises_naming(words, call, exc=(ValueError, TypeError)):
    """``call()`` raises ``exc`` whose message contains one of ``words``; anything else
    (another exception type) propagates."""
    try:
        call()
    except exc as e:
        msg = str(e)
        assert any(w in msg for w in words), \
            f"{type(e).__name__}({msg!r}) names none of {words}"
        return e
    raise AssertionError(f"accepted: no {exc} naming one of {words}")


class Returns:
    """A learning-rate schedule returning ``value`` (a readable repr for hypothesis)."""

    def __init__(self, value):
        self.value = value

    def __call__(self, k):
        return self.value

    def __repr__(self):
        return f"Returns({self.value!r})"


# ----------------------------------------------------- hyperparameter specs

# name: (low, high, low_open, high_open, None allowed (None means the default))
REALS = {
    "lr": (0.0, None, False, False, True),
    "rho": (0.0, 1.0, False, True, True),
    "alpha": (0.0, 1.0, False, True, True),
    "decay": (0.0, 1.0, False, True, True),
    "eps": (0.0, None, True, False, True),
    "momentum": (0.0, 1.0, False, True, False),
    "weight_decay": (0.0, None, False, False, False),
    "clip_value": (0.0, None, True, False, True),
    "clip_norm": (0.0, None, True, False, True),
    "initial_scale": (0.0, None, False, False, True),
    "lr_decay": (0.0, None, False, False, False),
    "initial_accumulator_value": (0.0, None, False, False, False),
    "beta1": (0.0, 1.0, False, True, True),
    "beta2": (0.0, 1.0, False, True, True),
    "eps_root": (0.0, None, False, False, True),
}
# name: None allowed (None means the default)
FLAGS = {"centered": False, "nesterov": False, "bias_correction": False, "eps_in_sqrt": True,
         "lr_in_momentum": True, "decoupled_weight_decay": True, "maximize": False,
         "amsgrad": False}
OTHERS = ("convention", "backend", "betas")
# what an error message calls an argument: aliases by their canonical name
MESSAGE_NAMES = {"alpha": ("alpha", "rho"), "decay": ("decay", "rho"),
                 "betas": ("betas", "beta1", "beta2")}
# float32 must keep their meaning: hyper.POSITIVE_IN_DTYPE / UNIT_IN_DTYPE and aliases
POSITIVE_IN_DTYPE = {"lr", "eps", "clip_value", "clip_norm"}
UNIT_IN_DTYPE = {"rho", "alpha", "decay", "momentum", "beta1", "beta2"}
F32_ABOVE_MAX = (3.5e38, 1e308)  # finite in float64, inf in float32
F32_TO_ZERO = (5e-324, 7e-46)  # positive in float64, 0 in float32
F32_TO_ONE = 1 - 2 ** -25  # from here up to 1 (excluded): 1.0 in float32


def names(name):
    return MESSAGE_NAMES.get(name, (name,))


# ---------------------------------------------------------------- strategies

def numbers(s):
    """Python numbers, and the same values as NumPy float64 scalars."""
    return st.one_of(s, s.map(np.float64))


# Not a real number (None aside: for many keywords None means the default).
NOT_REAL = st.one_of(
    st.text(max_size=4), st.binary(max_size=2), st.booleans(), st.sampled_from([np.True_,
                                                                               np.False_]),
    st.complex_numbers(max_magnitude=10), st.just(np.complex128(0.5 + 0.5j)),
    st.lists(st.floats(0, 1), max_size=2), st.tuples(st.floats(0, 1)),
    st.dictionaries(st.text(max_size=2), st.integers(0, 2), max_size=2),
    st.just(object()), st.just(Decimal("0.1")),
    hnp.arrays(np.float64, st.integers(1, 3), elements=st.floats(0, 1)),
    st.sampled_from([np.array(0.5 + 0j), np.array(True), np.array("0.1"), np.array([0.1])]),
)


def not_real(none_ok):
    return NOT_REAL if none_ok else st.one_of(st.none(), NOT_REAL)


def out_of_range(low, high=None, low_open=False, high_open=False):
    """Numbers outside ``[low, high]`` (open ends per flag), NaN and infinities; integers
    within int64 (larger ones: ``KNOWN_GAPS``)."""
    parts = [st.sampled_from([math.nan, math.inf, -math.inf])]
    if low is not None:
        parts.append(st.floats(max_value=low, allow_nan=False, allow_infinity=False)
                     .filter(lambda v: v <= low if low_open else v < low))
        parts.append(st.integers(-2 ** 63, math.floor(low) if low_open else math.ceil(low) - 1))
    if high is not None:
        parts.append(st.floats(min_value=high, allow_nan=False, allow_infinity=False)
                     .filter(lambda v: v >= high if high_open else v > high))
        parts.append(st.integers(math.ceil(high) if high_open else math.floor(high) + 1,
                                 2 ** 63))
    return numbers(st.one_of(parts))


def unrepresentable(name, dtype, tiny_ok=False):
    """Valid float64 values that lose their meaning in float32 (nothing for float64)."""
    parts = []
    if np.dtype(dtype) == np.float32:
        if name in POSITIVE_IN_DTYPE:
            parts.append(st.floats(*F32_ABOVE_MAX))
            if not tiny_ok:
                parts.append(st.floats(*F32_TO_ZERO))
        if name in UNIT_IN_DTYPE:
            parts.append(st.floats(F32_TO_ONE, 1.0, exclude_max=True))
    return numbers(st.one_of(parts)) if parts else st.nothing()


def bad_flag(none_ok):
    s = st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=3),
                  st.lists(st.booleans(), max_size=2), st.just(object()),
                  st.sampled_from([np.int64(1), np.float64(0.0), np.array(True),
                                   np.array([True])]))
    return s if none_ok else st.one_of(st.none(), s)


BAD_CONVENTION = st.one_of(
    st.text(max_size=6).filter(lambda s: s not in hyper.RMSPROP_CONVENTIONS),
    st.integers(), st.floats(), st.booleans(), st.lists(st.text(max_size=3), max_size=2))
BAD_BACKEND = st.one_of(st.text(max_size=6).filter(lambda s: s not in BACKENDS), st.none(),
                        st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=2))


def bad_betas(dtype):
    beta = (0.0, 1.0, False, True)
    scalar = st.one_of(out_of_range(*beta), unrepresentable("beta1", dtype),
                       st.text(max_size=3), st.booleans(), st.complex_numbers(max_magnitude=2),
                       st.just(object()), st.just(Decimal("0.9")))
    return st.one_of(
        st.lists(st.floats(0, 0.5), max_size=4).filter(lambda v: len(v) != 2),
        st.text(max_size=3), st.floats(0, 0.5), st.sets(st.floats(0, 0.5), max_size=3),
        st.dictionaries(st.text(max_size=2), st.floats(0, 0.5), max_size=2),
        hnp.arrays(np.float64, st.sampled_from([(2, 2), (3,), (1,), ()]),
                   elements=st.floats(0, 0.5)),
        st.tuples(scalar, st.just(0.9)), st.tuples(st.just(0.9), scalar),
        st.tuples(scalar, st.just(0.9)).map(list))


def bad_value(name, dtype):
    """Bad values of one hyperparameter keyword for parameters of ``dtype``."""
    if name in REALS:
        low, high, low_open, high_open, none_ok = REALS[name]
        return st.one_of(not_real(none_ok), out_of_range(low, high, low_open, high_open),
                         unrepresentable(name, dtype))
    if name in FLAGS:
        return bad_flag(FLAGS[name])
    if name == "convention":
        return BAD_CONVENTION
    if name == "backend":
        return BAD_BACKEND
    assert name == "betas", f"no bad values for {name}"
    return bad_betas(dtype)


def bad_step_lr(dtype):
    """A bad ``lr`` for one step (a rate that rounds to 0 is a valid step there)."""
    return st.one_of(NOT_REAL, out_of_range(0.0), unrepresentable("lr", dtype, tiny_ok=True),
                     st.just(Returns(0.1)))


def test_every_keyword_has_a_strategy():
    """A new keyword must get its bad values here (and its validation in rmsopt.hyper)."""
    for cls in CLASSES:
        unknown = set(keywords(cls)) - set(REALS) - set(FLAGS) - set(OTHERS)
        assert not unknown, f"{cls.__name__}: no bad-value strategy for {sorted(unknown)}"


# --------------------------------------------------------------- constructors

@given(data=st.data())
def test_constructors_refuse_bad_hyperparameters(data):
    cls = data.draw(st.sampled_from(CLASSES), label="class")
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    name = data.draw(st.sampled_from(keywords(cls)), label="keyword")
    value = data.draw(bad_value(name, dtype), label="value")
    x = np.linspace(-1, 1, 6, dtype=dtype)
    before, compiled = x.tobytes(), kernel_count()
    raises_naming(names(name), lambda: cls(x, **{name: value}))
    assert x.tobytes() == before and kernel_count() == compiled


SHAPES = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4)
BAD_PARAM_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.float16, np.complex64,
                    np.complex128, ">f8", ">f4", "<U2", "S2", "M8[s]", "m8[s]", object,
                    *LONGDOUBLE]
FINITE_PARAMS = st.sampled_from(FLOATS).flatmap(
    lambda dt: hnp.arrays(dt, SHAPES, elements=st.floats(-10, 10, width=32)))


def _with_non_finite(args):
    a, bad, i = args
    a.reshape(-1)[i % a.size] = bad
    return a


def _readonly(a):
    a.flags.writeable = False
    return a


BAD_PARAM_ARRAYS = st.one_of(
    st.tuples(st.sampled_from(BAD_PARAM_DTYPES), SHAPES).map(lambda t: np.zeros(t[1], t[0])),
    st.tuples(st.sampled_from(FLOATS),
              hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=3)
              .filter(lambda s: 0 in s)).map(lambda t: np.zeros(t[1], t[0])),
    st.tuples(FINITE_PARAMS, st.sampled_from([math.nan, math.inf, -math.inf]),
              st.integers(0, 100)).map(_with_non_finite),
    FINITE_PARAMS.map(_readonly),
    st.tuples(st.sampled_from(FLOATS), st.integers(1, 4), st.integers(2, 4))
    .map(lambda t: np.zeros((t[1], t[2]), t[0])[:, ::2]).filter(lambda a: not a.flags.c_contiguous),
    st.tuples(st.sampled_from(FLOATS), st.integers(2, 4), st.integers(2, 4))
    .map(lambda t: np.zeros((t[1], t[2]), t[0]).T),
)
NOT_AN_ARRAY = st.one_of(st.none(), st.text(max_size=3), st.floats(), st.integers(),
                         st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                         st.sets(st.integers(), max_size=2), st.just(object()),
                         st.lists(st.floats(), max_size=2))


def _insert(args):
    good, bad, i = args
    return good[:i % (len(good) + 1)] + [bad] + good[i % (len(good) + 1):]


def _sharing(args):
    n, k, which = args
    base = np.zeros(n)
    return [[base, base[k:]], [base[:k + 1], base[k:]], [base, base]][which]


BAD_PARAMS = st.one_of(
    BAD_PARAM_ARRAYS,
    NOT_AN_ARRAY,
    st.sampled_from([[], ()]),
    st.tuples(st.lists(st.integers(1, 4).map(np.zeros), max_size=2),
              st.one_of(BAD_PARAM_ARRAYS, NOT_AN_ARRAY), st.integers(0, 3)).map(_insert),
    st.tuples(st.lists(st.integers(1, 4).map(np.zeros), min_size=1, max_size=2),
              st.integers(1, 4).map(lambda n: np.zeros(n, np.float32)),
              st.integers(0, 3)).map(_insert),
    st.tuples(st.integers(2, 6), st.integers(0, 1), st.integers(0, 2)).map(_sharing),
)


@given(params=BAD_PARAMS, cls=st.sampled_from(CLASSES))
def test_constructors_refuse_bad_params(params, cls):
    before = array_bytes(params)
    raises_naming(("params",), lambda: cls(params))
    assert array_bytes(params) == before


# ----------------------------------------------------------------------- step

@st.composite
def optimizers(draw, layouts=(((4, 3),), ((4, 3), (5,)))):
    """An optimizer of any class and dtype over one or two arrays, one step taken."""
    cls = draw(st.sampled_from(CLASSES), label="class")
    dtype = draw(st.sampled_from(FLOATS), label="dtype")
    shapes = draw(st.sampled_from(layouts), label="shapes")
    arrays = [np.linspace(-1, 1, math.prod(s), dtype=dtype).reshape(s) for s in shapes]
    single = len(shapes) == 1 and draw(st.booleans(), label="a single array, not a list")
    opt = cls(arrays[0] if single else arrays, lr=0.01)
    opt.step(np.full(shapes[0], 0.5, dtype) if single
             else [np.full(s, 0.5, dtype) for s in shapes])
    return opt


BAD_GRAD_DTYPES = [np.complex64, np.complex128, np.bool_, object, "<U3", "S2", "M8[s]",
                   "m8[s]", "V8", [("a", "f8")], *LONGDOUBLE]


def aliases(opt, i):
    """Views of memory the step writes, shaped as parameter array ``i``."""
    params = param_list(opt)
    p = params[i]
    views = [p, p[::-1]]
    for j, q in enumerate(params):
        if j != i and q.size >= p.size:
            views.append(q.reshape(-1)[:p.size].reshape(p.shape))
    for buf in opt.state.values():
        for start in range(buf.size - p.size + 1):
            window = buf[start:start + p.size]
            views += [window.reshape(p.shape), window[::-1].reshape(p.shape)]
    owned = params + list(opt.state.values())
    return [v for v in views if any(np.shares_memory(v, o) for o in owned)]


def bad_array_grads(opt, i):
    p = param_list(opt)[i]
    return st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
        .filter(lambda s: s != p.shape).map(lambda s: np.ones(s, p.dtype)),
        st.sampled_from(BAD_GRAD_DTYPES).map(lambda dt: np.zeros(p.shape, dt)),
        st.one_of(st.none(), st.text(max_size=3), st.just(object()),
                  st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
        st.sampled_from(aliases(opt, i)))


def bad_grads(opt):
    params = param_list(opt)
    if not isinstance(opt.params, (list, tuple)):
        return bad_array_grads(opt, 0)
    good = [np.ones(p.shape, p.dtype) for p in params]
    return st.one_of(
        st.one_of(st.just(good[0]), st.none(), st.text(max_size=2),
                  st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)),
        st.lists(st.just(np.ones(3)), max_size=4).filter(lambda g: len(g) != len(params)),
        st.integers(0, len(params) - 1).flatmap(
            lambda i: bad_array_grads(opt, i).map(lambda g: good[:i] + [g] + good[i + 1:])))


@given(data=st.data())
def test_step_refuses_bad_input_and_changes_nothing(data):
    opt = data.draw(optimizers(), label="optimizer")
    params = param_list(opt)
    good = ([np.ones(p.shape, p.dtype) for p in params]
            if isinstance(opt.params, (list, tuple)) else np.ones(params[0].shape, opt.dtype))
    what = data.draw(st.sampled_from(["grad", "lr"]), label="bad argument")
    grad = data.draw(bad_grads(opt), label="grad") if what == "grad" else good
    lr = data.draw(bad_step_lr(opt.dtype), label="lr") if what == "lr" else None
    before, caller = snapshot(opt), array_bytes(grad)
    raises_naming((what,), lambda: opt.step(grad, lr=lr))
    assert snapshot(opt) == before
    assert array_bytes(grad) == caller


# ------------------------------------------------------------------ step_rows

def bad_index(n):
    return st.one_of(
        st.integers(-2 ** 70, -1), st.integers(n, 2 ** 70),
        st.integers(-2 ** 63, -1).map(np.int64), st.integers(n, 2 ** 63 - 1).map(np.int64),
        st.floats(), st.none(), st.text(max_size=2), st.booleans(),
        st.sampled_from([np.True_, np.float64(0.0)]), st.lists(st.integers(0, 1), max_size=2))


def _out_of_range_rows(args):
    rows, bad, i = args
    return rows[:i % (len(rows) + 1)] + [bad] + rows[i % (len(rows) + 1):]


def bad_rows(m):
    in_range = st.integers(0, m - 1)
    return st.one_of(
        st.sampled_from([np.float64, np.float32, np.float16, np.complex128]).flatmap(
            lambda dt: hnp.arrays(dt, st.integers(1, 4), elements=st.floats(0, 4, width=16))),
        st.lists(st.floats(), min_size=1, max_size=4),
        hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=3, max_side=3),
                   elements=in_range),
        in_range, in_range.map(np.int64),
        st.tuples(st.lists(in_range, max_size=3),
                  st.one_of(st.integers(-2 ** 63, -1), st.integers(m, 2 ** 63 - 1)),
                  st.integers(0, 3)).map(_out_of_range_rows),
        st.integers(m, 2 ** 64 - 1).map(lambda v: np.array([v], np.uint64)),
        st.integers(2 ** 64, 2 ** 80).map(lambda v: [v]),
        st.lists(st.booleans(), min_size=1, max_size=3),
        st.one_of(st.text(max_size=3), st.none(), st.just(object())))


def bad_row_grads(p, k):
    expected = (k,) + p.shape[1:]
    return st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)
        .filter(lambda s: s != expected).map(lambda s: np.ones(s, p.dtype)),
        st.sampled_from(BAD_GRAD_DTYPES).map(lambda dt: np.zeros(expected, dt)),
        st.one_of(st.none(), st.text(max_size=3), st.just(object())),
        st.sampled_from([p[:k], p[::-1][:k]]))


@given(data=st.data())
def test_step_rows_refuses_bad_input_and_changes_nothing(data):
    opt = data.draw(optimizers(layouts=(((5, 3),), ((5, 3), (6,)))), label="optimizer")
    params = param_list(opt)
    index = data.draw(st.integers(0, len(params) - 1), label="index")
    p = params[index]
    rows = data.draw(st.lists(st.integers(0, p.shape[0] - 1), min_size=1,
                              max_size=p.shape[0]), label="valid rows")
    grad = np.ones((len(rows),) + p.shape[1:], p.dtype)
    kwargs = dict(index=index)
    what = data.draw(st.sampled_from(["index", "rows", "grad", "lr"]), label="bad argument")
    if what == "index":
        kwargs["index"] = data.draw(bad_index(len(params)), label="index")
    elif what == "rows":
        rows = data.draw(bad_rows(p.shape[0]), label="rows")
    elif what == "grad":
        grad = data.draw(bad_row_grads(p, len(rows)), label="grad")
    else:
        kwargs["lr"] = data.draw(bad_step_lr(opt.dtype), label="lr")
    before, caller = snapshot(opt), (array_bytes(rows), array_bytes(grad))
    raises_naming((what,), lambda: opt.step_rows(rows, grad, **kwargs))
    assert snapshot(opt) == before
    assert (array_bytes(rows), array_bytes(grad)) == caller


# ------------------------------------------------------------ load_state_dict

SOURCES = {**{cls: {} for cls in CLASSES},  # each class's defaults, and these variants
           rmsopt.RMSprop: dict(momentum=0.9, lr=schedules.exponential(0.1, 0.9)),
           rmsopt.SGD: dict(momentum=0.9)}


@functools.cache
def _source_state_dict(cls, dtype):
    """A valid state dict (two steps taken) for ``_target(cls, dtype)``, from another
    optimizer with other hyperparameters."""
    x = np.linspace(-1, 1, 12, dtype=dtype).reshape(4, 3)
    src = cls(x, **SOURCES[cls])
    src.step(np.full((4, 3), 0.5, dtype))
    src.step(np.full((4, 3), -0.25, dtype))
    return src.state_dict()


def _target(cls, dtype):
    opt = cls(np.zeros((4, 3), dtype), lr=0.05)
    opt.step(np.ones((4, 3), dtype))
    return opt


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 63 - 1),
                         st.floats(), st.text(max_size=6))
JSON = st.recursive(JSON_SCALARS, lambda c: st.one_of(
    st.lists(c, max_size=3), st.dictionaries(st.text(max_size=4), c, max_size=3)),
    max_leaves=6)
BAD_T = st.one_of(st.integers(max_value=-1), st.integers(min_value=checkpoint.MAX_T + 1),
                  st.integers(checkpoint.MAX_T + 1, 2 ** 64 - 1).map(np.uint64),
                  st.floats(), st.text(max_size=3), st.none(), st.booleans(),
                  st.lists(st.integers(0, 3), max_size=2))

SCHEDULE_ARGS = {"constant": dict(lr=0.1), "exponential": dict(lr=0.1, gamma=0.5),
                 "step": dict(lr=0.1, step_size=3, gamma=0.5),
                 "cosine": dict(lr=0.1, period=10, lr_min=0.0),
                 "warmup": dict(schedule=0.1, steps=5)}


def bad_schedule_arg(name):
    """Bad values of one schedule parameter (non-integral counts: ``KNOWN_GAPS``)."""
    count = (0.0, None, True, False)
    spec = {"lr": (0.0,), "gamma": (0.0, 1.0, True, False), "step_size": count,
            "period": count, "steps": count, "lr_min": (0.0, SCHEDULE_ARGS["cosine"]["lr"])}
    return st.one_of(NOT_REAL, st.none(), out_of_range(*spec[name]))


@st.composite
def bad_schedule_specs(draw, json_only=False):
    """A damaged ``schedule`` entry of a state dict or header: ``(spec, words)``."""
    value = JSON if json_only else st.one_of(JSON, NOT_REAL)
    kind = draw(st.sampled_from(["type", "keys", "name", "params", "value", "drop", "extra"]))
    if kind == "type":
        return draw(value.filter(lambda v: v is not None and not isinstance(v, dict))), \
            ("schedule",)
    if kind == "keys":
        return draw(st.dictionaries(st.text(max_size=6), JSON, max_size=3)
                    .filter(lambda d: set(d) != {"name", "params"})), ("schedule",)
    if kind == "name":
        name = draw(st.one_of(st.text(max_size=8), st.integers(), st.none(), st.floats())
                    .filter(lambda n: n not in schedules.KINDS))
        return {"name": name, "params": {}}, ("schedule",)
    name = draw(st.sampled_from(sorted(SCHEDULE_ARGS)))
    params = dict(SCHEDULE_ARGS[name])
    if kind == "params":
        return {"name": name, "params": draw(value.filter(lambda v: not isinstance(v, dict)))}, \
            ("schedule",)
    if kind == "drop":  # a required parameter
        signature = inspect.signature(schedules.KINDS[name]).parameters
        key = draw(st.sampled_from([k for k in sorted(params)
                                    if signature[k].default is inspect.Parameter.empty]))
        del params[key]
        return {"name": name, "params": params}, ("schedule",)
    if kind == "extra":
        params[draw(st.text(max_size=6).filter(lambda k: k not in params))] = 1
        return {"name": name, "params": params}, ("schedule",)
    key = draw(st.sampled_from(sorted(params)))
    if key == "schedule":  # warmup's inner schedule: a damaged spec
        params[key], inner = draw(st.one_of(
            bad_schedule_specs(json_only=json_only),
            st.just(({"name": "constant", "params": {"lr": -1.0}}, ("lr",)))))
        return {"name": name, "params": params}, ("schedule",) + inner
    bad = bad_schedule_arg(key)
    params[key] = draw(bad.filter(_is_json) if json_only else bad)
    return {"name": name, "params": params}, ("schedule", key)


def _is_json(v):
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, (np.generic, tuple))


def bad_state_array(n, dtype, nonnegative):
    good = np.linspace(0, 1, n, dtype=dtype)
    parts = [
        st.sampled_from([d for d in (np.float32, np.float64, np.float16, np.int64,
                                     np.complex128, object, np.bool_) if d != dtype])
        .map(lambda d: good.astype(d)),
        hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=13)
        .filter(lambda s: s != (n,)).map(lambda s: np.zeros(s, dtype)),
        st.integers(0, n - 1).map(lambda i: np.where(np.arange(n) == i, np.nan, good)
                                  .astype(dtype)),
        st.one_of(st.none(), st.floats(), st.lists(st.floats(0, 1), max_size=n + 1),
                  st.text(max_size=2)),
    ]
    if nonnegative:
        parts.append(st.tuples(st.integers(0, n - 1), st.floats(-1e30, -1e-30)).map(
            lambda t: np.where(np.arange(n) == t[0], t[1], good).astype(dtype)))
    return st.one_of(parts)


def bad_param_arrays(shape, dtype):
    good = np.linspace(-1, 1, math.prod(shape), dtype=dtype).reshape(shape)
    return st.one_of(
        st.sampled_from([d for d in (np.float32, np.float64, np.float16, np.int64,
                                     np.complex128, object) if d != dtype])
        .map(lambda d: good.astype(d)),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
        .filter(lambda s: s != shape).map(lambda s: np.zeros(s, dtype)),
        st.tuples(st.integers(0, good.size - 1), st.sampled_from([math.nan, math.inf, -math.inf]))
        .map(lambda t: np.where(np.arange(good.size) == t[0], t[1], good.reshape(-1))
             .astype(dtype).reshape(shape)),
        st.one_of(st.none(), st.floats(), st.lists(st.floats(0, 1), max_size=3)))


@st.composite
def damaged_state_dicts(draw):
    """``(class, dtype, state dict, words)``: a valid state dict with one thing damaged, and
    the words of which the error message must name one."""
    cls = draw(st.sampled_from(CLASSES), label="class")
    dtype = draw(st.sampled_from(FLOATS), label="dtype")
    d = copy.deepcopy(_source_state_dict(cls, dtype))
    rule = rules.RULES[d["rule"]]
    kind = draw(st.sampled_from(
        ["not a dict", "drop", "header", "t", "shapes", "hyper", "hyper drop", "hyper unknown",
         "hyper value", "state", "state drop", "state extra", "state value", "params",
         "params length", "params value", "schedule"]), label="damage")
    if kind == "not a dict":
        return cls, dtype, draw(st.one_of(JSON, NOT_REAL).filter(
            lambda v: not isinstance(v, dict))), ("state dict",)
    if kind == "drop":
        key = draw(st.sampled_from(checkpoint._KEYS))
        del d[key]
        return cls, dtype, d, (key,)
    if kind == "header":
        key = draw(st.sampled_from(["format", "version", "optimizer", "rule", "dtype"]))
        live = d[key]
        # (!= also leaves out True and 1.0 for version 1, and arrays: KNOWN_GAPS)
        d[key] = draw(st.one_of(JSON, st.just(object()), st.complex_numbers())
                      .filter(lambda v: v != live))
        return cls, dtype, d, (key,)
    if kind == "t":
        d["t"] = draw(BAD_T)
        return cls, dtype, d, ("step count",)
    if kind == "shapes":
        d["shapes"] = draw(JSON.filter(lambda v: v != [[4, 3]]))
        return cls, dtype, d, ("shapes",)
    if kind == "hyper":
        d["hyper"] = draw(st.one_of(JSON, NOT_REAL).filter(lambda v: not isinstance(v, dict)))
        return cls, dtype, d, ("hyperparameters",)
    if kind == "hyper drop":
        key = draw(st.sampled_from(sorted(d["hyper"])))
        del d["hyper"][key]
        return cls, dtype, d, (key,)
    if kind == "hyper unknown":
        d["hyper"][draw(st.text(max_size=8).filter(lambda k: k not in d["hyper"]))] = 0.5
        return cls, dtype, d, ("unknown",)
    if kind == "hyper value":
        key = draw(st.sampled_from(sorted(d["hyper"])))
        d["hyper"][key] = draw(bad_value(key, dtype))
        return cls, dtype, d, names(key)
    if kind == "state":
        d["state"] = draw(st.one_of(JSON, NOT_REAL).filter(lambda v: not isinstance(v, dict)))
        return cls, dtype, d, ("state",)
    if kind == "state drop":
        del d["state"][draw(st.sampled_from(sorted(d["state"])))]
        return cls, dtype, d, ("state",)
    if kind == "state extra":
        d["state"][draw(st.text(max_size=5).filter(lambda k: k not in d["state"]))] = \
            np.zeros(12, dtype)
        return cls, dtype, d, ("state",)
    if kind == "state value":
        slot = draw(st.sampled_from(sorted(d["state"])))
        d["state"][slot] = draw(bad_state_array(12, np.dtype(dtype), slot in rule.nonnegative))
        return cls, dtype, d, (repr(slot),)
    if kind == "params":
        d["params"] = draw(st.one_of(st.none(), st.text(max_size=2), st.integers(),
                                     st.just(np.zeros((1, 4, 3), dtype)),
                                     st.dictionaries(st.text(max_size=2), st.integers(),
                                                     max_size=2)))
        return cls, dtype, d, ("param",)
    if kind == "params length":
        d["params"] = draw(st.sampled_from([0, 2, 3])) * [np.zeros((4, 3), dtype)]
        return cls, dtype, d, ("param",)
    if kind == "params value":
        d["params"] = [draw(bad_param_arrays((4, 3), np.dtype(dtype)))]
        return cls, dtype, d, ("param",)
    d["schedule"], words = draw(bad_schedule_specs())
    return cls, dtype, d, words


@given(case=damaged_state_dicts())
def test_load_state_dict_refuses_damaged_dicts_and_changes_nothing(case):
    cls, dtype, d, words = case
    opt = _target(cls, dtype)
    before = snapshot(opt)
    raises_naming(words, lambda: opt.load_state_dict(d))
    assert snapshot(opt) == before


# ------------------------------------------------------------------- load(path)

@functools.cache
def _saved(cls, dtype):
    """``(header, arrays)`` of a checkpoint saved by ``cls`` over float ``dtype`` arrays."""
    src = cls(np.linspace(-1, 1, 12, dtype=dtype).reshape(4, 3), **SOURCES[cls])
    src.step(np.full((4, 3), 0.5, dtype))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "good.npz")
        src.save(path)
        with np.load(path, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
    return json.loads(str(members.pop("header")[()])), members


def json_bad_value(key, dtype):
    """JSON values of a saved hyperparameter that the constructor refuses."""
    return bad_value(key, dtype).filter(_is_json)


@st.composite
def damaged_headers(draw, cls, dtype):
    """``(header member, words)``: the ``header`` member of a valid checkpoint, damaged."""
    header, _ = _saved(cls, dtype)
    h = copy.deepcopy(header)
    kind = draw(st.sampled_from(["drop", "replace", "hyper drop", "hyper unknown",
                                 "hyper value", "schedule", "digest", "text", "member"]),
                label="damage")
    words = ("checkpoint",)
    if kind == "drop":
        key = draw(st.sampled_from(sorted(set(h) - {"schedule"})))
        del h[key]
        words += (key,)
    elif kind == "replace":
        key = draw(st.sampled_from(sorted(h)))
        live = h[key]
        if key == "t":
            h[key] = draw(BAD_T.filter(_is_json))
        elif key == "schedule":
            h[key], more = draw(bad_schedule_specs(json_only=True))
            words += more
        else:  # (!= also leaves out True and 1.0 for version 1: KNOWN_GAPS)
            h[key] = draw(JSON.filter(lambda v: v != live and not _same_slots(key, v, live)))
        words += (key, "schedule", "step count")
    elif kind == "hyper drop":
        key = draw(st.sampled_from(sorted(h["hyper"])))
        del h["hyper"][key]
        words += (key,)
    elif kind == "hyper unknown":
        h["hyper"][draw(st.text(max_size=8).filter(lambda k: k not in h["hyper"]))] = 0.5
    elif kind == "hyper value":
        key = draw(st.sampled_from(sorted(h["hyper"])))
        h["hyper"][key] = draw(json_bad_value(key, dtype))
        words += names(key)
    elif kind == "schedule":
        h["schedule"], more = draw(bad_schedule_specs(json_only=True))
        words += more
    elif kind == "digest":
        member = draw(st.sampled_from(sorted(h["sha256"])))
        h["sha256"][member] = draw(st.text(max_size=64).filter(
            lambda s: s != h["sha256"][member]))
    if kind == "text":
        return np.array(draw(st.text(max_size=30).filter(_not_a_header))), words
    text = json.dumps(h)
    if kind == "member":
        return draw(st.sampled_from([np.array([text]), np.array(text.encode()), np.array(5),
                                     np.array([1.0, 2.0]), np.array(text, dtype=object)])), words
    return np.array(text), words


def _same_slots(key, v, live):
    """Whether ``v`` names the same state slots as ``live`` (another order: still valid)."""
    return key == "state_slots" and isinstance(v, list) and \
        all(isinstance(k, str) for k in v) and set(v) == set(live)


def _not_a_header(s):
    try:
        return not isinstance(json.loads(s), dict)
    except ValueError:
        return True


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("damaged_checkpoints")


@given(data=st.data())
def test_load_refuses_damaged_headers_and_changes_nothing(data, folder):
    cls = data.draw(st.sampled_from(CLASSES), label="class")
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    member, words = data.draw(damaged_headers(cls, dtype), label="header")
    path = os.path.join(folder, f"{cls.__name__}-{np.dtype(dtype).name}.npz")
    np.savez(path, header=member, **_saved(cls, dtype)[1])
    opt = _target(cls, dtype)
    before = snapshot(opt)
    raises_naming(words, lambda: opt.load(path))
    assert snapshot(opt) == before


# ------------------------------------------------------------------- minimize

A = np.linspace(-1, 1, 24).reshape(8, 3)
Y = np.linspace(0, 1, 8)


def problem():
    """``fun, jac, calls``: a least-squares objective over the data ``A, Y`` that records
    its calls."""
    calls = []

    def fun(x, a, y):
        calls.append(1)
        r = a @ x - y
        return float(r @ r) / len(y)

    def jac(x, a, y):
        return 2 * a.T @ (a @ x - y) / len(y)

    return fun, jac, calls


def start(dtype):
    return np.array([0.5, -0.25, 1.0], dtype)


BAD_COUNT = st.one_of(
    st.integers(-2 ** 63, -1), st.integers(-2 ** 63, -1).map(np.int64),
    numbers(st.floats().filter(lambda v: not (math.isfinite(v) and v.is_integer() and v >= 0))),
    st.text(max_size=3), st.booleans(), st.lists(st.integers(0, 3), max_size=2),
    st.complex_numbers(max_magnitude=5), st.just(Decimal(3)))
BAD_BATCH = st.one_of(st.integers(-2 ** 63, 0), st.integers(len(Y) + 1, 2 ** 63),
                      st.integers(-5, 0).map(np.int64), numbers(st.floats()),
                      st.text(max_size=2), st.booleans(), st.lists(st.integers(1, 2), max_size=2))
BAD_EPOCHS = st.one_of(st.integers(-2 ** 63, 0), numbers(st.floats()), st.text(max_size=2),
                       st.booleans(), st.none().map(lambda _: [1]))
BAD_DATA = st.one_of(
    st.integers(2, 2 ** 70), st.integers(-2 ** 70, -1), st.integers(2, 9).map(np.int64),
    st.tuples(st.integers(0, 1), st.integers(2, 100)), st.tuples(st.integers(-9, -1)),
    st.text(max_size=2), st.floats(), st.booleans(), st.sampled_from([(), []]),
    st.lists(st.floats(), min_size=1, max_size=2), st.lists(st.booleans(), min_size=1,
                                                            max_size=2))
BAD_COMPILED = st.one_of(st.text(max_size=3), st.integers().filter(lambda v: v != 0),
                         st.floats().filter(lambda v: v != 0), st.just(True),
                         st.lists(st.booleans(), max_size=2), st.just(object()))


def bad_tol(name):
    s = st.one_of(out_of_range(0.0), NOT_REAL)
    return s if name == "tol" else st.one_of(s, st.none())


def bad_minimize_lr(dtype):
    bad = st.one_of(NOT_REAL, out_of_range(0.0))
    return st.one_of(bad, unrepresentable("lr", dtype), bad.map(Returns))


def bad_options(method, dtype):
    """``(option, value)``: one bad option of ``method``."""
    hypers = [n for n in keywords(METHODS[method]) if n != "lr"]
    return st.one_of(
        st.tuples(st.just("lr"), bad_minimize_lr(dtype)),
        st.tuples(st.just("maxiter"), BAD_COUNT),
        st.sampled_from(["gtol", "ftol", "tol"]).flatmap(
            lambda n: st.tuples(st.just(n), bad_tol(n))),
        st.tuples(st.just("batch_size"), BAD_BATCH),
        st.tuples(st.just("epochs"), BAD_EPOCHS),
        st.tuples(st.just("data"), BAD_DATA),
        st.tuples(st.just("compiled"), BAD_COMPILED),
        st.sampled_from(hypers).flatmap(lambda n: st.tuples(st.just(n), bad_value(n, dtype))))


@given(data=st.data())
def test_minimize_refuses_bad_options_before_evaluating(data):
    method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    name, value = data.draw(bad_options(method, dtype), label="option")
    options, kwargs = {"maxiter": 3}, {}
    if name == "tol" and data.draw(st.booleans(), label="tol as minimize's argument"):
        kwargs["tol"] = value
    elif name == "epochs" and isinstance(value, list):  # a valid count, but no batch_size
        options["epochs"] = 3
    else:
        options[name] = value
        if name in ("epochs", "data"):
            options["batch_size"] = 2
    fun, jac, calls = problem()
    x0 = start(dtype)
    before = x0.tobytes()
    raises_naming(names(name), lambda: rmsopt.minimize(fun, x0, args=(A, Y), method=method,
                                                       jac=jac, options=options, **kwargs))
    assert x0.tobytes() == before and not calls


BAD_X0 = st.one_of(
    st.tuples(st.sampled_from(FLOATS).flatmap(
        lambda dt: hnp.arrays(dt, st.integers(1, 5), elements=st.floats(-5, 5, width=32))),
        st.sampled_from([math.nan, math.inf, -math.inf]), st.integers(0, 10))
    .map(_with_non_finite),
    st.lists(st.floats(-5, 5), min_size=0, max_size=3).map(lambda v: v + [math.nan]),
    hnp.arrays(np.complex128, st.integers(1, 3)), st.lists(st.complex_numbers(), min_size=1,
                                                           max_size=3).filter(
        lambda v: any(c.imag for c in v)),
    st.text(max_size=3), hnp.arrays("<U2", st.integers(1, 3)),
    st.sampled_from([np.array([1.0, "a"], dtype=object), None, {}, [], np.zeros(0),
                     np.zeros(0, np.float32), [[1.0], [1.0, 2.0]], np.zeros(3, "M8[s]")]),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, max_side=3)),
    hnp.arrays(np.float16, st.integers(1, 3)),
    *[hnp.arrays(t, st.integers(1, 3)) for t in LONGDOUBLE])


@given(x0=BAD_X0, method=st.sampled_from(sorted(METHODS)))
def test_minimize_refuses_bad_x0_before_evaluating(x0, method):
    fun, jac, calls = problem()
    before = array_bytes(x0)
    raises_naming(("x0",), lambda: rmsopt.minimize(fun, x0, args=(A, Y), method=method,
                                                   jac=jac, options={"maxiter": 3}))
    assert array_bytes(x0) == before and not calls


BAD_JAC = st.one_of(st.text(max_size=8).filter(lambda s: s not in ("2-point", "3-point")),
                    st.integers(), st.floats(), st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
BAD_GRADIENT = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    .filter(lambda s: s != (3,)).map(np.ones),
    st.none(), st.text(max_size=3),
    st.sampled_from([np.ones(3, np.complex128), np.array([1, "a", None], dtype=object),
                     np.array(["a", "b", "c"]), np.zeros(3, "M8[s]")]),
    st.lists(st.floats(), max_size=5).filter(lambda v: len(v) != 3))
BAD_F = st.one_of(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=3)
               ).filter(lambda a: a.size != 1),
    st.text(max_size=3), st.binary(max_size=2), st.none(), st.complex_numbers(),
    st.just(object()), st.just({}), st.just((1.0, np.ones(3))),
    st.sampled_from([np.array(["a"]), np.array([1 + 1j]), [1.0, 2.0]]))


NOT_A_PAIR = object()


@given(data=st.data())
def test_minimize_refuses_bad_jac_and_fun(data):
    method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
    x0 = start(data.draw(st.sampled_from(FLOATS), label="dtype"))
    before = x0.tobytes()
    fun, jac, calls = problem()
    what = data.draw(st.sampled_from(["jac argument", "jac value", "jac=True value",
                                      "fun value"]), label="bad")
    words = ("jac",)
    if what == "jac argument":
        jac = data.draw(BAD_JAC, label="jac")
    elif what == "jac value":
        g = data.draw(BAD_GRADIENT, label="gradient")
        jac = lambda x, a, y: g
    elif what == "jac=True value":
        g = data.draw(st.one_of(BAD_GRADIENT, st.just(NOT_A_PAIR)), label="gradient")
        pair = fun
        fun = lambda x, a, y: g if g is NOT_A_PAIR else (pair(x, a, y), g)
        jac = True
    else:
        f = data.draw(BAD_F, label="f")
        fun = lambda x, a, y: f
        words = ("objective function",)  # scipy's wording
    raises_naming(words, lambda: rmsopt.minimize(fun, x0, args=(A, Y), method=method,
                                                 jac=jac, options={"maxiter": 3}))
    assert x0.tobytes() == before
    if what == "jac argument":
        assert not calls


FINITE_BOUND = st.one_of(st.floats(allow_nan=False), st.integers(-10, 10), st.none())


def _ordered(pair):
    lo, hi = pair
    return lo is None or hi is None or lo <= hi


GOOD_PAIR = st.tuples(FINITE_BOUND, FINITE_BOUND).filter(_ordered).filter(
    lambda p: p[0] != math.inf and p[1] != -math.inf)  # (inf, inf): KNOWN_GAPS


def _replace(args):
    pairs, bad, i = args
    pairs = list(pairs)
    pairs[i % len(pairs)] = bad
    return pairs


def _bad_pairs(bad):
    return st.tuples(st.lists(GOOD_PAIR, min_size=3, max_size=3), bad, st.integers(0, 2)).map(
        _replace)


CROSSED = st.tuples(st.floats(allow_nan=False), st.floats(allow_nan=False)).filter(
    lambda p: p[0] != p[1]).map(lambda p: (max(p), min(p)))
NAN = st.sampled_from([math.nan, np.float64(math.nan)])
BAD_BOUNDS = st.one_of(
    _bad_pairs(st.one_of(st.tuples(NAN, FINITE_BOUND), st.tuples(FINITE_BOUND, NAN))),
    _bad_pairs(CROSSED),
    st.lists(GOOD_PAIR, max_size=6).filter(lambda v: len(v) != 3),
    _bad_pairs(st.one_of(st.floats(), st.none(), st.text(max_size=2),
                         st.tuples(st.floats(), st.floats(), st.floats()), st.tuples(st.floats()),
                         st.dictionaries(st.integers(), st.integers(), max_size=3),
                         st.just(([0.0], [1.0])))),
    st.text(max_size=4).filter(lambda s: len(s) != 3),
    st.sampled_from([2, 4, 5]).map(lambda n: Bounds(np.zeros(n), np.ones(n))),
    st.sampled_from([Bounds(np.nan, 1.0), Bounds(0.0, [1.0, np.nan, 2.0]), Bounds(1.0, 0.0),
                     Bounds([0.0, 2.0, 0.0], 1.0)]),
)


@given(bounds=BAD_BOUNDS, method=st.sampled_from(sorted(METHODS)),
       dtype=st.sampled_from(FLOATS))
def test_minimize_refuses_bad_bounds_before_evaluating(bounds, method, dtype):
    fun, jac, calls = problem()
    x0 = start(dtype)
    before = x0.tobytes()
    raises_naming(("bounds",), lambda: rmsopt.minimize(fun, x0, args=(A, Y), method=method,
                                                       jac=jac, bounds=bounds,
                                                       options={"maxiter": 3}))
    assert x0.tobytes() == before and not calls


@given(method=st.one_of(st.text(max_size=8).filter(lambda s: s.lower() not in METHODS),
                        st.none(), st.integers(), st.lists(st.text(max_size=2), max_size=2),
                        st.just(rmsopt.methods.rmsprop)))
def test_minimize_refuses_unknown_methods(method):
    fun, jac, calls = problem()
    x0 = start(np.float64)
    # scipy's wording, "Unknown solver", which does not say "method"
    raises_naming(("solver", "method"), lambda: rmsopt.minimize(fun, x0, args=(A, Y),
                                                                method=method, jac=jac))
    assert not calls


# ------------------------------------------------------------------ schedules

@given(data=st.data())
def test_schedules_refuse_bad_parameters(data):
    kind = data.draw(st.sampled_from(sorted(SCHEDULE_ARGS)), label="schedule")
    # warmup's schedule: KNOWN_GAPS
    name = data.draw(st.sampled_from(sorted(set(SCHEDULE_ARGS[kind]) - {"schedule"})),
                     label="parameter")
    value = data.draw(bad_schedule_arg(name), label="value")
    kwargs = dict(SCHEDULE_ARGS[kind], **{name: value})
    raises_naming((name,), lambda: getattr(schedules, kind)(**kwargs))


# ----------------------------------------------------------------------- Dask

try:
    import dask.array as da

    import rmsopt.dask
except ImportError:  # the dask extra is not installed
    da = None
needs_dask = pytest.mark.skipif(da is None, reason="dask is not installed (pip install "
                                "'rmsopt[dask]')")


def dask_snapshot(opt):
    return dict(hyper=opt.hyper, t=opt.t, params=opt.params.compute().tobytes(),
                state={k: v.compute().tobytes() for k, v in opt.state.items()})


@needs_dask
@given(data=st.data())
def test_dask_optimizers_refuse_bad_input_and_change_nothing(data):
    """The Dask optimizers: bad keywords at construction, bad ``params``, and a bad ``grad``
    or ``lr`` for a step, which leaves parameters, state and ``t`` as they were."""
    cls = data.draw(st.sampled_from(CLASSES), label="class")
    dask_cls = getattr(rmsopt.dask, cls.__name__)
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    x = da.from_array(np.linspace(-1, 1, 6, dtype=dtype), chunks=4)
    what = data.draw(st.sampled_from(["keyword", "params", "grad", "lr"]), label="bad argument")
    if what == "keyword":
        name = data.draw(st.sampled_from(keywords(cls)), label="keyword")
        value = data.draw(bad_value(name, dtype), label="value")
        raises_naming(names(name), lambda: dask_cls(x, **{name: value}))
        return
    if what == "params":
        params = data.draw(st.one_of(
            NOT_AN_ARRAY, BAD_PARAM_ARRAYS.filter(lambda a: a.flags.writeable and a.size
                                                  and a.dtype not in FLOATS)
            .map(lambda a: da.from_array(a, chunks=2)),
            st.sampled_from([math.nan, math.inf]).map(
                lambda v: da.from_array(np.array([0.0, v], dtype), chunks=1))), label="params")
        raises_naming(("params",), lambda: dask_cls(params))
        return
    opt = dask_cls(x, lr=0.01)
    opt.step(np.full(6, 0.5, dtype))
    before = dask_snapshot(opt)
    if what == "grad":
        grad = data.draw(st.one_of(
            hnp.array_shapes(min_dims=0, max_dims=2, max_side=7).filter(lambda s: s != (6,))
            .map(lambda s: np.ones(s, dtype)),
            st.sampled_from(BAD_GRAD_DTYPES).map(lambda dt: np.zeros(6, dt)),
            st.sampled_from([da.ones(5, chunks=2), da.ones((6, 1), chunks=2),
                             da.ones(6, chunks=2, dtype=complex)]),
            st.one_of(st.none(), st.text(max_size=3), st.just(object()))), label="grad")
        raises_naming(("grad",), lambda: opt.step(grad))
    else:
        lr = data.draw(bad_step_lr(dtype), label="lr")
        raises_naming(("lr",), lambda: opt.step(np.ones(6, dtype), lr=lr))
    assert dask_snapshot(opt) == before


# ------------------------------------------------------------ known gaps (xfail)

def _optimizer(cls=rmsopt.RMSprop, dtype=np.float64, **kwargs):
    opt = cls(np.linspace(-1, 1, 12, dtype=dtype).reshape(4, 3), **kwargs)
    opt.step(np.full((4, 3), 0.5, dtype))
    return opt


def _unchanged(call, opt):
    """``call`` then the check that ``opt`` did not change (for calls that must raise)."""
    def checked():
        before = snapshot(opt)
        try:
            call()
        finally:
            assert snapshot(opt) == before, "the optimizer changed"
    return checked


def _on_optimizer(method, cls=rmsopt.RMSprop, **kwargs):
    """``method(opt)`` on a fresh optimizer, which must be left unchanged."""
    def call():
        opt = _optimizer(cls, **kwargs)
        _unchanged(lambda: method(opt), opt)()
    return call


def _load_state_dict(mutate, cls=rmsopt.RMSprop, dtype=np.float64):
    def call():
        d = copy.deepcopy(_source_state_dict(cls, dtype))
        mutate(d)
        opt = _target(cls, dtype)
        _unchanged(lambda: opt.load_state_dict(d), opt)()
    return call


def _load_header(mutate, cls=rmsopt.RMSprop, dtype=np.float64):
    def call():
        header, arrays = _saved(cls, dtype)
        h = copy.deepcopy(header)
        mutate(h)
        opt = _target(cls, dtype)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "damaged.npz")
            np.savez(path, header=np.array(json.dumps(h)), **arrays)
            _unchanged(lambda: opt.load(path), opt)()
    return call


def _minimize(x0=None, **kwargs):
    fun, jac, _ = problem()
    kwargs.setdefault("jac", jac)
    x0 = start(np.float64) if x0 is None else x0

    def call():
        before = x0.tobytes()
        try:
            rmsopt.minimize(fun, x0, args=(A, Y), **kwargs)
        finally:
            assert x0.tobytes() == before
    return call


# The gaps still open; every other case below was a gap once and is now a regression test.
OPEN_GAPS = set()


def _gap(call, words, reason, raises=AssertionError, exc=(ValueError, TypeError), id=None):
    marks = [pytest.mark.xfail(strict=True, raises=raises, reason=reason)] \
        if id in OPEN_GAPS else []
    return pytest.param(call, words, exc, id=id, marks=marks)


def _set_hyper(key, value):
    return lambda d: d["hyper"].__setitem__(key, value)


def _set(key, value):
    return lambda d: d.__setitem__(key, value)


_f32 = functools.partial(_optimizer, dtype=np.float32)
BIG = 10 ** 400  # an int that float() overflows
OVERFLOW = "float() of a huge int raises OverflowError, not ValueError"
RAGGED = "NumPy's 'inhomogeneous shape' ValueError escapes without naming the argument"
KNOWN_GAPS = [
    # Python ints beyond float range: OverflowError
    _gap(lambda: rmsopt.RMSprop(np.ones(3), lr=BIG), ("lr",), OVERFLOW, OverflowError,
         id="RMSprop-lr-huge-int"),
    _gap(lambda: rmsopt.Adam(np.ones(3), eps=BIG), ("eps",), OVERFLOW, OverflowError,
         id="Adam-eps-huge-int"),
    _gap(lambda: rmsopt.SGD(np.ones(3), weight_decay=BIG), ("weight_decay",), OVERFLOW,
         OverflowError, id="SGD-weight_decay-huge-int"),
    _gap(_on_optimizer(lambda o: o.step(np.ones((4, 3)), lr=BIG)), ("lr",), OVERFLOW,
         OverflowError, id="step-lr-huge-int"),
    _gap(_minimize(options={"maxiter": BIG}), ("maxiter",), OVERFLOW, OverflowError,
         id="minimize-maxiter-huge-int"),
    _gap(lambda: schedules.constant(BIG), ("lr",), OVERFLOW, OverflowError,
         id="schedule-lr-huge-int"),
    _gap(_load_state_dict(_set_hyper("lr", BIG)), ("lr",), OVERFLOW, OverflowError,
         id="load_state_dict-hyper-huge-int"),
    _gap(_load_header(_set("shapes", [[10 ** 30]])), ("checkpoint",),
         "np.prod(..., dtype=int64) of a declared shape beyond int64: OverflowError",
         OverflowError, id="load-header-shape-beyond-int64"),
    # schedules: counts are int(positive(...)), so fractions truncate
    _gap(lambda: schedules.step(0.1, step_size=0.5), ("step_size",),
         "int(0.5) == 0 is accepted; the first call raises ZeroDivisionError",
         id="schedule-step-step_size-0.5"),
    _gap(lambda: schedules.cosine(0.1, period=0.5), ("period",),
         "int(0.5) == 0 is accepted; the first call raises ZeroDivisionError",
         id="schedule-cosine-period-0.5"),
    _gap(lambda: schedules.warmup(0.1, steps=0.5), ("steps",),
         "int(0.5) == 0 is accepted: the warm-up is silently skipped",
         id="schedule-warmup-steps-0.5"),
    _gap(lambda: schedules.step(0.1, step_size=2.5), ("step_size",),
         "2.5 is silently truncated to 2 (maxiter=1.5 is a ValueError)",
         id="schedule-step-step_size-2.5"),
    _gap(lambda: schedules.warmup("x", 5), ("schedule",),
         "TypeError 'lr must be a real number', which does not name schedule",
         id="schedule-warmup-schedule-str"),
    _gap(_load_state_dict(_set("schedule", {"name": "step", "params": dict(
        lr=0.1, step_size=0.5, gamma=0.5)})), ("schedule", "step_size"),
         "a checkpoint's step_size 0.5 raises ZeroDivisionError", ZeroDivisionError,
         id="load_state_dict-schedule-step_size-0.5"),
    _gap(_load_state_dict(_set("schedule", {"name": ["step"], "params": {}})), ("schedule",),
         "TypeError 'unhashable type: list' from `name not in KINDS`",
         id="load_state_dict-schedule-name-list"),
    # float32: values that overflow are refused for lr, eps and clipping only
    _gap(lambda: _f32(weight_decay=1e39), ("weight_decay",),
         "accepted; the first step makes the parameters NaN",
         id="float32-weight_decay-1e39"),
    _gap(lambda: _f32(initial_scale=1e39), ("initial_scale",),
         "accepted; nu starts at inf", id="float32-initial_scale-1e39"),
    _gap(lambda: _f32(rmsopt.AdaGrad, initial_accumulator_value=1e39),
         ("initial_accumulator_value",), "accepted; the accumulator starts at inf",
         id="float32-initial_accumulator_value-1e39"),
    # step_rows: a gradient aliasing the optimizer state
    _gap(_on_optimizer(lambda o: o.step_rows([1, 0], o.state["buf"].reshape(4, 3)[:2]),
                       rmsopt.SGD, momentum=0.5), ("grad",),
         "accepted (step refuses it); the update reads what it writes",
         id="step_rows-grad-aliases-state"),
    # ragged nested sequences
    _gap(lambda: _optimizer().step([[1.0] * 3] * 3 + [[1.0] * 2]), ("grad",), RAGGED,
         id="step-grad-ragged"),
    _gap(lambda: _optimizer().step_rows([[0], [1, 2]], np.ones((2, 3))), ("rows",), RAGGED,
         id="step_rows-rows-ragged"),
    _gap(lambda: rmsopt.Adam(np.ones(3), betas=[0.9, [0.99]]), ("betas",), RAGGED,
         id="Adam-betas-ragged"),
    _gap(_minimize(jac=lambda x, a, y: [1.0, [2.0], 3.0]), ("jac",), RAGGED,
         id="minimize-jac-returns-ragged"),
    _gap(_minimize(bounds=[(0.0, [1.0, 2.0])] * 3), ("bounds",), RAGGED,
         id="minimize-bounds-ragged-pair"),
    # bounds
    _gap(_minimize(bounds=5), ("bounds",), "TypeError \"'int' object is not iterable\"",
         id="minimize-bounds-int"),
    _gap(_minimize(bounds=[("a", "b")] * 3), ("bounds",),
         "ValueError 'could not convert string to float'", id="minimize-bounds-str-pair"),
    _gap(_minimize(bounds=[(0j, 1j)] * 3), ("bounds",),
         "TypeError 'float() argument must be ... not complex'", id="minimize-bounds-complex"),
    _gap(_minimize(bounds=[(object(), 1.0)] * 3), ("bounds",),
         "TypeError 'float() argument must be ... not object'", id="minimize-bounds-object"),
    _gap(_minimize(bounds=[(math.inf, math.inf)] * 3), ("bounds",),
         "accepted: x is clipped to inf (status 3, res.x inf); x0 with inf is refused",
         id="minimize-bounds-inf-inf"),
    _gap(_minimize(bounds=[(-math.inf, -math.inf)] * 3), ("bounds",),
         "accepted: x is clipped to -inf", id="minimize-bounds-minus-inf"),
    # minimize's options
    _gap(_minimize(options={"batch_size": 2, "seed": "x"}), ("seed",),
         "NumPy's SeedSequence TypeError, which does not name seed", id="minimize-seed-str"),
    _gap(_minimize(options={"batch_size": 2, "seed": -1}), ("seed",),
         "NumPy's 'expected non-negative integer'", id="minimize-seed-negative"),
    _gap(_minimize(options=[1]), ("options",), "dict(options) TypeError",
         id="minimize-options-list"),
    _gap(_minimize(options="abc"), ("options",), "dict(options) ValueError",
         id="minimize-options-str"),
    # checkpoints
    _gap(_load_state_dict(_set_hyper("lr", None)), ("lr",),
         "None silently becomes the default (a missing name is refused)",
         id="load_state_dict-hyper-lr-None"),
    _gap(_load_state_dict(_set_hyper("rho", None)), ("rho",),
         "None silently becomes the default", id="load_state_dict-hyper-rho-None"),
    _gap(_load_header(lambda h: h["hyper"].__setitem__("eps", None)), ("eps",),
         "JSON null silently becomes the default", id="load-header-hyper-eps-null"),
    _gap(_load_header(lambda h: h["hyper"].__setitem__("lr", "0.1")), ("lr",),
         "TypeError; RELIABILITY: a damaged file (bad header types) is a ValueError",
         TypeError, exc=ValueError, id="load-header-hyper-type-is-TypeError"),
    _gap(_load_state_dict(_set("version", True)), ("version",), "True == 1 is accepted",
         id="load_state_dict-version-True"),
    _gap(_load_state_dict(_set("dtype", np.array(["float64", "float32"]))), ("dtype",),
         "`d[key] != live` on an array: 'truth value of an array is ambiguous'",
         id="load_state_dict-dtype-array"),
    _gap(_load_state_dict(lambda d: d["state"].__setitem__(5, np.zeros(12))), ("state",),
         "TypeError \"'<' not supported between int and str\" (sorted slot names)",
         id="load_state_dict-state-int-key"),
]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("call,words,exc", KNOWN_GAPS)
def test_known_gaps(call, words, exc):
    raises_naming(words, call, exc)
