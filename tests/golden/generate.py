"""Generate ``trajectories.json``: reference runs that ``tests/test_golden.py`` replays with rmsopt.

Not a test (pytest imports it only for doctests; torch is imported lazily) and it never imports
rmsopt, so the numbers come only from the libraries. Rerun from the repository root, with torch in
an environment of its own so that the project's stays clean::

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    /tmp/torchenv/bin/python tests/golden/generate.py

Sources of the numbers:

* ``torch-*``: ``torch.optim`` itself, run in float64 (RMSprop, SGD, Adagrad, Adadelta, Adam,
  AdamW), the learning rate changed through ``param_groups`` where a case has a schedule.
* ``keras-*``, ``optax-*``, ``tf1-*``: each library's published update equations, written below in
  NumPy in that library's order of operations (none of them can be installed here).

Clipping (``*-clip-*``). rmsopt's ``clip_norm`` is optax's ``clip_by_global_norm``:
``g * min(1, c / ||g||)``, no epsilon. ``torch.nn.utils.clip_grad_norm_`` scales by
``min(1, c / (||g|| + 1e-6))`` instead: where it clips, its scale is smaller by a relative
``1e-6 / (||g|| + 1e-6)`` (here up to 3e-5, the norms falling to 0.03), so the torch clip_norm
cases (``torch-*-clip-norm*``, torch run for real, ``clip_grad_norm_`` before each step) can only
agree to a looser tolerance, which ``tests/test_golden.py`` sets and documents; the exact clip_norm
cases come from optax's equations (``optax-*-clip-norm*``: ``clip_by_global_norm`` chained before
``rmsprop`` or ``sgd``). ``clip_grad_value_`` (a clamp to ``[-v, v]``) is rmsopt's ``clip_value``
exactly (``torch-*-clip-value``).

The problem: 5 parameters, 25 steps, gradient ``A @ p - b + 0.1 * sin(3 p)`` of the current
parameters (A symmetric positive definite), so every step depends on all earlier ones.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np

STEPS = 25
OUT = Path(__file__).with_name("trajectories.json")


def problem():
    """The fixed problem: ``A``, ``b`` and the starting point ``p0``."""
    rng = np.random.default_rng(20240917)
    m = rng.uniform(-1.0, 1.0, (5, 5))
    a = 0.1 * (m @ m.T) + 0.1 * np.eye(5)
    p_star = np.array([1.5, -2.0, 1.0, 2.5, -1.0])  # where the gradient vanishes
    b = a @ p_star + 0.1 * np.sin(3.0 * p_star)
    p0 = np.array([1.0, -1.5, 0.75, 2.0, -0.75])
    return a, b, p0


def gradient(a, b):
    return lambda p: a @ p - b + 0.1 * np.sin(3.0 * p)


def schedule(base):
    """A changing learning rate: one value per step, between 0.5 and 1.5 times ``base``."""
    return [base * (1.0 + 0.5 * math.sin(1.3 * t)) for t in range(1, STEPS + 1)]


# ------------------------------------------------------------------ PyTorch, run for real

def run_torch(name, kwargs, p0, grad, lrs, clip_norm=None, clip_value=None):
    """``torch.optim.<name>`` for ``STEPS`` steps; the gradient clipped first (by norm, then by
    value, rmsopt's order) with ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``."""
    import torch

    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = getattr(torch.optim, name)([p], **kwargs)
    out = []
    for t in range(STEPS):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[t]
        p.grad = torch.from_numpy(grad(p.detach().numpy().copy()))
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_([p], clip_norm)
        if clip_value is not None:
            torch.nn.utils.clip_grad_value_([p], clip_value)
        opt.step()
        out.append(p.detach().numpy().copy())
    return out


# (id, torch class, torch kwargs, rmsopt class, rmsopt kwargs, base lr of a schedule or None)
TORCH = [
    ("torch-rmsprop", "RMSprop", {}, "RMSprop", {}, None),
    ("torch-rmsprop-momentum", "RMSprop", dict(momentum=0.9), "RMSprop", dict(momentum=0.9), None),
    ("torch-rmsprop-centered", "RMSprop", dict(centered=True), "RMSprop", dict(centered=True),
     None),
    ("torch-rmsprop-centered-momentum", "RMSprop", dict(centered=True, momentum=0.5), "RMSprop",
     dict(centered=True, momentum=0.5), None),
    ("torch-rmsprop-weight-decay", "RMSprop", dict(weight_decay=0.1), "RMSprop",
     dict(weight_decay=0.1), None),
    ("torch-rmsprop-maximize", "RMSprop", dict(maximize=True), "RMSprop", dict(maximize=True),
     None),
    ("torch-rmsprop-alpha-eps", "RMSprop", dict(alpha=0.9, eps=1e-4), "RMSprop",
     dict(alpha=0.9, eps=1e-4), None),
    ("torch-rmsprop-momentum-lr-schedule", "RMSprop", dict(momentum=0.9), "RMSprop",
     dict(momentum=0.9), 1e-2),
    ("torch-rmsprop-centered-momentum-lr-schedule", "RMSprop", dict(centered=True, momentum=0.9),
     "RMSprop", dict(centered=True, momentum=0.9), 1e-2),
    ("torch-sgd", "SGD", {}, "SGD", {}, None),
    ("torch-sgd-momentum", "SGD", dict(lr=0.05, momentum=0.9), "SGD",
     dict(lr=0.05, momentum=0.9), None),
    ("torch-sgd-nesterov-weight-decay", "SGD",
     dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1), "SGD",
     dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1), None),
    ("torch-sgd-momentum-lr-schedule", "SGD", dict(momentum=0.9), "SGD", dict(momentum=0.9),
     0.05),
    ("torch-adagrad", "Adagrad", {}, "AdaGrad", {}, None),
    ("torch-adagrad-options", "Adagrad",
     dict(lr=0.05, lr_decay=0.05, initial_accumulator_value=0.1, weight_decay=0.1), "AdaGrad",
     dict(lr=0.05, lr_decay=0.05, initial_accumulator_value=0.1, weight_decay=0.1), None),
    ("torch-adadelta", "Adadelta", {}, "AdaDelta", {}, None),
    ("torch-adadelta-options", "Adadelta", dict(rho=0.95, eps=1e-4, weight_decay=0.1, lr=0.5),
     "AdaDelta", dict(rho=0.95, eps=1e-4, weight_decay=0.1, lr=0.5), None),
    ("torch-adam", "Adam", {}, "Adam", {}, None),
    ("torch-adam-amsgrad", "Adam", dict(lr=0.01, amsgrad=True), "Adam",
     dict(lr=0.01, amsgrad=True), None),
    ("torch-adam-weight-decay-maximize", "Adam", dict(lr=0.01, weight_decay=0.1, maximize=True),
     "Adam", dict(lr=0.01, weight_decay=0.1, maximize=True), None),
    ("torch-adam-lr-schedule", "Adam", dict(betas=(0.8, 0.99)), "Adam",
     dict(beta1=0.8, beta2=0.99), 0.01),
    ("torch-adamw", "AdamW", {}, "AdamW", {}, None),
    ("torch-adamw-amsgrad", "AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True), "AdamW",
     dict(lr=0.01, weight_decay=0.1, amsgrad=True), None),
]

# The same with clipping before each step: (id, torch class, torch kwargs, clip_norm, clip_value,
# rmsopt class, rmsopt kwargs besides the clipping). The gradient norms here fall from 0.33 to
# 0.03 over the 25 steps and its largest element from 0.26 to 0.03: each clip is active at first
# and not at the end (Adam's, whose norms stay near 0.32, throughout).
TORCH_CLIP = [
    ("torch-rmsprop-clip-value", "RMSprop", {}, None, 0.05, "RMSprop", {}),
    ("torch-adam-clip-value", "Adam", dict(lr=0.01), None, 0.1, "Adam", dict(lr=0.01)),
    ("torch-rmsprop-clip-norm", "RMSprop", {}, 0.05, None, "RMSprop", {}),
    ("torch-sgd-momentum-clip-norm", "SGD", dict(lr=0.05, momentum=0.9), 0.1, None, "SGD",
     dict(lr=0.05, momentum=0.9)),
    ("torch-adam-clip-norm-clip-value", "Adam", dict(lr=0.01), 0.2, 0.1, "Adam", dict(lr=0.01)),
]


# ------------------------------------- Keras 3, optax, TF1: their equations, their op order

def keras3(p0, grad, lrs, rho=0.9, eps=1e-7, momentum=0.0, centered=False, weight_decay=None):
    """``keras.optimizers.RMSprop`` (Keras 3, ``keras/src/optimizers/rmsprop.py``).

    ``Optimizer.apply`` first applies weight decay (``_apply_weight_decay``: ``v - v * wd * lr``
    with the step's lr), then ``update_step``; the gradient was taken before both.
    """
    p = p0.copy()
    velocity, average_grad, mom = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    out = []
    for lr in lrs:
        g = grad(p)
        if weight_decay is not None:
            p = p - p * weight_decay * lr
        velocity = rho * velocity + (1 - rho) * np.square(g)
        if centered:
            average_grad = rho * average_grad + (1 - rho) * g
            denominator = velocity - np.square(average_grad) + eps
        else:
            denominator = velocity + eps
        increment = (lr * g) / np.sqrt(denominator)
        if momentum > 0:
            mom = momentum * mom + increment
            p = p - mom
        else:
            p = p - increment
        out.append(p.copy())
    return out


def optax_(p0, grad, lrs, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
           centered=False, momentum=None, nesterov=False, bias_correction=False):
    """``optax.rmsprop``: ``chain(scale_by_rms | scale_by_stddev, scale_by_learning_rate, trace)``.

    ``scale_by_rms``/``scale_by_stddev`` (``optax/_src/transform.py``): moments by
    ``update_moment[_per_elem_norm]`` (``(1 - decay) * g**k + decay * t``), optional bias
    correction by ``1 - decay**count``, then ``g * rsqrt(var + eps)`` or
    ``g * (1 / (sqrt(var) + eps))``; ``scale_by_learning_rate`` multiplies by ``-lr``;
    ``trace``: ``t = u + momentum * t``, update ``u + momentum * t`` (nesterov) or ``t``;
    ``apply_updates`` adds the update.
    """
    p = p0.copy()
    mu, nu, tr = np.zeros_like(p), np.full_like(p, initial_scale), np.zeros_like(p)
    out = []
    for count, lr in enumerate(lrs, start=1):
        g = grad(p)
        if centered:
            mu = (1 - decay) * g + decay * mu
        nu = (1 - decay) * (g ** 2) + decay * nu
        mu_hat, nu_hat = mu, nu
        if bias_correction:
            mu_hat, nu_hat = mu / (1 - decay ** count), nu / (1 - decay ** count)
        var = nu_hat - np.square(mu_hat) if centered else nu_hat
        scaling = 1 / np.sqrt(var + eps) if eps_in_sqrt else 1 / (np.sqrt(var) + eps)
        u = scaling * g
        u = -lr * u
        if momentum is not None:
            tr = u + momentum * tr
            u = u + momentum * tr if nesterov else tr
        p = p + u
        out.append(p.copy())
    return out


def tf1(p0, grad, lrs, decay=0.9, eps=1e-10, momentum=0.0, centered=False):
    """``tf.compat.v1.train.RMSPropOptimizer``: slot ``rms`` starts at 1, ``momentum``/``mg`` at 0.

    The kernels ``ApplyRMSProp``/``ApplyCenteredRMSProp`` (``training_ops.cc``):
    ``ms += (g*g - ms) * (1 - rho)``, ``mg += (g - mg) * (1 - rho)``,
    ``mom = mom * momentum + (g * lr) / sqrt(ms + eps)`` (centered: ``sqrt(ms - mg*mg + eps)``),
    ``var -= mom``; the momentum accumulator is always used.
    """
    p = p0.copy()
    ms, mg, mom = np.ones_like(p), np.zeros_like(p), np.zeros_like(p)
    out = []
    for lr in lrs:
        g = grad(p)
        ms = ms + (g * g - ms) * (1 - decay)
        if centered:
            mg = mg + (g - mg) * (1 - decay)
            denom = (ms - mg * mg) + eps
        else:
            denom = ms + eps
        mom = mom * momentum + (g * lr) / np.sqrt(denom)
        p = p - mom
        out.append(p.copy())
    return out


def optax_clip_by_global_norm(g, max_norm):
    """``optax.clip_by_global_norm`` (``optax/_src/clipping.py``): ``g_norm`` the global norm
    (``sqrt`` of the sum of squares of all leaves); ``g`` if ``g_norm < max_norm``, else
    ``(g / g_norm) * max_norm``. No epsilon: rmsopt's ``clip_norm``."""
    g_norm = np.sqrt(np.sum(np.square(g)))
    return g if g_norm < max_norm else (g / g_norm) * max_norm


def optax_clipped(fn, clip_norm, clip_value=None):
    """``optax.chain(clip_by_global_norm(clip_norm)[, clip(clip_value)], <fn's optimizer>)``:
    ``fn`` run on the clipped gradient. ``optax.clip(max_delta)`` is ``clip(g, -v, v)``."""
    def run(p0, grad, lrs, **kwargs):
        def clipped(p):
            g = optax_clip_by_global_norm(grad(p), clip_norm)
            return g if clip_value is None else np.clip(g, -clip_value, clip_value)
        return fn(p0, clipped, lrs, **kwargs)
    return run


def optax_sgd(p0, grad, lrs, momentum=None, nesterov=False):
    """``optax.sgd``: ``chain(trace(momentum, nesterov), scale_by_learning_rate)``, so the lr
    stays outside the momentum buffer (rmsopt's SGD default): ``t = g + momentum * t``, update
    ``-lr * t`` (nesterov: ``-lr * (g + momentum * t)``)."""
    p = p0.copy()
    tr = np.zeros_like(p)
    out = []
    for lr in lrs:
        g = grad(p)
        u = g
        if momentum is not None:
            tr = g + momentum * tr
            u = g + momentum * tr if nesterov else tr
        p = p + -lr * u
        out.append(p.copy())
    return out


# Clipped runs from optax's equations: (id, optax's chain, function, its kwargs, rmsopt optimizer,
# rmsopt kwargs, constant lr); clip_norm 0.05 is active over the first half of the run.
OPTAX_CLIP = [
    ("optax-clip-norm", "clip_by_global_norm + rmsprop", optax_clipped(optax_, 0.05), {},
     "RMSprop", dict(convention="optax", clip_norm=0.05), 1e-3),
    ("optax-momentum-clip-norm-clip-value", "clip_by_global_norm + clip + rmsprop",
     optax_clipped(optax_, 0.05, 0.02), dict(momentum=0.9), "RMSprop",
     dict(convention="optax", momentum=0.9, clip_norm=0.05, clip_value=0.02), 1e-3),
    ("optax-sgd-momentum-clip-norm", "clip_by_global_norm + sgd", optax_clipped(optax_sgd, 0.1),
     dict(momentum=0.9), "SGD", dict(lr=0.05, momentum=0.9, clip_norm=0.1), 0.05),
]


# (id, function, its kwargs, rmsopt kwargs beyond the convention, base lr of a schedule or None);
# the functions' defaults are the libraries' defaults, which the presets must supply.
EQUATIONS = [
    ("keras", keras3, [
        ("keras", {}, {}, None),
        ("keras-momentum", dict(momentum=0.9), dict(momentum=0.9), None),
        ("keras-centered", dict(centered=True), dict(centered=True), None),
        ("keras-centered-momentum", dict(centered=True, momentum=0.5),
         dict(centered=True, momentum=0.5), None),
        ("keras-weight-decay", dict(weight_decay=0.1), dict(weight_decay=0.1), None),
        ("keras-momentum-lr-schedule", dict(momentum=0.9), dict(momentum=0.9), 1e-3),
        ("keras-momentum-weight-decay-lr-schedule", dict(momentum=0.9, weight_decay=0.1),
         dict(momentum=0.9, weight_decay=0.1), 1e-3),
    ]),
    ("optax", optax_, [
        ("optax", {}, {}, None),
        ("optax-momentum", dict(momentum=0.9), dict(momentum=0.9), None),
        ("optax-centered", dict(centered=True), dict(centered=True), None),
        ("optax-centered-momentum", dict(centered=True, momentum=0.5),
         dict(centered=True, momentum=0.5), None),
        ("optax-nesterov", dict(momentum=0.9, nesterov=True), dict(momentum=0.9, nesterov=True),
         None),
        ("optax-bias-correction", dict(bias_correction=True), dict(bias_correction=True), None),
        ("optax-bias-correction-momentum", dict(bias_correction=True, momentum=0.9),
         dict(bias_correction=True, momentum=0.9), None),
        ("optax-eps-outside-sqrt", dict(eps_in_sqrt=False, eps=1e-3),
         dict(eps_in_sqrt=False, eps=1e-3), None),
        ("optax-initial-scale", dict(initial_scale=0.5), dict(initial_scale=0.5), None),
        ("optax-momentum-lr-schedule", dict(momentum=0.9), dict(momentum=0.9), 1e-3),
        ("optax-nesterov-lr-schedule", dict(momentum=0.9, nesterov=True),
         dict(momentum=0.9, nesterov=True), 1e-3),
    ]),
    ("tf1", tf1, [
        ("tf1", {}, {}, None),
        ("tf1-momentum", dict(momentum=0.9), dict(momentum=0.9), None),
        ("tf1-centered", dict(centered=True), dict(centered=True), None),
        ("tf1-centered-momentum", dict(centered=True, momentum=0.5),
         dict(centered=True, momentum=0.5), None),
        ("tf1-momentum-lr-schedule", dict(momentum=0.9), dict(momentum=0.9), 1e-3),
    ]),
]
DEFAULT_LR = {"keras": 1e-3, "optax": 1e-3, "tf1": 1e-3}


def cases(a, b, p0):
    grad = gradient(a, b)
    import torch

    for case_id, name, torch_kwargs, cls, kwargs, base in TORCH:
        lrs = None if base is None else schedule(base)
        if cls == "RMSprop":
            kwargs = dict(convention="torch", **kwargs)
        yield dict(id=case_id, source=f"torch.optim.{name} (torch {torch.__version__})",
                   optimizer=cls, kwargs=kwargs, lrs=lrs,
                   trajectory=run_torch(name, torch_kwargs, p0, grad, lrs))
    for convention, fn, entries in EQUATIONS:
        for case_id, fn_kwargs, kwargs, base in entries:
            lrs = None if base is None else schedule(base)
            run_lrs = [DEFAULT_LR[convention]] * STEPS if lrs is None else lrs
            yield dict(id=case_id, source=f"{fn.__name__.rstrip('_')} equations (generate.py)",
                       optimizer="RMSprop", kwargs=dict(convention=convention, **kwargs),
                       lrs=lrs, trajectory=fn(p0, grad, run_lrs, **fn_kwargs))
    for case_id, name, torch_kwargs, clip_norm, clip_value, cls, kwargs in TORCH_CLIP:
        kwargs = dict(kwargs, **{k: v for k, v in (("clip_norm", clip_norm),
                                                   ("clip_value", clip_value)) if v is not None})
        if cls == "RMSprop":
            kwargs = dict(convention="torch", **kwargs)
        clips = " + ".join(f for f, v in (("clip_grad_norm_", clip_norm),
                                          ("clip_grad_value_", clip_value)) if v is not None)
        yield dict(id=case_id, source=f"torch.nn.utils.{clips}, torch.optim.{name} "
                                      f"(torch {torch.__version__})",
                   optimizer=cls, kwargs=kwargs, lrs=None,
                   trajectory=run_torch(name, torch_kwargs, p0, grad, None, clip_norm,
                                        clip_value))
    for case_id, chain, fn, fn_kwargs, cls, kwargs, lr in OPTAX_CLIP:
        yield dict(id=case_id, source=f"optax equations, chain({chain}) (generate.py)",
                   optimizer=cls, kwargs=kwargs, lrs=None,
                   trajectory=fn(p0, grad, [lr] * STEPS, **fn_kwargs))


def dumps(x, indent=""):
    """JSON with every float written as ``%.17g`` (exact for float64); one step per line."""
    if isinstance(x, dict):
        inner = indent + "  "
        items = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in x.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(x, (list, tuple, np.ndarray)):
        x = list(x)
        if x and all(isinstance(v, (dict, list, tuple, np.ndarray)) for v in x):
            inner = indent + "  "
            return "[\n" + ",\n".join(inner + dumps(v, inner) for v in x) + "\n" + indent + "]"
        return "[" + ", ".join(dumps(v, indent) for v in x) + "]"
    if isinstance(x, (float, np.floating)) and not isinstance(x, bool):
        s = f"{float(x):.17g}"
        return s if any(c in s for c in ".en") else s + ".0"
    return json.dumps(x)


def main():
    import torch

    a, b, p0 = problem()
    data = dict(
        about="Golden trajectories for tests/test_golden.py; regenerate with "
              "tests/golden/generate.py (see its docstring). Parameters after each step.",
        torch_version=torch.__version__, numpy_version=np.__version__, steps=STEPS,
        gradient="A @ p - b + 0.1 * sin(3 * p)", A=a, b=b, p0=p0,
        cases=list(cases(a, b, p0)),
    )
    OUT.write_text(dumps(data) + "\n")
    print(f"wrote {len(data['cases'])} cases to {OUT} ({OUT.stat().st_size} bytes)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
