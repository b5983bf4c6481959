"""Property-based checks (hypothesis): kernels vs the NumPy reference over random variants and
values, invariants, and save/load inside a stateful run. HYPOTHESIS_PROFILE=long for a deep search.

The oracle is :class:`rmsopt._kernels.reference.Reference`: it derives every per-step scalar
(lr, 1 - rho, bias corrections, Adam's step size, AdaGrad's decay, the decoupled-decay factor,
the clip scale) from the optimizer's hyperparameter dict itself, so a mistake in
``rmsopt.hyper``'s scalars or in ``rmsopt.rules.clip_scale`` fails these properties (see
``test_a_mistake_in_the_host_scalars_is_caught``).
"""

import tempfile
import warnings
from unittest import mock

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import rmsopt
from rmsopt import backend as _backend
from rmsopt._kernels import cpu, reference

dtypes = st.sampled_from([np.float32, np.float64])
SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-30, 3e38]
SPECIAL64 = [1e200, -1e300]  # their squares overflow float64 (the scaled clip_norm pass)
CLIP_NORMS = [None, 1e-3, 1.0, 1e3]


@st.composite
def rmsprop_kwargs(draw):
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    return dict(
        lr=draw(st.floats(1e-4, 1.0)), rho=draw(st.floats(0.0, 0.999)),
        eps=draw(st.floats(1e-8, 1e-2)), momentum=momentum,
        centered=draw(st.booleans()), nesterov=momentum > 0 and draw(st.booleans()),
        bias_correction=draw(st.booleans()), eps_in_sqrt=draw(st.booleans()),
        lr_in_momentum=draw(st.booleans()), initial_scale=draw(st.sampled_from([0.0, 1.0])),
        weight_decay=draw(st.sampled_from([0.0, 0.01])),
        decoupled_weight_decay=draw(st.booleans()), maximize=draw(st.booleans()),
        clip_value=draw(st.sampled_from([None, 0.5, 1e3])),
        clip_norm=draw(st.sampled_from(CLIP_NORMS)))


OTHERS = st.sampled_from([
    (rmsopt.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (rmsopt.SGD, dict(lr=0.1)),
    (rmsopt.AdaGrad, dict(lr=0.1, lr_decay=0.01)),
    (rmsopt.AdaGrad, dict(lr=0.1, eps_in_sqrt=True, initial_accumulator_value=0.1)),
    (rmsopt.AdaDelta, dict()),
    (rmsopt.SGD, dict(lr=0.1, clip_norm=1.0)),
    (rmsopt.Adam, dict(lr=0.01, amsgrad=True)),
    (rmsopt.Adam, dict(lr=0.01, amsgrad=True, clip_norm=1e-3)),
    (rmsopt.AdamW, dict(lr=0.01)),
    (rmsopt.Lion, dict(lr=0.01)),
    (rmsopt.AdaBelief, dict(lr=0.01)),
    (rmsopt.AdaBelief, dict(lr=0.01, eps=1e-8, weight_decay=0.1, clip_norm=1.0)),
    (rmsopt.Lion, dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.1, clip_norm=1.0)),
    (rmsopt.LaProp, dict(lr=0.01)),
    (rmsopt.LaProp, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-8, weight_decay=0.1, clip_norm=1.0)),
])


@st.composite
def problems(draw, with_specials=True):
    """(dtype, x0, list of gradients) with values anywhere in the dtype's range."""
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))
    finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
    x0 = draw(hnp.arrays(dtype, shape, elements=finite))
    special = SPECIAL + (SPECIAL64 if dtype == np.float64 else [])
    values = st.one_of(finite, st.sampled_from(special)) if with_specials else finite
    steps = draw(st.integers(1, 4))
    grads = [draw(hnp.arrays(dtype, shape, elements=values)) for _ in range(steps)]
    return dtype, x0, grads


# Most arrays of problems() hold a NaN or an inf, whose clip scale is NaN or 0 whatever its formula:
# the kernel-vs-reference properties draw finite gradients half the time.
mixed_problems = st.one_of(problems(), problems(with_specials=False))


def cpu_norm(grads):
    """The CPU kernel's global norm of a list of 1-D gradients."""
    layout = _backend.Layout(grads)
    return cpu.global_norm(layout.gaddr(grads), layout.size, layout.tasks, grads[0],
                           parallel=False)


def kernel_and_reference(cls, kwargs, x0, grads):
    """Run the CPU kernel and the NumPy reference (its own scalars) from the same start.

    Two quantities are rounded differently by design, and each is bounded by a property of
    its own: the global norm of clip_norm (summation order,
    :func:`test_global_norm_kernel_equals_reference`) and the product of a gradient with the
    clip scale (exact in the reference, the scale rounded to the dtype in the kernels,
    :func:`test_clipping_kernel_equals_exact_reference`). Here the reference is given the
    kernel's norm and applies its own scale as the kernels do, so that everything else (the
    scale's formula, every other scalar, clipping, the rule) is compared bit for bit.
    """
    x = x0.copy()
    opt = cls(x, backend="cpu", **kwargs)
    ref = reference.Reference(opt.rule.name, opt.hyper, x0, scale_as_kernels=True)
    with warnings.catch_warnings(), np.errstate(all="ignore"), \
            mock.patch.object(reference, "global_norm", cpu_norm):
        warnings.simplefilter("ignore")
        for g in grads:
            opt.step(g)
            ref.step(g)
    assert ref.t == opt.t
    return (x, opt.state), (ref.params[0].reshape(x0.shape), ref.flat_state())


def assert_same(kernel, ref, dtype=None):
    (x1, s1), (x2, s2) = kernel, ref
    np.testing.assert_array_equal(x1, x2)  # NaN == NaN here
    assert set(s1) == set(s2)
    for k in s2:
        np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)
        assert dtype is None or s1[k].dtype == dtype


@given(problems())
def test_global_norm_kernel_equals_reference(problem):
    """Same NaN/inf outcome; finite norms within (n + 5) u, u = 2**-53.

    Each norm is the root of a float64 sum of n non-negative terms. Summed in any
    order, that sum is within (n - 1) u of exact (relative; no cancellation among
    non-negative terms), and each term is within u (a float64 square; a float32
    square is exact) or, in the scaled pass, 2u (the division by the largest
    magnitude) plus u for the final product. The root halves relative errors. So
    each norm is within (n + 5) u / 2 of the exact norm, and the two within (n + 5) u.
    """
    dtype, x0, grads = problem
    flat = [g.reshape(-1) for g in grads]
    kernel, ref = cpu_norm(flat), reference.global_norm(flat)
    n = sum(g.size for g in flat)
    if np.isnan(ref) or np.isinf(ref):
        assert kernel == ref or (np.isnan(kernel) and np.isnan(ref))
    else:
        np.testing.assert_allclose(kernel, ref, rtol=(n + 5) * 2.0**-53, atol=0)


@given(mixed_problems, rmsprop_kwargs())
def test_rmsprop_kernel_equals_reference_bitwise(problem, kwargs):
    dtype, x0, grads = problem
    assert_same(*kernel_and_reference(rmsopt.RMSprop, kwargs, x0, grads), dtype)


@given(mixed_problems, OTHERS)
def test_other_kernels_equal_reference_bitwise(problem, config):
    dtype, x0, grads = problem
    assert_same(*kernel_and_reference(*config, x0, grads))


@given(mixed_problems, st.sampled_from(CLIP_NORMS), st.sampled_from([None, 0.5, 1e3]),
       st.booleans())
def test_clipping_kernel_equals_exact_reference(problem, clip_norm, clip_value, maximize):
    """The prepared gradient, kernel (own norm, scale rounded to the dtype) vs the reference
    (``np.linalg.norm``, the exactly rounded ``g * scale``): within one rounding of the
    dtype (two, with the scale's) plus the norms' (n + 5) u (see above), or two subnormal units.

    Seen through SGD with lr = 1 from zero, where the step ``0 - 1 * g`` is exact.
    """
    dtype, _, grads = problem
    kwargs = dict(lr=1.0, clip_norm=clip_norm, clip_value=clip_value, maximize=maximize)
    x = np.zeros_like(grads[0])
    opt = rmsopt.SGD(x, backend="cpu", **kwargs)
    ref = reference.Reference("sgd", opt.hyper, x)
    n = x.size
    info = np.finfo(dtype)
    for g in grads:
        x[...] = 0
        ref.params = [np.zeros(n, dtype)]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            opt.step(g)
            ref.step(g)
        np.testing.assert_allclose(x.reshape(-1), ref.params[0],
                                   rtol=2 * info.eps + (n + 5) * 2.0**-53,
                                   atol=2 * info.smallest_subnormal)


def test_a_mistake_in_the_host_scalars_is_caught(monkeypatch):
    """The reference does not share the host scalars: mistakes planted in them (torch's
    ``clip_norm / (norm + 1e-6)``, Adam's bias correction one step late) make the kernels
    disagree with it."""
    from rmsopt import hyper, rules

    rng = np.random.default_rng(5)
    x0 = rng.standard_normal(12)
    grads = [rng.standard_normal(12) * 3 for _ in range(3)]
    cases = [(rmsopt.RMSprop, dict(clip_norm=1.0)), (rmsopt.Adam, dict(lr=0.01))]
    for config in cases:  # no mistake: equal
        assert_same(*kernel_and_reference(*config, x0, grads))
    with monkeypatch.context() as m:
        m.setattr(hyper, "clip_scale", lambda norm, c: 1.0 if norm <= c else c / (norm + 1e-6))
        with pytest.raises(AssertionError):
            assert_same(*kernel_and_reference(*cases[0], x0, grads))
    adam = rules.AdamRule.values

    def adam_late(k, t, lr, carry):  # lr / (1 - beta1 ** (t + 1))
        return (lr / (1.0 - k[0] ** float(t + 1)),) + tuple(adam(k, t, lr, carry)[1:])

    with monkeypatch.context() as m:
        m.setattr(rules.AdamRule, "values", staticmethod(adam_late))
        with pytest.raises(AssertionError):
            assert_same(*kernel_and_reference(*cases[1], x0, grads))
    # LaProp's carried average of the rates, with its history forgotten (A_t = lr_t)
    laprop = (rmsopt.LaProp, dict(lr=0.01))
    assert_same(*kernel_and_reference(*laprop, x0, grads))
    monkeypatch.setattr(rules.LaPropRule, "advance", staticmethod(lambda k, lr, carry: lr))
    with pytest.raises(AssertionError):
        assert_same(*kernel_and_reference(*laprop, x0, grads))


@given(problems(with_specials=False), rmsprop_kwargs())
def test_second_moment_nonnegative_for_finite_gradients(problem, kwargs):
    dtype, x0, grads = problem
    x = x0.copy()
    opt = rmsopt.RMSprop(x, **dict(kwargs, weight_decay=0.0))  # so that a zero gradient is zero
    with np.errstate(all="ignore"):
        for g in grads:
            opt.step(g)
            nu = opt.state["nu"]
            assert (nu >= 0).all() or np.isnan(nu[nu < 0]).all()
        before = opt.state["nu"].copy()
        opt.step(np.zeros_like(x))
    assert (opt.state["nu"] <= before).all()


class SaveLoadMachine(RuleBasedStateMachine):
    """Two optimizers step together; one is saved and reloaded at random points."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.config = None

    @precondition(lambda self: self.config is None)
    @rule(kwargs=rmsprop_kwargs(), dtype=dtypes)
    def start(self, kwargs, dtype):
        self.config = kwargs
        self.x = np.linspace(-1, 1, 7).astype(dtype)
        self.y = self.x.copy()
        self.twin = rmsopt.RMSprop(self.x, **kwargs)
        self.opt = rmsopt.RMSprop(self.y, **kwargs)

    @precondition(lambda self: self.config is not None)
    @rule(seed=st.integers(0, 2**16))
    def step(self, seed):
        g = np.random.default_rng(seed).standard_normal(7).astype(self.x.dtype)
        with np.errstate(all="ignore"):
            self.twin.step(g + self.x)
            self.opt.step(g + self.y)

    @precondition(lambda self: self.config is not None)
    @rule()
    def save_and_reload(self):
        path = f"{self.dir.name}/c.npz"
        self.opt.save(path)
        self.y = np.zeros_like(self.y)
        self.opt = rmsopt.RMSprop(self.y)  # default hyperparameters: load restores them
        self.opt.load(path)

    @invariant()
    def identical(self):
        if self.config is not None:
            np.testing.assert_array_equal(self.x, self.y)
            assert self.twin.t == self.opt.t

    def teardown(self):
        self.dir.cleanup()


TestSaveLoad = SaveLoadMachine.TestCase
