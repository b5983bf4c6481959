"""Golden trajectories: rmsopt against PyTorch runs and the Keras 3 / optax / TF1 equations.

``golden/trajectories.json`` holds, per case, the parameters after each of 25 steps of a small
nonlinear problem, made by ``golden/generate.py`` (which documents how to rerun it) from
``torch.optim`` itself and from each library's update equations in its own order of operations;
``golden/optax_runs.json`` the same from optax itself (``golden/generate_optax.py``), for the
rules optax defines (Lion, AdaBelief), and ``golden/timm_runs.json`` from timm itself
(``golden/generate_timm.py``) for the rule timm defines (LaProp).
Every case is replayed here with the convention preset plus only the case's own options, and every
step must agree to a relative 1e-9 in float64; a NaN or inf in rmsopt's trajectory fails.

Clipping: rmsopt's ``clip_value`` is ``torch.nn.utils.clip_grad_value_`` exactly, and its
``clip_norm`` is optax's ``clip_by_global_norm``, ``g * min(1, c / ||g||)`` (the ``optax-*-clip-norm*``
cases, to 1e-9). ``torch.nn.utils.clip_grad_norm_`` divides by ``||g|| + 1e-6`` instead; rmsopt does
not follow it (the epsilon makes the clipped norm depend on the scale of the problem, and a norm of
0 needs no guard: the scale is then 1). The torch clip_norm cases are compared to
:data:`TORCH_CLIP_NORM_RTOL`: where the clip is active torch's scale is smaller by a relative
``1e-6 / (||g|| + 1e-6)``, up to 3.3e-5 on this problem (norms down to 0.03), and the trajectories
differ by at most 2.5e-6 (RMSprop 2.4e-6, SGD with momentum 2.5e-6, Adam 3.7e-8, being nearly
invariant to a common scale of its gradients); run with torch's clip minus the 1e-6, they agree to
1e-15, and without any clipping they are off by 1e-2 to 0.5.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import rmsopt

GOLDEN = Path(__file__).parent / "golden"
DATA = json.loads((GOLDEN / "trajectories.json").read_text())
OPTAX = json.loads((GOLDEN / "optax_runs.json").read_text())  # optax run for real
TIMM = json.loads((GOLDEN / "timm_runs.json").read_text())  # timm run for real
CASES = DATA["cases"] + OPTAX["cases"] + TIMM["cases"]
RTOL = 1e-9
TORCH_CLIP_NORM_RTOL = 1e-5  # torch's clip_grad_norm_ adds 1e-6 to the norm (see above)


def tolerance(case):
    if case["source"].startswith("torch") and "clip_norm" in case["kwargs"]:
        return TORCH_CLIP_NORM_RTOL
    return RTOL


def gradient(p):
    a, b = np.array(DATA["A"]), np.array(DATA["b"])
    return a @ p - b + 0.1 * np.sin(3.0 * p)


def replay(case, backend):
    p = np.array(DATA["p0"], dtype=np.float64)
    opt = getattr(rmsopt, case["optimizer"])(p, backend=backend, **case["kwargs"])
    lrs = case["lrs"] or [None] * DATA["steps"]
    out = []
    for lr in lrs:
        opt.step(gradient(p), lr=lr)
        out.append(p.copy())
    return np.array(out)


def test_data_is_complete():
    assert len(CASES) == len({c["id"] for c in CASES}) >= 44
    for key in ("A", "b", "p0", "steps"):  # one problem for every file
        assert OPTAX[key] == DATA[key], key
        assert TIMM[key] == DATA[key], key
    # rules defined by optax and timm: from the library itself, with a schedule and weight decay
    for rule, runs in (("Lion", OPTAX), ("AdaBelief", OPTAX), ("LaProp", TIMM)):
        assert any(c["optimizer"] == rule and c["lrs"] for c in runs["cases"]), rule
        assert any(c["optimizer"] == rule and c["kwargs"].get("weight_decay")
                   for c in runs["cases"]), rule
    for convention in ("torch", "keras", "optax", "tf1"):
        assert any(c["kwargs"].get("convention") == convention and c["lrs"] for c in CASES)
    for option in ("clip_value", "clip_norm"):  # clipped runs from torch, clip_norm from optax too
        assert any(option in c["kwargs"] and c["source"].startswith("torch") for c in CASES)
    assert any("clip_norm" in c["kwargs"] and c["source"].startswith("optax") for c in CASES)
    for c in CASES:
        assert np.isfinite(c["trajectory"]).all(), c["id"]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_golden_trajectory(case, backend):
    want = np.array(case["trajectory"])
    got = replay(case, backend)
    assert got.shape == want.shape
    nonfinite = np.argwhere(~np.isfinite(got))
    if nonfinite.size:
        step, i = nonfinite[0]
        pytest.fail(f"{case['id']} ({case['source']}): {float(got[step, i])!r} at step "
                    f"{step + 1}, parameter {i} (want {float(want[step, i])!r})")
    rtol = tolerance(case)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(got == want, 0.0, np.abs(got - want) / np.abs(want))
    bad = np.argwhere(~(rel <= rtol))  # a NaN relative difference fails too
    if bad.size:
        step, i = bad[0]
        pytest.fail(f"{case['id']} ({case['source']}): first differs at step {step + 1}, "
                    f"parameter {i}: {float(got[step, i])!r} vs {float(want[step, i])!r} "
                    f"(relative {rel[step, i]:.2e}; worst {rel.max():.2e})")


# Each library's defaults, from its documentation (rmsopt's own: README). The golden runs pass
# most of them explicitly, so they are pinned here one by one.
DEFAULTS = [
    ("RMSprop", {}, dict(lr=1e-3, rho=0.9, eps=1e-8, eps_in_sqrt=False, initial_scale=0.0,
                         lr_in_momentum=False, decoupled_weight_decay=False, momentum=0.0,
                         centered=False, weight_decay=0.0)),
    ("RMSprop", dict(convention="torch"),  # torch.optim.RMSprop
     dict(lr=1e-2, rho=0.99, eps=1e-8, eps_in_sqrt=False, initial_scale=0.0,
          lr_in_momentum=False, decoupled_weight_decay=False)),
    ("RMSprop", dict(convention="keras"),  # keras.optimizers.RMSprop (Keras 3)
     dict(lr=1e-3, rho=0.9, eps=1e-7, eps_in_sqrt=True, initial_scale=0.0,
          lr_in_momentum=True, decoupled_weight_decay=True)),
    ("RMSprop", dict(convention="optax"),  # optax.rmsprop (its lr has no default)
     dict(rho=0.9, eps=1e-8, eps_in_sqrt=True, initial_scale=0.0, lr_in_momentum=True,
          decoupled_weight_decay=False)),
    ("RMSprop", dict(convention="tf1"),  # tf.compat.v1.train.RMSPropOptimizer
     dict(rho=0.9, eps=1e-10, eps_in_sqrt=True, initial_scale=1.0, lr_in_momentum=True,
          decoupled_weight_decay=False)),
    ("SGD", {}, dict(lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0)),
    ("AdaGrad", {}, dict(lr=1e-2, lr_decay=0.0, eps=1e-10, initial_accumulator_value=0.0,
                         eps_in_sqrt=False)),  # torch.optim.Adagrad
    ("AdaDelta", {}, dict(lr=1.0, rho=0.9, eps=1e-6)),  # torch.optim.Adadelta
    ("Adam", {}, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, amsgrad=False,
                      weight_decay=0.0, decoupled_weight_decay=False)),  # torch.optim.Adam
    ("AdamW", {}, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                       decoupled_weight_decay=True)),  # torch.optim.AdamW
    ("LaProp", {}, dict(lr=4e-4, beta1=0.9, beta2=0.999, eps=1e-15, weight_decay=0.0,
                        decoupled_weight_decay=True)),  # timm.optim.LaProp
]


@pytest.mark.parametrize("name,kwargs,want", DEFAULTS,
                         ids=[f"{n}-{k.get('convention', 'rmsopt')}" for n, k, _ in DEFAULTS])
def test_defaults_are_the_libraries(name, kwargs, want):
    h = getattr(rmsopt, name)(np.zeros(2), **kwargs).hyper
    assert {k: h[k] for k in want} == want
    assert all(type(h[k]) is type(v) for k, v in want.items())
