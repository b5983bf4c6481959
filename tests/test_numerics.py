"""Numerical behaviour: convergence, stability, edge values (RELIABILITY.md)."""

import numpy as np
import pytest

import rmsopt

from .configs import CONFIGS, IDS


def rosenbrock_grad(x):
    a, b = x
    return np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], dtype=x.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_converges_on_ill_conditioned_quadratic(name, cls, kwargs, dtype):
    """f = 1/2 sum a_i (x_i - 1)^2 with a from 0.1 to 100: every method heads to the minimum."""
    if kwargs.get("maximize"):
        pytest.skip("ascends by design; see test_maximize_ascends")
    if kwargs.get("centered") and kwargs.get("bias_correction"):
        pytest.skip("degenerate by construction: at t=1 the corrected variance g^2 - g^2 is 0, so "
                    "the first step is lr*g/eps (documented on RMSprop)")
    a = np.geomspace(0.1, 100.0, 8).astype(dtype)
    x = np.full(8, -2.0, dtype=dtype)
    f0 = 0.5 * np.sum(a * (x - 1) ** 2)
    opt = cls(x, **kwargs)
    for _ in range(3000):
        opt.step(a * (x - 1))
    f = 0.5 * np.sum(a * (x - 1) ** 2)
    assert np.isfinite(f) and f < 1e-2 * f0, (f0, f)


def test_maximize_ascends():
    x = np.zeros(3)
    opt = rmsopt.RMSprop(x, lr=0.01, maximize=True)
    for _ in range(500):
        opt.step(-2 * (x - 3.0))  # gradient of -(x-3)^2, maximum at 3
    np.testing.assert_allclose(x, 3.0, atol=0.05)


# (class, kwargs, required distance to the minimum (1, 1) after 20000 steps from (-1.5, 2))
ROSENBROCK = [
    (rmsopt.RMSprop, dict(lr=1e-3), 0.05),
    (rmsopt.RMSprop, dict(lr=1e-3, centered=True), 0.05),
    (rmsopt.RMSprop, dict(lr=1e-4, momentum=0.9), 0.05),
    (rmsopt.SGD, dict(lr=1e-4, momentum=0.9), 0.05),
    (rmsopt.AdaGrad, dict(lr=0.5), 0.05),
    (rmsopt.Adam, dict(lr=1e-2), 0.05),
    # AdaDelta crawls along the curved valley (no setting of lr, rho, eps we tried reaches the
    # minimum in 40000 steps): require that it makes real progress down into the valley.
    (rmsopt.AdaDelta, dict(lr=0.3, eps=1e-6), 0.6),
]


@pytest.mark.parametrize("cls,kwargs,distance", ROSENBROCK,
                         ids=lambda v: getattr(v, "__name__", ""))
def test_converges_on_rosenbrock(cls, kwargs, distance):
    x = np.array([-1.5, 2.0])
    opt = cls(x, **kwargs)
    for _ in range(20000):
        opt.step(rosenbrock_grad(x))
    assert np.linalg.norm(x - 1.0) < distance, x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_centered_constant_gradient_10000_steps_stays_finite(dtype, momentum):
    """nu - mu^2 -> 0 under a constant gradient; rounding makes it negative (torch: NaN)."""
    x = np.zeros(64, dtype=dtype)
    g = np.linspace(1e-3, 1e3, 64).astype(dtype)
    opt = rmsopt.RMSprop(x, lr=1e-6, rho=0.99, centered=True, momentum=momentum)
    for _ in range(10000):
        opt.step(g)
    assert np.isfinite(x).all() and np.isfinite(opt.state["mu"]).all()
    nu, mu = opt.state["nu"], opt.state["mu"]
    assert (nu - mu * mu < 0).any(), "the clamp was never needed: the test lost its point"
    # the clamp itself: where the next variance is negative it is taken as 0 (not |var|),
    # so that step is lr * g / eps exactly (computed here in the dtype, as the kernel does)
    rho, one = dtype(0.99), dtype(1)
    nu1 = rho * nu + (one - rho) * (g * g)
    mu1 = rho * mu + (one - rho) * g
    clamped = nu1 - mu1 * mu1 < 0
    assert clamped.any()
    before, buf = x.copy(), (opt.state["buf"].copy() if momentum else None)
    opt.step(g)
    d = g / (np.sqrt(np.maximum(nu1 - mu1 * mu1, dtype(0))) + dtype(1e-8))
    if momentum:
        d = dtype(momentum) * buf + d
    np.testing.assert_array_equal(x[clamped], (before - dtype(1e-6) * d)[clamped])


@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_second_moments_nonnegative_and_decay_under_zero_gradient(name, cls, kwargs):
    x = np.linspace(-1, 1, 9)
    opt = cls(x, **kwargs)
    for t in range(20):
        opt.step(np.sin(x * (t + 1)) * 3)
    moments = {k: v for k, v in opt.state.items() if k in ("nu", "acc", "v", "vmax")}
    for v in moments.values():
        assert (v >= 0).all()
    nu_before = opt.state.get("nu", None)
    nu_before = None if nu_before is None else nu_before.copy()
    opt.step(np.zeros(9))
    if nu_before is not None and opt.rule.name != "adabelief":  # its nu tracks (g - m)^2:
        assert (opt.state["nu"] <= nu_before).all()            # a zero g may raise it


@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_float32_gradient_whose_square_overflows(name, cls, kwargs):
    """Decision, per rule, for g^2 overflowing float32 (|g| > 1.8e19): never a NaN.

    - adaptive rules (RMSprop, centered or not, AdaGrad, AdaDelta, Adam): the second moment
      saturates at inf, so that element's step is zero (g / inf): the parameter stays put
      (only decoupled weight decay still shrinks it);
    - SGD: no second moment; the parameter moves by lr * g, which is finite; Lion by lr
      (the sign of its interpolation);
    - clip_value / clip_norm bound the gradient first, so the parameter moves, finitely.
    """
    x = np.ones(3, dtype=np.float32)
    opt = cls(x, **kwargs)
    opt.step(np.array([1e20, -1e25, 1.0], dtype=np.float32))
    h = opt.hyper
    assert np.isfinite(x).all()
    assert x[2] != 1 or h["clip_norm"] is not None  # clip_norm scales g[2] down to 1e-25
    for k, v in opt.state.items():
        assert not np.isnan(v).any(), k
    if h["clip_value"] is not None or h["clip_norm"] is not None or \
            opt.rule.name in ("sgd", "lion"):
        assert (x[:2] != 1).all()
    else:
        decay = 1.0 - h["lr"] * h["weight_decay"] if h["decoupled_weight_decay"] else 1.0
        assert (x[:2] == np.float32(decay)).all(), x
    for k in ("nu", "acc", "v"):
        if k in opt.state and h["clip_value"] is None and h["clip_norm"] is None:
            assert np.isinf(opt.state[k][:2]).all()


def test_float32_overflow_clipped_moves():
    """clip_norm scales the overflowing gradient down: a finite step against its sign."""
    clipped = np.ones(3, dtype=np.float32)
    rmsopt.RMSprop(clipped, lr=0.01, clip_norm=1.0).step(
        np.array([1e20, -1e25, 1.0], dtype=np.float32))
    assert np.isfinite(clipped).all() and clipped[1] > 1


@pytest.mark.parametrize("centered", [False, True])
def test_nan_gradient_propagates_and_is_not_optimised_away(centered):
    x = np.ones(4)
    opt = rmsopt.RMSprop(x, clip_value=1.0, centered=centered)
    opt.step(np.array([np.nan, 1.0, np.inf, -np.inf]))
    assert np.isnan(x[0]) and np.isfinite(x[1])
    assert np.isnan(opt.state["nu"][0])
    y = np.ones(2, np.float32)  # centered, overflowing: inf - inf is not taken for a NaN
    rmsopt.RMSprop(y, centered=centered).step(np.array([np.nan, 1e25], np.float32))
    assert np.isnan(y[0]) and y[1] == 1


def test_clip_norm_bounds_the_gradient():
    """With clip_norm the first RMSprop-free step (SGD) moves by exactly lr * clip_norm."""
    xs = [np.zeros(3), np.zeros(4)]
    opt = rmsopt.SGD(xs, lr=1.0, clip_norm=2.0)
    opt.step([np.full(3, 10.0), np.full(4, -10.0)])
    moved = np.sqrt(sum(np.sum(a * a) for a in xs))
    np.testing.assert_allclose(moved, 2.0, rtol=1e-14)
    small = [np.zeros(3), np.zeros(4)]
    rmsopt.SGD(small, lr=1.0, clip_norm=100.0).step([np.full(3, 1.0), np.full(4, -1.0)])
    assert (small[0] == -1).all() and (small[1] == 1).all()


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_clip_norm_of_a_gradient_whose_squares_overflow_float64(backend):
    """|g| above ~1.3e154 overflows the float64 sum of squares; the norm is still right."""
    x = np.zeros(3)
    rmsopt.SGD(x, lr=1.0, clip_norm=1.0, backend=backend).step(np.array([1e200, -1e200, 0.0]))
    np.testing.assert_allclose(x, [-np.sqrt(0.5), np.sqrt(0.5), 0.0], rtol=1e-15)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_clip_norm_makes_a_nan_seen_everywhere(backend):
    """A NaN norm gives a NaN scale, as in PyTorch: no element passes unclipped."""
    x = np.zeros(3)
    rmsopt.SGD(x, lr=1.0, clip_norm=1.0, clip_value=10.0, backend=backend).step(
        np.array([np.nan, 100.0, 200.0]))
    assert np.isnan(x).all()
    # an infinite element: norm inf, scale 0; that element becomes NaN (inf * 0), the others stay
    y = np.zeros(3)
    rmsopt.SGD(y, lr=1.0, clip_norm=1.0, backend=backend).step(np.array([np.inf, 1.0, 2.0]))
    assert np.isnan(y[0]) and (y[1:] == 0).all()


def test_clip_value_clamps_each_element():
    x = np.zeros(4)
    rmsopt.SGD(x, lr=1.0, clip_value=0.5).step(np.array([3.0, -3.0, 0.25, -0.1]))
    np.testing.assert_array_equal(x, [-0.5, 0.5, -0.25, 0.1])


def test_bias_corrected_rmsprop_equals_adam_without_first_moment():
    """optax's observation: RMS with bias correction is Adam with beta1 = 0."""
    x1, x2 = np.linspace(-1, 1, 5), np.linspace(-1, 1, 5)
    r = rmsopt.RMSprop(x1, lr=0.01, rho=0.999, eps=1e-8, bias_correction=True)
    a = rmsopt.Adam(x2, lr=0.01, beta1=0.0, beta2=0.999, eps=1e-8)
    for _ in range(50):
        r.step(np.cos(3 * x1) + x1)
        a.step(np.cos(3 * x2) + x2)
    np.testing.assert_allclose(x1, x2, rtol=1e-12, atol=1e-14)


def test_decoupled_decay_shrinks_parameters_without_gradient():
    x = np.full(3, 2.0)
    rmsopt.AdamW(x, lr=0.1, weight_decay=0.5).step(np.zeros(3))
    np.testing.assert_allclose(x, 2.0 * (1 - 0.1 * 0.5))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_float32_clip_norm_of_huge_gradients_keeps_full_precision(backend):
    """|g| = 3e38 over 10^4 elements: the clip scale 1/(3e40) is subnormal in float32 (few
    significant bits, relative error ~1e-5 when applied as one factor); split into a normal
    factor and an exact power of two, the clipped gradient is exact to float32 rounding."""
    n = 10_000
    x = np.zeros(n, np.float32)
    g = np.full(n, 3e38, np.float32)
    opt = rmsopt.SGD(x, lr=1.0, clip_norm=1.0, backend=backend)
    opt.step(g)
    exact = -1.0 / np.sqrt(n)  # every element of the clipped gradient is 1/sqrt(n)
    np.testing.assert_allclose(x.astype(np.float64), exact, rtol=3e-7)
    # the usual scales are applied exactly as before: one rounding of g * s
    y = np.zeros(3, np.float32)
    rmsopt.SGD(y, lr=1.0, clip_norm=1.0, backend=backend).step(np.float32([3.0, 4.0, 0.0]))
    np.testing.assert_array_equal(y, -np.float32([3.0, 4.0, 0.0]) * np.float32(0.2))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_clip_norm_scales_first_then_clip_value_clips(backend):
    """g = (3, 4), clip_norm 1: scaled to (0.6, 0.8), then clip_value 0.7 gives (0.6, 0.7).
    The other order would clip to (0.7, 0.7), whose norm 0.99 leaves it unscaled."""
    x = np.zeros(2)
    rmsopt.SGD(x, lr=1.0, clip_norm=1.0, clip_value=0.7, backend=backend).step(
        np.array([3.0, 4.0]))
    np.testing.assert_allclose(x, [-0.6, -0.7], rtol=1e-15)
