"""Vectorised NumPy versions of the rules: the ``"numpy"`` backend and the test oracle.

Written independently of :mod:`rmsopt.rules` (whole-array operations, no shared
code) so that a mistake in either shows up as a disagreement. The arithmetic
is done in the same order as the rules, so on the CPU the two agree bit for bit.

Every rule function takes one parameter array ``p``, its gradient ``g`` and its
state arrays, host scalars ``h`` and flags ``f`` (the same names as the rules'),
and returns new arrays ``(p, s0, s1, s2)`` (``None`` for unused slots). The
``"numpy"`` backend passes them the scalars of :mod:`rmsopt.hyper`;
:func:`step` and :class:`Reference`, the oracle of the tests, pass them scalars
derived here again from the hyperparameter dict (:func:`derive_scalars`), so that
the host-scalar code of :mod:`rmsopt.hyper` and :mod:`rmsopt.rules` is checked too.
"""

import math
from types import SimpleNamespace

import numpy as np

from ..rules import DECOUPLED_DECAY, L2_DECAY


def prepare_gradient(p, g, c, f):
    """Clipping, maximize, L2 decay of a whole gradient; decoupled decay of ``p``."""
    if f.clip_norm:
        g = g * c.clip_scale * c.clip_pow2
    if f.clip_value:
        g = np.where(g > c.clip, c.clip, np.where(g < c.neg_clip, c.neg_clip, g))
    if f.maximize:
        g = -g
    if f.weight_decay == L2_DECAY:
        g = g + c.wd * p
    if f.weight_decay == DECOUPLED_DECAY:
        p = p * c.decay
    return p, g


def _apply_momentum(p, d, buf, lr, m, f):
    if not f.momentum:
        return p - lr * d, None
    if f.lr_in_momentum:
        scaled = lr * d
        new_buf = m * buf + scaled
        return p - (scaled + m * new_buf if f.nesterov else new_buf), new_buf
    new_buf = m * buf + d
    return p - lr * (d + m * new_buf if f.nesterov else new_buf), new_buf


def rmsprop(p, g, nu, mu, buf, h, f):
    nu = h.rho * nu + h.one_minus_rho * np.square(g)
    nu_hat = nu / h.bias if f.bias_correction else nu
    if f.centered:
        mu = h.rho * mu + h.one_minus_rho * g
        mu_hat = mu / h.bias if f.bias_correction else mu
        mu_sq = np.square(mu_hat)
        var = np.maximum(nu_hat - mu_sq, h.zero)  # NaN propagates
        # except inf - inf from an overflowed nu: then var = nu_hat (inf), as uncentered
        var = np.where(np.isnan(var) & ~np.isnan(mu_sq), nu_hat, var)
    else:
        mu, var = None, nu_hat
    den = np.sqrt(var + h.eps) if f.eps_in_sqrt else np.sqrt(var) + h.eps
    p, buf = _apply_momentum(p, g / den, buf, h.lr, h.momentum, f)
    return p, nu, mu, buf


def sgd(p, g, buf, unused1, unused2, h, f):
    p, buf = _apply_momentum(p, g, buf, h.lr, h.momentum, f)
    return p, buf, None, None


def adagrad(p, g, acc, unused1, unused2, h, f):
    acc = acc + np.square(g)
    den = np.sqrt(acc + h.eps) if f.eps_in_sqrt else np.sqrt(acc) + h.eps
    return p - h.lr * (g / den), acc, None, None


def adadelta(p, g, nu, u, unused, h, f):
    nu = h.rho * nu + h.one_minus_rho * np.square(g)
    delta = np.sqrt(u + h.eps) / np.sqrt(nu + h.eps) * g
    u = h.rho * u + h.one_minus_rho * np.square(delta)
    return p - h.lr * delta, nu, u, None


def adam(p, g, m, v, vmax, h, f):
    m = h.beta1 * m + h.one_minus_beta1 * g
    v = h.beta2 * v + h.one_minus_beta2 * np.square(g)
    if f.amsgrad:
        vmax = np.maximum(vmax, v)  # propagates NaN
        vhat = vmax
    else:
        vmax, vhat = None, v
    den = np.sqrt(vhat) / h.sqrt_bias2 + h.eps
    return p - h.step_size * (m / den), m, v, vmax


def lion(p, g, m, unused1, unused2, h, f):
    direction = np.sign(h.one_minus_beta1 * g + h.beta1 * m)  # sign(0) = 0, sign(NaN) = NaN
    m = h.one_minus_beta2 * g + h.beta2 * m
    return p - h.lr * direction, m, None, None


def adabelief(p, g, m, s, unused, h, f):
    m = h.one_minus_beta1 * g + h.beta1 * m
    s = (h.one_minus_beta2 * np.square(g - m) + h.beta2 * s) + h.eps_root
    m_hat, s_hat = m / h.bias1, s / h.bias2
    return p - h.lr * (m_hat / (np.sqrt(s_hat) + h.eps)), m, s, None


def laprop(p, g, m, nu, unused, h, f):
    nu = h.beta2 * nu + h.one_minus_beta2 * np.square(g)
    normalised = g / (np.sqrt(nu / h.bias2) + h.eps)
    m = h.beta1 * m + h.lr_momentum * normalised
    p = p - h.step_size * m
    if f.decay_after:  # timm: decoupled decay on the updated parameters
        p = p - h.lr_decay * p
    return p, m, nu, None


#: rule name -> the element-wise step above (``rmsopt.rules.RULES`` has the same names)
STEPS = {"rmsprop": rmsprop, "sgd": sgd, "adagrad": adagrad, "adadelta": adadelta, "adam": adam,
         "lion": lion, "adabelief": adabelief, "laprop": laprop}


def global_norm(grads):
    """Global L2 norm of a list of gradients, in float64 (``np.linalg.norm`` of them all).

    NaN if any element is NaN, inf if any is infinite; where the squares
    overflow, the gradient is divided by its largest magnitude first.
    """
    g = np.concatenate([np.ravel(a) for a in grads]).astype(np.float64)
    with np.errstate(over="ignore"):
        norm = np.linalg.norm(g)
    if np.isposinf(norm):
        largest = np.max(np.abs(g))
        if np.isfinite(largest):
            norm = largest * np.linalg.norm(g / largest)
    return float(norm)


# ------------------------------------------------ the reference's own per-step scalars
#
# Everything below derives a step's scalars from the hyperparameter dict alone (an
# optimizer's ``opt.hyper``), the step count and the learning rate, with the formulas of
# the papers and libraries written out again here, in plain Python float64 arithmetic.
# Nothing comes from ``rmsopt.hyper`` or from the scalar functions of ``rmsopt.rules``, so
# that a mistake there (a wrong power of the bias correction, torch's ``+ 1e-6`` in the clip
# scale) makes the kernels disagree with :class:`Reference` in ``tests/test_properties.py``.

SLOTS = {"rmsprop": ("nu", "mu", "buf"), "sgd": ("buf", None, None),
         "adagrad": ("acc", None, None), "adadelta": ("nu", "u", None),
         "adam": ("m", "v", "vmax"), "lion": ("mu", None, None),
         "adabelief": ("mu", "nu", None), "laprop": ("mu", "nu", None)}


def derive_scalars(rule, hyper, t, lr, grads=None, lr_average=None):
    r"""The float64 scalars of step ``t`` (from 1) with learning rate ``lr``, as a dict.

    ``rule`` is the rule's name (``"rmsprop"``, ``"sgd"``, ``"adagrad"``, ``"adadelta"``,
    ``"adam"``), ``hyper`` the optimizer's hyperparameter dict and ``grads`` the list of
    gradients (read only for ``clip_norm``). The keys are the names that the elementwise
    functions above read, plus those of the gradient preparation:

    * RMSprop: ``one_minus_rho`` :math:`= 1 - \rho`; ``bias`` :math:`= 1 - \rho^t` with
      ``bias_correction`` (else 1).
    * AdaGrad: ``lr`` :math:`= \eta / (1 + (t - 1)\,\text{lr\_decay})` (PyTorch's decay).
    * AdaDelta: ``one_minus_rho`` :math:`= 1 - \rho`.
    * Adam: ``step_size`` :math:`= \eta / (1 - \beta_1^t)`, ``sqrt_bias2``
      :math:`= \sqrt{1 - \beta_2^t}`, ``one_minus_beta1/2`` (Kingma & Ba, as PyTorch).
    * Lion: ``one_minus_beta1/2`` (Chen et al., as optax).
    * AdaBelief: ``one_minus_beta1/2``, ``bias1`` :math:`= 1 - \beta_1^t`, ``bias2``
      :math:`= 1 - \beta_2^t`, ``eps_root`` (Zhuang et al., as optax).
    * LaProp: ``step_size`` :math:`= \eta / A_t` (0 if :math:`A_t = 0`) from ``lr_average``
      :math:`A_t`, the running average of the rates including this step's (kept by
      :class:`Reference`); ``lr_momentum`` :math:`= \eta (1 - \beta_1)`, ``bias2``
      :math:`= 1 - \beta_2^t`, ``lr_decay`` :math:`= \eta\lambda` (timm).
    * All: ``wd``; ``decay`` :math:`= 1 - \eta\lambda` (decoupled weight decay, with the
      step's ``lr``, before AdaGrad's decay); ``clip`` and ``neg_clip`` :math:`= \pm v`;
      ``scale`` :math:`= \min(1, c / \lVert g \rVert_2)` for ``clip_norm`` :math:`c`, the
      norm over all gradients (:func:`global_norm`), NaN if the norm is NaN, 0 if it is
      infinite (optax's ``clip_by_global_norm``; PyTorch adds 1e-6 to the norm, rmsopt does
      not); 1 without ``clip_norm``.
    """
    lr = float(lr)
    k = {"lr": lr, "zero": 0.0, "eps": hyper.get("eps", 0.0),
         "momentum": hyper.get("momentum", 0.0)}
    if rule in ("rmsprop", "adadelta"):
        rho = hyper["rho"]
        k.update(rho=rho, one_minus_rho=1.0 - rho)
        k["bias"] = 1.0 - rho ** float(t) if hyper.get("bias_correction") else 1.0
    elif rule == "adagrad":
        k["lr"] = lr / (1.0 + (t - 1) * hyper["lr_decay"])
    elif rule == "adam":
        b1, b2 = hyper["beta1"], hyper["beta2"]
        k.update(beta1=b1, one_minus_beta1=1.0 - b1, beta2=b2, one_minus_beta2=1.0 - b2,
                 step_size=lr / (1.0 - b1 ** float(t)),
                 sqrt_bias2=math.sqrt(1.0 - b2 ** float(t)))
    elif rule == "adabelief":
        b1, b2 = hyper["beta1"], hyper["beta2"]
        k.update(beta1=b1, one_minus_beta1=1.0 - b1, beta2=b2, one_minus_beta2=1.0 - b2,
                 eps_root=hyper["eps_root"], bias1=1.0 - b1 ** float(t),
                 bias2=1.0 - b2 ** float(t))
    elif rule == "laprop":
        b1, b2 = hyper["beta1"], hyper["beta2"]
        k.update(beta1=b1, beta2=b2, one_minus_beta2=1.0 - b2, lr_momentum=lr * (1.0 - b1),
                 step_size=lr / lr_average if lr_average != 0.0 else 0.0,
                 bias2=1.0 - b2 ** float(t), lr_decay=lr * hyper["weight_decay"])
    elif rule == "lion":
        b1, b2 = hyper["beta1"], hyper["beta2"]
        k.update(beta1=b1, one_minus_beta1=1.0 - b1, beta2=b2, one_minus_beta2=1.0 - b2)
    elif rule != "sgd":
        raise ValueError(f"unknown rule {rule!r}")
    wd, clip = hyper["weight_decay"], hyper["clip_value"] or 0.0
    k.update(wd=wd, decay=1.0 - lr * wd, clip=clip, neg_clip=-clip, scale=1.0)
    if hyper["clip_norm"] is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.float64(hyper["clip_norm"]) / np.float64(global_norm(grads))
        k["scale"] = float(np.minimum(1.0, scale))  # np.minimum keeps a NaN
    return k


def _flags(rule, hyper):
    """The switches of the variant, read from ``hyper`` under the names the functions use."""
    f = SimpleNamespace(**{k: v for k, v in hyper.items() if isinstance(v, bool)})
    f.momentum = hyper.get("momentum", 0.0) > 0.0
    decay = hyper["weight_decay"] > 0.0
    f.weight_decay = (0 if not decay else DECOUPLED_DECAY if hyper["decoupled_weight_decay"]
                      else L2_DECAY)
    f.clip_norm, f.clip_value = hyper["clip_norm"] is not None, hyper["clip_value"] is not None
    f.decay_after = rule == "laprop" and f.weight_decay == DECOUPLED_DECAY  # timm's order
    if f.decay_after:
        f.weight_decay = 0
    return f


def active_slots(rule, hyper):
    """The state slots this variant keeps, by name, and each one's initial value."""
    momentum = hyper.get("momentum", 0.0) > 0.0
    use = {"rmsprop": (True, hyper.get("centered"), momentum), "sgd": (momentum, False, False),
           "adagrad": (True, False, False), "adadelta": (True, True, False),
           "adam": (True, True, hyper.get("amsgrad")), "lion": (True, False, False),
           "adabelief": (True, True, False), "laprop": (True, True, False)}[rule]
    first = {"rmsprop": hyper.get("initial_scale"),
             "adagrad": hyper.get("initial_accumulator_value")}.get(rule, 0.0)
    return [(name, value) if used else None
            for name, used, value in zip(SLOTS[rule], use, (first, 0.0, 0.0))]


def _split(s):
    """The clip scale as the kernels round it: ``(m, q)``, ``s = m q``, ``q = 2**-100`` below
    ``2**-100`` (so that ``m`` stays a normal float32), else ``q = 1``."""
    return (s * 2.0 ** 100, 2.0 ** -100) if s < 2.0 ** -100 else (s, 1.0)


def step(rule, hyper, t, lr, params, grads, state, scale_as_kernels=False, lr_average=None):
    """One step of every array from the reference's own scalars (:func:`derive_scalars`).

    ``params`` and ``grads`` are lists of arrays of one float dtype, ``state`` maps each
    active slot's name to a list of arrays like ``params``. Returns new ``(params, state)``;
    nothing given is modified.

    The clip scale is applied as one exactly rounded product, ``g * scale`` in float64 cast
    to the dtype. The kernels round the scale to the dtype first (two factors, see
    ``rmsopt.rules.split_scale``), so in float32 a clipped element may differ from theirs in
    the last bit (in float64 only where the product is subnormal). ``scale_as_kernels=True``
    applies it as they do, for bitwise comparisons; the scale itself is still this
    module's.
    """
    dtype = np.dtype(params[0].dtype).type
    k = derive_scalars(rule, hyper, t, lr, grads, lr_average)
    h = SimpleNamespace(**{name: dtype(v) for name, v in k.items()})
    f = _flags(rule, hyper)
    fn = STEPS[rule]
    names = [s and s[0] for s in active_slots(rule, hyper)]
    new_params, new_state = [], {n: [] for n in names if n}
    # the clip scale is applied here (exactly, or split as the kernels do); the rest of the
    # gradient preparation is prepare_gradient's
    rest = SimpleNamespace(**dict(vars(f), clip_norm=False))
    for j, (p, g) in enumerate(zip(params, grads)):
        g = np.asarray(g, dtype=dtype)
        if f.clip_norm:
            if scale_as_kernels:
                m, q = _split(k["scale"])
                g = g * dtype(m) * dtype(q)
            else:
                g = (g.astype(np.float64) * k["scale"]).astype(dtype)
        p, g = prepare_gradient(p, g, h, rest)
        views = [state[n][j] if n else None for n in names]
        out = fn(p, g, *views, h, f)
        new_params.append(out[0])
        for n, value in zip(names, out[1:]):
            if n:
                new_state[n].append(value)
    return new_params, new_state


class Reference:
    """An optimizer in plain NumPy, built from a rule's name and a hyperparameter dict.

    The test oracle: ``Reference(opt.rule.name, opt.hyper, x0)`` follows the optimizer
    ``opt`` with its own scalars (:func:`derive_scalars`), its own initial state and step
    count. ``params`` (an array or a list) is copied and flattened; :attr:`params` holds the
    current 1-D arrays and :meth:`flat_state` the state as the optimizer's flat buffers.
    """

    def __init__(self, rule, hyper, params, scale_as_kernels=False):
        arrays = params if isinstance(params, (list, tuple)) else [params]
        self.rule, self.hyper, self.t = rule, dict(hyper), 0
        self.lr_average = 0.0  # LaProp's A_t
        self.params = [np.array(a).reshape(-1) for a in arrays]
        self.scale_as_kernels = scale_as_kernels
        self.state = {s[0]: [np.full_like(a, s[1]) for a in self.params]
                      for s in active_slots(rule, hyper) if s}

    def step(self, grads, lr=None):
        grads = grads if isinstance(grads, (list, tuple)) else [grads]
        grads = [np.asarray(g).reshape(-1) for g in grads]
        self.t += 1
        lr = self.hyper["lr"] if lr is None else lr
        if self.rule == "laprop":  # A_t = beta1 A_{t-1} + (1 - beta1) lr_t
            b1 = self.hyper["beta1"]
            self.lr_average = self.lr_average * b1 + (1.0 - b1) * float(lr)
        self.params, self.state = step(self.rule, self.hyper, self.t, lr, self.params, grads,
                                       self.state, self.scale_as_kernels, self.lr_average)

    def flat_state(self):
        return {name: np.concatenate(arrays) for name, arrays in self.state.items()}
