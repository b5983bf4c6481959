r"""The update rules: the single source of the math for every compiled backend.

Each rule is a scalar function of one element: its parameter ``p``, gradient
``g`` and up to three state values, plus two named tuples,

* ``h``: scalars precomputed on the host in the array's dtype (learning rate,
  ``1 - rho``, bias corrections, ...), so that no float literal appears here
  and float32 code stays float32;
* ``f``: switches that the kernel factory bakes in as compile-time constants,
  so that every variant compiles to straight-line code without branches.

A rule returns the new ``(p, s0, s1, s2)``. The CPU and CUDA kernels only index
arrays and call a rule; ``_kernels/reference.py`` re-derives the same math with
vectorised NumPy and serves as the test oracle.

Gradient preparation shared by all rules, in this order (``Common`` flags):

.. math::

    g &\leftarrow g \cdot \min(1, c / \lVert g \rVert_2)  &&\text{clip\_norm } c \\
    g &\leftarrow \operatorname{clamp}(g, -v, v)          &&\text{clip\_value } v \\
    g &\leftarrow -g                                       &&\text{maximize} \\
    g &\leftarrow g + \lambda p                            &&\text{L2 weight decay}\ \lambda \\
    p &\leftarrow (1 - \eta\lambda)\, p                    &&\text{decoupled weight decay}

Square roots are ``math.sqrt``: compiled, it keeps the argument's precision
(``llvm.sqrt.f32`` on the CPU, ``sqrt.rn.f32`` on CUDA, both correctly
rounded), and numba-cuda cannot lower NumPy's ``np.sqrt`` ufunc on scalars.
The CUDA simulator runs these functions as Python, where it binds ``sqrt``
to ``np.sqrt`` so that float32 stays float32 there too.
"""

from collections import namedtuple
from math import sqrt

from numba import njit

# Weight-decay styles (``Common.weight_decay``).
NO_DECAY, L2_DECAY, DECOUPLED_DECAY = 0, 1, 2

Common = namedtuple("Common", "maximize clip_value clip_norm weight_decay")
CommonScalars = namedtuple("CommonScalars", "gscale gscale_pow2 clip neg_clip wd decay")

# clip_norm's scale below this is applied as (s * 2**100) * 2**-100: in float32 it would
# otherwise be subnormal (few significant bits) before it meets the gradient.
SPLIT_BELOW, SPLIT_POWER = 2.0 ** -100, 2.0 ** 100


@njit(inline="always")
def split_scale(s):
    r"""``(m, q)`` with :math:`s = m q`, ``q`` a power of two: the clip scale as two factors.

    A gradient of huge norm (float32 elements near 3e38, millions of them) has
    a clip scale :math:`s` far below float32's smallest normal number (1.2e-38);
    rounded to float32 it keeps only a few significant bits. :math:`m = s \cdot
    2^{100}` is a normal float32 and :math:`q = 2^{-100}` is exact, so
    :math:`(g m) q` rounds once, as :math:`g s` computed exactly would, and for
    :math:`s \ge 2^{-100}` (the usual case, ``q = 1``) gives the same bits as
    :math:`g s`. ``m <= 1``: :math:`g m` cannot overflow.
    """
    if s < SPLIT_BELOW:
        return s * SPLIT_POWER, 1.0 / SPLIT_POWER
    return s, 1.0


@njit(inline="always")
def prepare_gradient(p, g, c, f):
    """Clip, negate (maximize) and add L2 weight decay to one gradient element."""
    if f.clip_norm:
        g = g * c.gscale * c.gscale_pow2
    if f.clip_value:  # written with comparisons so that NaN passes through
        if g > c.clip:
            g = c.clip
        elif g < c.neg_clip:
            g = c.neg_clip
    if f.maximize:
        g = -g
    if f.weight_decay == L2_DECAY:
        g = g + c.wd * p
    return g


@njit(inline="always")
def clip_factor(norm, clip_norm, one):
    r"""Scale that brings a gradient of global norm ``norm`` down to ``clip_norm``.

    :math:`\min(1, c / \lVert g \rVert_2)`. A NaN norm (a NaN anywhere in the
    gradient) gives a NaN factor, so every element becomes NaN, as in PyTorch:
    the NaN is seen, not confined to where it arose. An infinite norm gives 0.
    Computed in float64, on the host (CPU backends) or on the device (CUDA).
    """
    return one if norm <= clip_norm else clip_norm / norm


@njit(inline="always")
def decay_parameter(p, c, f):
    """Decoupled weight decay (AdamW): ``p * (1 - lr * wd)``, factor from the host."""
    if f.weight_decay == DECOUPLED_DECAY:
        p = p * c.decay
    return p


@njit(inline="always")
def momentum_step(p, d, buf, lr, m, f):
    r"""Apply a direction ``d`` with heavy-ball or Nesterov momentum.

    With ``lr`` outside the buffer (PyTorch): :math:`b \leftarrow m b + d`,
    :math:`p \leftarrow p - \eta\, b` (Nesterov: :math:`p - \eta (d + m b)`).
    With ``lr`` inside (Keras, TF1, optax): :math:`b \leftarrow m b + \eta d`,
    :math:`p \leftarrow p - b` (Nesterov: :math:`p - (\eta d + m b)`).
    The two agree for a constant ``lr`` and differ once it changes.
    """
    if not f.momentum:
        return p - lr * d, buf
    if f.lr_in_momentum:
        d = lr * d
        buf = m * buf + d
        step = d + m * buf if f.nesterov else buf
        return p - step, buf
    buf = m * buf + d
    step = d + m * buf if f.nesterov else buf
    return p - lr * step, buf


RMSpropFlags = namedtuple(
    "RMSpropFlags",
    "centered momentum nesterov bias_correction eps_in_sqrt lr_in_momentum",
)
RMSpropScalars = namedtuple(
    "RMSpropScalars", "lr rho one_minus_rho eps momentum bias zero"
)


@njit(inline="always")
def rmsprop(p, g, nu, mu, buf, h, f):
    r"""RMSprop (Hinton 2012), centered (Graves 2013), with momentum.

    .. math::

        \nu &\leftarrow \rho \nu + (1 - \rho) g^2 \\
        \mu &\leftarrow \rho \mu + (1 - \rho) g          &&\text{centered} \\
        \sigma^2 &= \max\!\big(\hat\nu - \hat\mu^2,\ 0\big),
            \quad \hat x = x / (1 - \rho^t) \text{ if bias\_correction} \\
        d &= g / (\sqrt{\sigma^2} + \epsilon)
            \ \text{ or }\ g / \sqrt{\sigma^2 + \epsilon} &&\text{eps\_in\_sqrt}

    then ``p`` moves along ``d`` by :func:`momentum_step`. Without centering
    :math:`\sigma^2 = \hat\nu`. The clamp at zero stops rounding in
    :math:`\nu - \mu^2` from producing a NaN square root.

    Overflow: where :math:`g^2` overflows (float32 above about 1.8e19),
    :math:`\nu = \infty` and the step of that element is :math:`g/\infty = 0`:
    the parameter stays put, with or without centering (centered, the variance
    :math:`\infty - \infty` is taken as :math:`\nu = \infty`, not NaN). A NaN
    gradient still gives NaN.
    """
    nu = h.rho * nu + h.one_minus_rho * (g * g)
    var = nu
    if f.bias_correction:
        var = nu / h.bias
    if f.centered:
        mu = h.rho * mu + h.one_minus_rho * g
        mean = mu / h.bias if f.bias_correction else mu
        mean_sq = mean * mean
        centred = var - mean_sq
        if centred < h.zero:
            centred = h.zero
        # inf - inf (nu overflowed, the mean is not NaN): keep var = nu = inf, as without
        # centering; any other NaN (a NaN gradient) propagates.
        if centred == centred or mean_sq != mean_sq:
            var = centred
    if f.eps_in_sqrt:
        d = g / sqrt(var + h.eps)
    else:
        d = g / (sqrt(var) + h.eps)
    p, buf = momentum_step(p, d, buf, h.lr, h.momentum, f)
    return p, nu, mu, buf


SGDFlags = namedtuple("SGDFlags", "momentum nesterov lr_in_momentum")
SGDScalars = namedtuple("SGDScalars", "lr momentum")


@njit(inline="always")
def sgd(p, g, buf, unused1, unused2, h, f):
    r"""Gradient descent, with heavy-ball or Nesterov momentum: :math:`d = g`."""
    p, buf = momentum_step(p, g, buf, h.lr, h.momentum, f)
    return p, buf, unused1, unused2


AdaGradFlags = namedtuple("AdaGradFlags", "eps_in_sqrt")
AdaGradScalars = namedtuple("AdaGradScalars", "lr eps")


@njit(inline="always")
def adagrad(p, g, acc, unused1, unused2, h, f):
    r"""AdaGrad (Duchi et al. 2011).

    .. math::

        a \leftarrow a + g^2, \qquad
        p \leftarrow p - \eta\, g / (\sqrt{a} + \epsilon)
        \ \text{ or }\ p - \eta\, g / \sqrt{a + \epsilon}
    """
    acc = acc + g * g
    if f.eps_in_sqrt:
        d = g / sqrt(acc + h.eps)
    else:
        d = g / (sqrt(acc) + h.eps)
    return p - h.lr * d, acc, unused1, unused2


AdaDeltaFlags = namedtuple("AdaDeltaFlags", "")
AdaDeltaScalars = namedtuple("AdaDeltaScalars", "lr rho one_minus_rho eps")


@njit(inline="always")
def adadelta(p, g, nu, u, unused, h, f):
    r"""AdaDelta (Zeiler 2012).

    .. math::

        \nu &\leftarrow \rho \nu + (1 - \rho) g^2 \\
        d &= \sqrt{u + \epsilon}\, / \sqrt{\nu + \epsilon}\ \cdot g \\
        u &\leftarrow \rho u + (1 - \rho) d^2 \\
        p &\leftarrow p - \eta d
    """
    nu = h.rho * nu + h.one_minus_rho * (g * g)
    d = sqrt(u + h.eps) / sqrt(nu + h.eps) * g
    u = h.rho * u + h.one_minus_rho * (d * d)
    return p - h.lr * d, nu, u, unused


AdamFlags = namedtuple("AdamFlags", "amsgrad")
AdamScalars = namedtuple(
    "AdamScalars", "step_size beta1 one_minus_beta1 beta2 one_minus_beta2 eps sqrt_bias2"
)


@njit(inline="always")
def adam(p, g, m, v, vmax, h, f):
    r"""Adam (Kingma & Ba 2015), AMSGrad (Reddi et al. 2018).

    .. math::

        m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        \hat v &= \max(\hat v_{t-1}, v) \text{ if amsgrad else } v \\
        p &\leftarrow p - \frac{\eta}{1 - \beta_1^t}\,
            \frac{m}{\sqrt{\hat v} / \sqrt{1 - \beta_2^t} + \epsilon}

    ``h.step_size`` is :math:`\eta / (1 - \beta_1^t)`, as PyTorch computes it.
    """
    m = h.beta1 * m + h.one_minus_beta1 * g
    v = h.beta2 * v + h.one_minus_beta2 * (g * g)
    vhat = v
    if f.amsgrad:
        if v > vmax or v != v:  # a NaN on either side propagates, as torch.maximum
            vmax = v
        vhat = vmax
    den = sqrt(vhat) / h.sqrt_bias2 + h.eps
    return p - h.step_size * (m / den), m, v, vmax
