"""Vectorised NumPy versions of the rules: the ``"numpy"`` backend and the test oracle.

Written independently of :mod:`rmsopt.rules` (whole-array operations, no shared
code) so that a mistake in either shows up as a disagreement. The arithmetic
is done in the same order as the rules, so on the CPU the two agree bit for bit.

Every function takes one parameter array ``p``, its gradient ``g`` and its
state arrays, with the same host scalars ``h``/``c`` and flags ``f`` as the
rules, and returns new arrays ``(p, s0, s1, s2)`` (``None`` for unused slots).
"""

import numpy as np

from ..rules import DECOUPLED_DECAY, L2_DECAY


def prepare_gradient(p, g, c, f):
    """Clipping, maximize, L2 decay of a whole gradient; decoupled decay of ``p``."""
    if f.clip_norm:
        g = g * c.gscale * c.gscale_pow2
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


def global_norm(grads):
    """Global L2 norm of a list of gradients, in float64.

    NaN if any element is NaN, inf if any is infinite; where the squares
    overflow, the gradient is divided by its largest magnitude first.
    """
    g = np.concatenate([np.ravel(a) for a in grads]).astype(np.float64)
    with np.errstate(over="ignore"):
        norm = np.sqrt(np.dot(g, g))
    if np.isposinf(norm):
        largest = np.max(np.abs(g))
        if np.isfinite(largest):
            norm = largest * np.sqrt(np.dot(g / largest, g / largest))
    return float(norm)
