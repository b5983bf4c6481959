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

Next to each rule is its host side, a :class:`Rule` (registered in :data:`RULES` by
defining it): its state slots, how the hyperparameter dict (built by
:mod:`rmsopt.hyper`) gives its flags and constants, and its ``values`` function, the
per-step host scalars.

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

import numpy as np
from numba import njit
from numba.extending import register_jitable


def host_and_kernel(fn):
    """``fn`` as a plain Python function that compiled callers inline (Numba's
    ``register_jitable``): the host scalars' functions, which ``Optimizer.step`` calls
    from Python and the compiled minimize loop from nopython code. One source and the
    same bits (IEEE arithmetic, libm's ``pow``, correctly rounded square roots), without
    a compile (0.1-0.2 s each) before the first step."""
    return register_jitable(inline="always")(fn)


# Weight-decay styles (``Common.weight_decay``).
NO_DECAY, L2_DECAY, DECOUPLED_DECAY = 0, 1, 2

Common = namedtuple("Common", "maximize clip_value clip_norm weight_decay")
CommonScalars = namedtuple("CommonScalars", "clip_scale clip_pow2 clip neg_clip wd decay")

# clip_norm's scale below this is applied as (s * 2**100) * 2**-100: in float32 it would
# otherwise be subnormal (few significant bits) before it meets the gradient.
SPLIT_BELOW, SPLIT_POWER = 2.0 ** -100, 2.0 ** 100


@host_and_kernel
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
        g = g * c.clip_scale * c.clip_pow2
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
def clip_scale(norm, clip_norm, one):
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


def common_flags(hyper):
    """The gradient preparation's switches (:class:`Common`) from a hyperparameter dict."""
    decay = hyper["weight_decay"] > 0.0
    style = (NO_DECAY if not decay
             else DECOUPLED_DECAY if hyper["decoupled_weight_decay"] else L2_DECAY)
    return Common(maximize=hyper["maximize"], clip_value=hyper["clip_value"] is not None,
                  clip_norm=hyper["clip_norm"] is not None, weight_decay=style)


def common_constants(hyper):
    """The float hyperparameters that :func:`common_values` reads."""
    return (hyper["clip_value"] or 0.0, hyper["weight_decay"])


@host_and_kernel
def common_values(k, lr, clip_scale):
    """Host scalars of the gradient preparation (:class:`CommonScalars`), in float64."""
    clip, wd = k
    m, q = split_scale(clip_scale)
    return (m, q, clip, -clip, wd, 1.0 - lr * wd)


class Rule:
    """The host side of one rule: how a hyperparameter dict maps onto its kernel.

    A subclass sits next to its rule function and names it (``kernel``), its state
    slots, its flags and scalars types and its ``values`` function; defining the
    subclass registers an instance in :data:`RULES` under ``name``.

    ``values(k, t, lr, carry) -> tuple`` is a small :func:`host_and_kernel` function of the
    rule's constants ``k`` (a tuple of floats taken once from the hyperparameters by
    :meth:`constants`), the step ``t`` (from 1), the learning rate and the carried value
    (below), giving the step's host scalars in float64 (``Scalars``' fields, in order).
    ``Optimizer.step`` calls it from Python and the compiled minimize loop from nopython
    code: one definition, the same bits. ``t`` enters powers as a float (``rho **
    float(t)`` is libm's pow in Python and in Numba alike). Inlined into nopython callers,
    where a constant lr and step-free scalars fold away.

    ``carried`` names a float64 value that the host carries from step to step when the
    scalars depend on the history of the learning rate, not only on ``t`` and this step's
    ``lr`` (LaProp's running average of the rates). ``advance(k, lr, carry) -> carry``
    (:func:`host_and_kernel`) gives this step's value from the last; ``values`` reads the
    new one. It starts at :meth:`initial_carry`, is part of the optimizer's state (checkpoints) and
    changes with the step, all or nothing. Rules without one (``carried = ""``) ignore it.
    """

    name: str
    kernel = None  # staticmethod: the rule function
    values = None  # staticmethod: the host_and_kernel values function
    advance = None  # staticmethod: the carry update (no_carry for most rules)
    carried = ""  # name of the value carried between steps ("" none)
    slots: tuple  # names of the (up to three) state slots, in kernel order ("" unused)
    Flags: type  # the namedtuple of compile-time switches
    Scalars: type  # the namedtuple of host scalars
    nonnegative = ()  # slots that hold sums of squares (a negative value is a damaged state)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.advance is None:
            cls.advance = staticmethod(no_carry)
        RULES[cls.name] = cls()

    def flags(self, hyper):
        """Compile-time switches of the rule, a :attr:`Flags`."""
        return self.Flags()

    def common_flags(self, hyper):
        """The gradient preparation's switches (:class:`Common`); a rule that applies
        weight decay itself overrides this."""
        return common_flags(hyper)

    def initial_carry(self, hyper):
        """The carried value before the first step."""
        return 0.0

    def active(self, flags):
        """Which of the three slots this variant uses."""
        return (True, False, False)

    def constants(self, hyper):
        """The float hyperparameters that :attr:`values` reads, as a tuple."""
        raise NotImplementedError

    def initial(self, hyper):
        """Initial value of each slot."""
        return (0.0, 0.0, 0.0)

    def depends_on_step(self, hyper):
        """Whether the host scalars change with the step count (else they are reused)."""
        return False


#: rule name -> :class:`Rule` (each subclass adds itself)
RULES = {}


@host_and_kernel
def no_carry(k, lr, carry):
    """The ``advance`` of a rule that carries nothing between steps."""
    return carry


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


@host_and_kernel
def rmsprop_values(k, t, lr, carry):
    rho, eps, momentum, bias_correction = k
    bias = 1.0 - rho ** float(t) if bias_correction else 1.0
    return (lr, rho, 1.0 - rho, eps, momentum, bias, 0.0)


class RMSpropRule(Rule):
    name, kernel, values = "rmsprop", staticmethod(rmsprop), staticmethod(rmsprop_values)
    slots, nonnegative = ("nu", "mu", "buf"), ("nu",)
    Flags, Scalars = RMSpropFlags, RMSpropScalars

    def flags(self, hyper):
        return RMSpropFlags(
            centered=hyper["centered"], momentum=hyper["momentum"] > 0.0,
            nesterov=hyper["nesterov"],
            bias_correction=hyper["bias_correction"], eps_in_sqrt=hyper["eps_in_sqrt"],
            lr_in_momentum=hyper["lr_in_momentum"])

    def active(self, flags):
        return (True, flags.centered, flags.momentum)

    def constants(self, hyper):
        return (hyper["rho"], hyper["eps"], hyper["momentum"], float(hyper["bias_correction"]))

    def initial(self, hyper):
        return (hyper["initial_scale"], 0.0, 0.0)

    def depends_on_step(self, hyper):
        return hyper["bias_correction"]


SGDFlags = namedtuple("SGDFlags", "momentum nesterov lr_in_momentum")
SGDScalars = namedtuple("SGDScalars", "lr momentum")


@njit(inline="always")
def sgd(p, g, buf, unused1, unused2, h, f):
    r"""Gradient descent, with heavy-ball or Nesterov momentum: :math:`d = g`."""
    p, buf = momentum_step(p, g, buf, h.lr, h.momentum, f)
    return p, buf, unused1, unused2


@host_and_kernel
def sgd_values(k, t, lr, carry):
    return (lr, k[0])


class SGDRule(Rule):
    name, kernel, values = "sgd", staticmethod(sgd), staticmethod(sgd_values)
    slots, Flags, Scalars = ("buf", "", ""), SGDFlags, SGDScalars

    def flags(self, hyper):
        return SGDFlags(momentum=hyper["momentum"] > 0.0, nesterov=hyper["nesterov"],
                        lr_in_momentum=hyper["lr_in_momentum"])

    def active(self, flags):
        return (flags.momentum, False, False)

    def constants(self, hyper):
        return (hyper["momentum"],)


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


@host_and_kernel
def adagrad_values(k, t, lr, carry):
    lr_decay, eps = k
    return (lr / (1.0 + (t - 1) * lr_decay), eps)  # PyTorch's lr_decay


class AdaGradRule(Rule):
    name, kernel, values = "adagrad", staticmethod(adagrad), staticmethod(adagrad_values)
    slots, nonnegative = ("acc", "", ""), ("acc",)
    Flags, Scalars = AdaGradFlags, AdaGradScalars

    def flags(self, hyper):
        return AdaGradFlags(eps_in_sqrt=hyper["eps_in_sqrt"])

    def constants(self, hyper):
        return (hyper["lr_decay"], hyper["eps"])

    def initial(self, hyper):
        return (hyper["initial_accumulator_value"], 0.0, 0.0)

    def depends_on_step(self, hyper):
        return hyper["lr_decay"] > 0.0


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


@host_and_kernel
def adadelta_values(k, t, lr, carry):
    rho, eps = k
    return (lr, rho, 1.0 - rho, eps)


class AdaDeltaRule(Rule):
    name, kernel, values = "adadelta", staticmethod(adadelta), staticmethod(adadelta_values)
    slots, nonnegative = ("nu", "u", ""), ("nu", "u")
    Flags, Scalars = AdaDeltaFlags, AdaDeltaScalars

    def active(self, flags):
        return (True, True, False)

    def constants(self, hyper):
        return (hyper["rho"], hyper["eps"])


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


@host_and_kernel
def adam_values(k, t, lr, carry):
    b1, b2, eps = k
    return (lr / (1.0 - b1 ** float(t)), b1, 1.0 - b1, b2, 1.0 - b2, eps,
            np.sqrt(1.0 - b2 ** float(t)))


class AdamRule(Rule):
    name, kernel, values = "adam", staticmethod(adam), staticmethod(adam_values)
    slots, nonnegative = ("m", "v", "vmax"), ("v", "vmax")
    Flags, Scalars = AdamFlags, AdamScalars

    def flags(self, hyper):
        return AdamFlags(amsgrad=hyper["amsgrad"])

    def active(self, flags):
        return (True, True, flags.amsgrad)

    def constants(self, hyper):
        return (hyper["beta1"], hyper["beta2"], hyper["eps"])

    def depends_on_step(self, hyper):
        return True


LionFlags = namedtuple("LionFlags", "")
LionScalars = namedtuple(
    "LionScalars", "lr beta1 one_minus_beta1 beta2 one_minus_beta2 one zero"
)


@njit(inline="always")
def lion(p, g, m, unused1, unused2, h, f):
    r"""Lion (Chen et al. 2023), as optax's ``scale_by_lion`` orders it.

    .. math::

        c &= (1 - \beta_1) g + \beta_1 m, \qquad
        p \leftarrow p - \eta \operatorname{sign}(c) \\
        m &\leftarrow (1 - \beta_2) g + \beta_2 m

    The momentum is updated from its old value, with :math:`\beta_2`. ``sign`` is 0 at 0
    and NaN for NaN (``jnp.sign``). Weight decay is decoupled by default (optax's
    ``lion`` chains ``add_decayed_weights`` before the learning rate).
    """
    c = h.one_minus_beta1 * g + h.beta1 * m
    if c > h.zero:
        s = h.one
    elif c < h.zero:
        s = -h.one
    else:
        s = c  # 0 stays 0 (its sign too), NaN stays NaN
    m = h.one_minus_beta2 * g + h.beta2 * m
    return p - h.lr * s, m, unused1, unused2


@host_and_kernel
def lion_values(k, t, lr, carry):
    b1, b2 = k
    return (lr, b1, 1.0 - b1, b2, 1.0 - b2, 1.0, 0.0)


class LionRule(Rule):
    name, kernel, values = "lion", staticmethod(lion), staticmethod(lion_values)
    slots, Flags, Scalars = ("mu", "", ""), LionFlags, LionScalars

    def constants(self, hyper):
        return (hyper["beta1"], hyper["beta2"])


AdaBeliefFlags = namedtuple("AdaBeliefFlags", "")
AdaBeliefScalars = namedtuple(
    "AdaBeliefScalars",
    "lr beta1 one_minus_beta1 beta2 one_minus_beta2 eps eps_root bias1 bias2",
)


@njit(inline="always")
def adabelief(p, g, m, s, unused, h, f):
    r"""AdaBelief (Zhuang et al. 2020), in optax's ``scale_by_belief`` order of operations.

    .. math::

        m &\leftarrow \beta_1 m + (1 - \beta_1) g \\
        s &\leftarrow \beta_2 s + (1 - \beta_2) (g - m)^2 + \epsilon_{root} \\
        p &\leftarrow p - \eta\, \frac{m / (1 - \beta_1^t)}{\sqrt{s / (1 - \beta_2^t)} + \epsilon}

    The "belief" :math:`s` tracks the squared distance of the gradient from its running mean
    (the new mean, as optax); ``eps_root`` is added to the state at every step.
    """
    m = h.one_minus_beta1 * g + h.beta1 * m
    e = g - m
    s = (h.one_minus_beta2 * (e * e) + h.beta2 * s) + h.eps_root
    u = (m / h.bias1) / (sqrt(s / h.bias2) + h.eps)
    return p - h.lr * u, m, s, unused


@host_and_kernel
def adabelief_values(k, t, lr, carry):
    b1, b2, eps, eps_root = k
    return (lr, b1, 1.0 - b1, b2, 1.0 - b2, eps, eps_root, 1.0 - b1 ** float(t),
            1.0 - b2 ** float(t))


class AdaBeliefRule(Rule):
    name, kernel, values = "adabelief", staticmethod(adabelief), staticmethod(adabelief_values)
    slots, nonnegative = ("mu", "nu", ""), ("nu",)
    Flags, Scalars = AdaBeliefFlags, AdaBeliefScalars

    def active(self, flags):
        return (True, True, False)

    def constants(self, hyper):
        return (hyper["beta1"], hyper["beta2"], hyper["eps"], hyper["eps_root"])

    def depends_on_step(self, hyper):
        return True


LaPropFlags = namedtuple("LaPropFlags", "decay_after")
LaPropScalars = namedtuple(
    "LaPropScalars", "step_size lr_momentum beta1 beta2 one_minus_beta2 eps bias2 lr_decay"
)


@njit(inline="always")
def laprop(p, g, m, nu, unused, h, f):
    r"""LaProp (Ziyin, Wang & Ueda 2020), as timm's ``LaProp`` orders it.

    .. math::

        \nu &\leftarrow \beta_2 \nu + (1 - \beta_2) g^2 \\
        m &\leftarrow \beta_1 m + \eta (1 - \beta_1)\,
            \frac{g}{\sqrt{\nu / (1 - \beta_2^t)} + \epsilon} \\
        p &\leftarrow p - \frac{\eta}{A_t}\, m, \qquad
            A_t = \beta_1 A_{t-1} + (1 - \beta_1)\,\eta_t, \ A_0 = 0

    The gradient is normalised before it enters the momentum (Adam normalises the
    momentum), and the learning rate enters the momentum with it: the momentum is a sum
    of past steps, and :math:`A_t`, the same average of past rates (the carried value,
    ``lr_average``), is its bias correction (:math:`\eta (1 - \beta_1^t)` for a constant
    rate). ``h.step_size`` is :math:`\eta / A_t` (0 when :math:`A_t = 0`). Decoupled
    weight decay (the default) follows the update: :math:`p \leftarrow p - \eta\lambda p`
    on the new ``p`` (``f.decay_after``; ``h.lr_decay`` is :math:`\eta\lambda`).
    """
    nu = h.beta2 * nu + h.one_minus_beta2 * (g * g)
    d = g / (sqrt(nu / h.bias2) + h.eps)
    m = h.beta1 * m + h.lr_momentum * d
    p = p - h.step_size * m
    if f.decay_after:
        p = p - h.lr_decay * p
    return p, m, nu, unused


@host_and_kernel
def laprop_values(k, t, lr, carry):
    b1, b2, eps, wd = k
    step_size = lr / carry if carry != 0.0 else 0.0
    return (step_size, lr * (1.0 - b1), b1, b2, 1.0 - b2, eps, 1.0 - b2 ** float(t),
            lr * wd)


@host_and_kernel
def laprop_advance(k, lr, carry):
    b1 = k[0]
    return carry * b1 + (1.0 - b1) * lr


class LaPropRule(Rule):
    name, kernel, values = "laprop", staticmethod(laprop), staticmethod(laprop_values)
    advance, carried = staticmethod(laprop_advance), "lr_average"
    slots, nonnegative = ("mu", "nu", ""), ("nu",)
    Flags, Scalars = LaPropFlags, LaPropScalars

    def flags(self, hyper):
        return LaPropFlags(
            decay_after=hyper["weight_decay"] > 0.0 and hyper["decoupled_weight_decay"])

    def common_flags(self, hyper):
        common = common_flags(hyper)  # decoupled decay is the rule's own, after the update
        return common._replace(weight_decay=NO_DECAY) if self.flags(hyper).decay_after else common

    def active(self, flags):
        return (True, True, False)

    def constants(self, hyper):
        return (hyper["beta1"], hyper["beta2"], hyper["eps"], hyper["weight_decay"])

    def depends_on_step(self, hyper):
        return True
