"""Param groups in rmsopt's own optimizers (rmsopt/groups.py, issue #15).

A grouped optimizer is checked against separate single-group optimizers (bit for bit),
against one optimizer over all the arrays when the groups agree (clip_norm's joint norm),
against rmsopt.torch and torch.optim with the same groups, and for its errors, edits of
param_groups, checkpoints, threads and Ctrl-C.
"""

import concurrent.futures
import inspect
import os
import signal
import sys

import numpy as np
import pytest

import rmsopt
from rmsopt import groups, schedules
from rmsopt.optimizer import OPTIMIZERS, Optimizer

from .configs import CONFIGS, IDS
from .test_backends import gradient

DTYPES = [np.float32, np.float64]
SHAPES = [(4, 3), (5,), (2, 2)]  # two arrays in group 0, one in group 1

# (id, class, constructor keywords, each group's keywords): groups that differ in lr, in
# decay factors and in the kernel variant (momentum 0 and > 0, centered or not)
RULES = [
    ("rmsprop-centered-momentum", rmsopt.RMSprop,
     dict(lr=1e-3, centered=True, momentum=0.9, weight_decay=1e-2),
     [dict(lr=1e-2), dict(weight_decay=0.0, momentum=0.0, centered=False)]),
    ("adam", rmsopt.Adam, dict(lr=1e-3, weight_decay=1e-2),
     [dict(lr=1e-2, betas=(0.8, 0.95)), dict(weight_decay=0.0, amsgrad=True)]),
    ("sgd-momentum", rmsopt.SGD, dict(lr=1e-2, momentum=0.9),
     [dict(nesterov=True), dict(lr=1e-3, momentum=0.0, weight_decay=1e-3)]),
]
RULE_IDS = [r[0] for r in RULES]


def arrays(dtype, seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def split(flat, sizes=(2, 1)):
    out, k = [], 0
    for n in sizes:
        out.append(flat[k:k + n])
        k += n
    return out


def grads_of(xs, t):
    return [gradient(x, t, k) for k, x in enumerate(xs)]


def run(opt, xs, start, stop):
    for t in range(start + 1, stop + 1):
        opt.step(grads_of(xs, t))


def snapshot(xs, opt):
    state = opt.state if isinstance(opt.state, list) else [opt.state]
    return ([x.tobytes() for x in xs], [{k: v.tobytes() for k, v in s.items()} for s in state],
            opt.t)


# ------------------------------------------------------------- the same as separate ones

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs,overrides", RULES, ids=RULE_IDS)
def test_groups_step_as_separate_optimizers_bit_for_bit(name, cls, kwargs, overrides, dtype):
    xs = arrays(dtype)
    opt = cls([{"params": part, **o} for part, o in zip(split(xs), overrides)], **kwargs)
    ys = arrays(dtype)
    separate = [cls(part, **{**kwargs, **o}) for part, o in zip(split(ys), overrides)]
    assert isinstance(opt, cls) and isinstance(opt, groups.Grouped)
    for t in range(1, 13):
        opt.step(grads_of(xs, t))
        for o, part in zip(separate, split(grads_of(ys, t))):
            o.step(part)
    assert opt.t == 12 and all(o.t == 12 for o in separate)
    for x, y in zip(xs, ys):
        assert x.dtype == dtype and x.tobytes() == y.tobytes()
    for state, o in zip(opt.state, separate):
        assert set(state) == set(o.state)
        for k in state:
            assert state[k].dtype == dtype and state[k].tobytes() == o.state[k].tobytes()
    for group, o in zip(opt.param_groups, separate):
        assert {k: v for k, v in group.items() if k != "params"} == o.hyper


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_groups_that_agree_step_as_one_optimizer_over_all_arrays(name, cls, kwargs, dtype):
    """Every configuration: groups of one configuration are one optimizer over all the
    arrays, to the bit, clip_norm included (one joint norm over the groups)."""
    xs, ys = arrays(dtype), arrays(dtype)
    opt = cls([{"params": part} for part in split(xs)], **kwargs)
    whole = cls(ys, **kwargs)
    for t in range(1, 9):
        opt.step(grads_of(xs, t))
        whole.step(grads_of(ys, t))
    for x, y in zip(xs, ys):
        assert x.tobytes() == y.tobytes()


def test_a_group_of_one_array_given_bare():
    w, b = np.ones((2, 3)), np.zeros(3)
    opt = rmsopt.RMSprop([{"params": w}, {"params": [b], "lr": 0.1}], lr=0.01)
    opt.step([np.ones((2, 3)), np.ones(3)])
    v, c = np.ones((2, 3)), np.zeros(3)
    rmsopt.RMSprop(v, lr=0.01).step(np.ones((2, 3)))
    rmsopt.RMSprop([c], lr=0.1).step([np.ones(3)])
    assert w.tobytes() == v.tobytes() and b.tobytes() == c.tobytes()
    assert opt.param_groups[0]["params"] is w


# ------------------------------------------------------------------------ clip_norm

def test_groups_sharing_clip_norm_are_clipped_by_their_joint_norm():
    """Groups with different lr and one clip_norm: each gradient is scaled by
    min(1, c / |(g_1, ..., g_k)|), the norm over all groups (NumPy's, to rounding)."""
    c = 0.5
    xs, ys = arrays(np.float64), arrays(np.float64)
    opt = rmsopt.RMSprop([{"params": xs[:2], "lr": 1e-2}, {"params": xs[2:]}], lr=1e-3,
                         clip_norm=c, momentum=0.5)
    plain = [rmsopt.RMSprop(ys[:2], lr=1e-2, momentum=0.5),
             rmsopt.RMSprop(ys[2:], lr=1e-3, momentum=0.5)]
    for t in range(1, 11):
        opt.step(grads_of(xs, t))
        g = grads_of(ys, t)
        scale = min(1.0, c / np.sqrt(sum(float(np.sum(a * a)) for a in g)))
        assert scale < 1  # the clip is active
        plain[0].step([a * scale for a in g[:2]])
        plain[1].step([a * scale for a in g[2:]])
    for x, y in zip(xs, ys):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=0)


def test_a_group_with_its_own_clip_norm_is_clipped_by_its_own_norm():
    xs, ys = arrays(np.float64, shapes=[(4,), (3,), (5,)]), arrays(np.float64,
                                                                   shapes=[(4,), (3,), (5,)])
    opt = rmsopt.Adam([{"params": [xs[0]]}, {"params": [xs[1]], "clip_norm": 0.3},
                       {"params": [xs[2]], "clip_norm": None}], lr=1e-2, clip_norm=1.0)
    alone = [rmsopt.Adam([ys[0]], lr=1e-2, clip_norm=1.0),
             rmsopt.Adam([ys[1]], lr=1e-2, clip_norm=0.3), rmsopt.Adam([ys[2]], lr=1e-2)]
    for t in range(1, 8):
        opt.step(grads_of(xs, t))
        for o, g in zip(alone, grads_of(ys, t)):
            o.step([g])
    for x, y in zip(xs, ys):
        assert x.tobytes() == y.tobytes()


def test_clip_norm_edited_in_param_groups_changes_the_joint_sets():
    xs, ys = arrays(np.float64), arrays(np.float64)
    opt = rmsopt.SGD([{"params": xs[:2]}, {"params": xs[2:], "clip_norm": 2.0}], lr=0.1,
                     clip_norm=1.0)
    opt.param_groups[1]["clip_norm"] = 1.0  # now one joint norm over both groups
    whole = rmsopt.SGD(ys, lr=0.1, clip_norm=1.0)
    for t in range(1, 5):
        opt.step(grads_of(xs, t))
        whole.step(grads_of(ys, t))
    for x, y in zip(xs, ys):
        assert x.tobytes() == y.tobytes()


# ------------------------------------------------------- against torch, same groups

TORCH_CASES = [
    ("rmsprop", "RMSprop", dict(lr=1e-3, alpha=0.9, centered=True, momentum=0.9,
                                weight_decay=1e-2),
     [dict(lr=1e-2, alpha=0.99), dict(weight_decay=0.0, momentum=0.5)]),
    ("adam", "Adam", dict(lr=1e-3, weight_decay=1e-2),
     [dict(lr=1e-2, betas=(0.8, 0.95)), dict(weight_decay=0.0, amsgrad=True)]),
    ("sgd", "SGD", dict(lr=1e-2, momentum=0.9),
     [dict(nesterov=True), dict(lr=1e-3, weight_decay=1e-3)]),
]


@pytest.mark.parametrize("name,torch_name,kwargs,overrides", TORCH_CASES,
                         ids=[c[0] for c in TORCH_CASES])
def test_groups_as_torch_optim_and_rmsopt_torch(name, torch_name, kwargs, overrides):
    torch = pytest.importorskip("torch")
    import rmsopt.torch as rt

    extra = {"convention": "torch"} if name == "rmsprop" else {}
    xs = arrays(np.float64)
    opt = getattr(rmsopt, torch_name)(
        [{"params": part, **o} for part, o in zip(split(xs), overrides)], **kwargs, **extra)
    tensors = {kind: [torch.tensor(x, requires_grad=True) for x in arrays(np.float64)]
               for kind in ("torch", "adapter")}
    ref = getattr(torch.optim, torch_name)(
        [{"params": part, **o} for part, o in zip(split(tensors["torch"]), overrides)], **kwargs)
    adapter = getattr(rt, torch_name)(
        [{"params": part, **o} for part, o in zip(split(tensors["adapter"]), overrides)],
        **kwargs)
    for t in range(1, 16):
        opt.step(grads_of(xs, t))
        for kind, o in (("torch", ref), ("adapter", adapter)):
            with torch.no_grad():
                for p, g in zip(tensors[kind], grads_of([p.numpy() for p in tensors[kind]], t)):
                    p.grad = torch.from_numpy(g)
            o.step()
    for x, p, q in zip(xs, tensors["torch"], tensors["adapter"]):
        np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-12, atol=1e-15)
        assert x.tobytes() == q.detach().numpy().tobytes()  # the same kernels, per group


def test_a_momentum_edited_in_param_groups_as_torch_reads_it():
    torch = pytest.importorskip("torch")
    xs = arrays(np.float64)
    ts = [torch.tensor(x, requires_grad=True) for x in arrays(np.float64)]
    opt = rmsopt.SGD([{"params": xs[:2]}, {"params": xs[2:], "lr": 1e-3}], lr=1e-2,
                     momentum=0.9)
    ref = torch.optim.SGD([{"params": ts[:2]}, {"params": ts[2:], "lr": 1e-3}], lr=1e-2,
                          momentum=0.9)
    for t in range(1, 13):
        if t == 6:
            opt.param_groups[1]["momentum"] = ref.param_groups[1]["momentum"] = 0.5
            opt.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = 3e-2
        opt.step(grads_of(xs, t))
        for p, g in zip(ts, grads_of([p.detach().numpy() for p in ts], t)):
            p.grad = torch.from_numpy(g)
        ref.step()
    for x, p in zip(xs, ts):
        np.testing.assert_allclose(x, p.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert opt.param_groups[1]["momentum"] == 0.5 and opt.t == 12


# ---------------------------------------------------------------- param_groups, lr

def test_param_groups_lr_takes_effect_at_the_next_step_and_is_checked_there():
    xs, ys = arrays(np.float64), arrays(np.float64)
    opt = rmsopt.Adam([{"params": xs[:2]}, {"params": xs[2:]}], lr=1e-3)
    separate = [rmsopt.Adam(ys[:2], lr=1e-3), rmsopt.Adam(ys[2:], lr=1e-3)]
    for t in range(1, 9):
        if t == 4:
            opt.param_groups[1]["lr"] = 5e-2
        opt.step(grads_of(xs, t))
        g = grads_of(ys, t)
        separate[0].step(g[:2])
        separate[1].step(g[2:], lr=5e-2 if t >= 4 else None)
    for x, y in zip(xs, ys):
        assert x.tobytes() == y.tobytes()
    before = snapshot(xs, opt)
    opt.param_groups[1]["lr"] = -1.0
    with pytest.raises(ValueError, match=r"param_groups\[1\]: Invalid lr value: -1.0"):
        opt.step(grads_of(xs, 9))
    opt.param_groups[1]["lr"] = "0.1"
    with pytest.raises(TypeError, match=r"param_groups\[1\]: lr must be a real number"):
        opt.step(grads_of(xs, 9))
    assert snapshot(xs, opt) == before


def test_a_schedule_per_group_is_called_with_the_shared_t():
    sched = schedules.warmup(schedules.cosine(1e-2, 20), 4)
    xs, ys = arrays(np.float64), arrays(np.float64)
    opt = rmsopt.RMSprop([{"params": xs[:2], "lr": sched}, {"params": xs[2:]}],
                         lr=schedules.exponential(1e-2, 0.9))
    separate = [rmsopt.RMSprop(ys[:2], lr=sched),
                rmsopt.RMSprop(ys[2:], lr=schedules.exponential(1e-2, 0.9))]
    for t in range(1, 15):
        opt.step(grads_of(xs, t))
        g = grads_of(ys, t)
        separate[0].step(g[:2])
        separate[1].step(g[2:])
    for x, y in zip(xs, ys):
        assert x.tobytes() == y.tobytes()
    assert opt.param_groups[0]["lr"] is sched


def test_edits_that_param_groups_refuse():
    xs = arrays(np.float64)
    g = grads_of(xs, 1)
    cases = [
        (lambda p: p[1].update(betas=(0.8, 0.9)), ValueError, r"param_groups\[1\] has new keys betas"),
        (lambda p: p[0].pop("eps"), ValueError, r"param_groups\[0\] has lost the keys eps"),
        (lambda p: p[0].update(params=[np.zeros(3)]), ValueError,
         r"param_groups\[0\]\['params'\] was changed"),
        (lambda p: p[0]["params"].append(np.zeros(3)), ValueError,
         r"param_groups\[0\]\['params'\] was changed"),
        (lambda p: p[1].update(beta1=1.5), ValueError, r"param_groups\[1\]: Invalid beta1 value"),
        (lambda p: p[1].update(amsgrad="yes"), TypeError, r"param_groups\[1\]: amsgrad must be"),
        (lambda p: p.append({"params": [np.zeros(2)]}), ValueError, "param_groups must stay"),
    ]
    for edit, error, match in cases:
        opt = rmsopt.Adam([{"params": xs[:2]}, {"params": xs[2:]}], lr=1e-3)
        opt.step(g)
        before = snapshot(xs, opt)
        edit(opt.param_groups)
        with pytest.raises(error, match=match):
            opt.step(g)
        with pytest.raises(error, match=match):
            opt.state_dict()  # param_groups as they are, checked as step checks them
        assert snapshot(xs, opt) == before


# ----------------------------------------------------------------------- bad input

def _groups(*overrides, dtype=np.float64):
    xs = arrays(dtype)
    return [{"params": part, **o} for part, o in zip(split(xs), overrides)]


def _same_array_twice():
    w = np.ones(3)
    return [{"params": [w]}, {"params": [np.zeros(2), w]}]


def _overlapping_views():
    buf = np.ones(10)
    return [{"params": [buf[:6]]}, {"params": [buf[4:]]}]


BAD = [
    (lambda: _groups({}, {"lrr": 0.1}), {}, TypeError,
     r"param_groups\[1\] has the unknown hyperparameter 'lrr'; RMSprop takes .*momentum"),
    (lambda: _groups({}, {"momentum": 1.5}), {}, ValueError,
     r"param_groups\[1\]: Invalid momentum value: 1.5"),
    (lambda: _groups({"lr": "0.1"}, {}), {}, TypeError,
     r"param_groups\[0\]: lr must be a real number, got str"),
    (lambda: _groups({}, {"nesterov": True}), {}, ValueError,
     r"param_groups\[1\]: nesterov=True requires a momentum > 0"),
    (lambda: _groups({"alpha": 0.9, "rho": 0.8}, {}), {}, TypeError,
     r"param_groups\[0\]: rho was given more than once"),
    (lambda: _groups({"lr": 1e39}, {}, dtype=np.float32), {}, ValueError,
     r"param_groups\[0\]: lr=1e\+39 overflows to inf in float32"),
    (lambda: [{"params": [np.ones(2)]}, {"lr": 0.1}], {}, ValueError,
     r"param_groups\[1\] has no 'params'"),
    (lambda: [{"params": [np.ones(2)]}, {"params": []}], {}, ValueError,
     r"param_groups\[1\] is empty"),
    (_same_array_twice, {}, ValueError,
     r"param_groups\[1\]\['params'\]\[1\] and param_groups\[0\]\['params'\]\[0\] share memory"),
    (_overlapping_views, {}, ValueError,
     r"param_groups\[1\]\['params'\]\[0\] and param_groups\[0\]\['params'\]\[0\] share memory"),
    (lambda: [{"params": [np.ones(2)]}, np.ones(2)], {}, TypeError,
     r"params\[1\] is a ndarray, but params holds param groups"),
    (lambda: {"params": [np.ones(2)]}, {}, TypeError, "params is a dict"),
    (lambda: [{"params": [np.ones(2)], "backend": "numpy"}], {}, ValueError,
     r"param_groups\[0\] sets 'backend'"),
    (lambda: [{"params": [np.ones(2)]}, {"params": [np.ones(2, np.float32)]}], {}, ValueError,
     r"param_groups\[1\]\['params'\] has dtype float32, but param_groups\[0\]\['params'\] "
     "has float64"),
    (lambda: [{"params": [np.ones(2)]}, {"params": [np.arange(3)]}], {}, ValueError,
     r"param_groups\[1\]: params\[0\] has dtype int64"),
    (lambda: [{"params": np.ones(2)}, {"params": {"w": np.ones(2)}}], {}, TypeError,
     r"param_groups\[1\]\['params'\] is a dict"),
    (lambda: [{"params": [np.ones(2)], 3: 0.1}], {}, TypeError,
     r"param_groups\[0\] has the unknown hyperparameter 3"),
    # the constructor's keywords: its own messages, before any group is looked at
    (lambda: _groups({}, {}), dict(rho=2.0), ValueError, r"^Invalid rho value: 2.0"),
    (lambda: _groups({}, {}), dict(clip_norm="1"), TypeError, r"^clip_norm must be a real"),
]


@pytest.mark.parametrize("make,kwargs,error,match", BAD)
def test_bad_groups_are_refused_naming_the_group_and_key(make, kwargs, error, match):
    params = make()
    listed = params if isinstance(params, list) else [params]
    arrays_given = [a for g in listed if isinstance(g, dict)
                    for a in (g.get("params") if isinstance(g.get("params"), list)
                              else [g.get("params")]) if isinstance(a, np.ndarray)]
    before = [a.tobytes() for a in arrays_given]
    with pytest.raises(error, match=match):
        rmsopt.RMSprop(params, **kwargs)
    assert [a.tobytes() for a in arrays_given] == before


def test_a_bad_step_changes_no_group():
    xs = arrays(np.float64)
    opt = rmsopt.RMSprop(_groups_of(xs), lr=1e-2, momentum=0.9)
    opt.step(grads_of(xs, 1))
    before = snapshot(xs, opt)
    good = grads_of(xs, 2)
    cases = [
        (good[:2], ValueError, r"grad must be a flat list of 3 arrays, one per parameter array "
                               r"in group order \(2, 1 per group\); got list of length 2"),
        ([good[:2], good[2:]], ValueError, "grad must be a flat list of 3 arrays"),
        (good[0], ValueError, "got ndarray"),
        (good[:2] + [np.ones(4)], ValueError,
         r"grad\[2\] \(of param_groups\[1\]\['params'\]\[0\]\) has shape \(4,\) but its "
         r"parameter has shape \(2, 2\)"),
        ([good[0], good[1].astype(complex), good[2]], ValueError,
         r"grad\[1\] \(of param_groups\[0\]\['params'\]\[1\]\) has dtype complex128"),
        ([good[0], good[1], xs[2]], ValueError,
         r"grad\[2\] \(of param_groups\[1\]\['params'\]\[0\]\) shares memory with its "
         "parameter array"),
    ]
    for grad, error, match in cases:
        with pytest.raises(error, match=match):
            opt.step(grad)
        assert snapshot(xs, opt) == before
    with pytest.raises(TypeError, match=r"takes no lr for a step; set param_groups\[i\]"):
        opt.step(good, lr=0.1)
    assert snapshot(xs, opt) == before


def _groups_of(xs):
    return [{"params": part} for part in split(xs)]


def test_a_gradient_sharing_memory_with_another_group_is_refused():
    xs = arrays(np.float64)
    opt = rmsopt.RMSprop(_groups_of(xs), lr=1e-2, momentum=0.9)
    opt.step(grads_of(xs, 1))
    before = snapshot(xs, opt)
    g = grads_of(xs, 2)
    with pytest.raises(ValueError, match=r"grad\[2\] shares memory with "
                                         r"param_groups\[0\]\['params'\]\[0\]"):
        opt.step([g[0], g[1], xs[0].reshape(-1)[4:8].reshape(2, 2)])  # (a non-contiguous view
        # would be copied before any update: no hazard, accepted)
    buf = opt.state[0]["buf"]  # another group's live state
    with pytest.raises(ValueError, match=r"grad\[2\] shares memory with the optimizer state "
                                         r"'buf' of param_groups\[0\]"):
        opt.step([g[0], g[1], buf[:4].reshape(2, 2)])
    assert snapshot(xs, opt) == before


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_nonfinite_looks_at_every_group(policy):
    xs = arrays(np.float64)
    opt = rmsopt.Adam(_groups_of(xs), lr=1e-2)
    opt.nonfinite = policy
    opt.step(grads_of(xs, 1))
    before = snapshot(xs, opt)
    g = grads_of(xs, 2)
    g[2][0, 1] = np.nan  # only the last group's gradient
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="nonfinite='raise'"):
            opt.step(g)
    else:
        opt.step(g)
        assert opt.skipped == 1
    assert snapshot(xs, opt) == before and opt.nonfinite == policy
    with pytest.raises(ValueError, match="Invalid nonfinite value"):
        opt.nonfinite = "ignore"


def test_minimize_and_dask_take_no_groups():
    with pytest.raises(ValueError, match="x0"):
        rmsopt.minimize(lambda x: float(x @ x), [{"params": np.ones(2)}], jac=lambda x: 2 * x)
    dask = pytest.importorskip("rmsopt.dask")
    with pytest.raises(TypeError, match="param groups .* in-memory optimizers"):
        dask.RMSprop([{"params": np.ones(2)}])


# -------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs,overrides", RULES, ids=RULE_IDS)
def test_checkpoint_mid_run_resumes_bit_identically(name, cls, kwargs, overrides, dtype,
                                                    tmp_path):
    overrides = [dict(overrides[0], lr=schedules.exponential(2e-2, 0.95)), overrides[1]]

    def build(xs):
        return cls([{"params": part, **o} for part, o in zip(split(xs), overrides)], **kwargs)

    straight = arrays(dtype)
    opt = build(straight)
    run(opt, straight, 0, 12)
    opt.param_groups[1]["lr"] = 3e-3  # an edit made before saving is saved
    run(opt, straight, 12, 30)

    first = arrays(dtype)
    o1 = build(first)
    run(o1, first, 0, 12)
    o1.param_groups[1]["lr"] = 3e-3
    o1.save(tmp_path / "groups.npz")
    resumed = [np.zeros_like(a) for a in first]
    o2 = build(resumed)
    o2.load(tmp_path / "groups.npz")
    assert o2.t == 12 and o2.param_groups[1]["lr"] == 3e-3
    assert repr(o2.param_groups[0]["lr"]) == repr(overrides[0]["lr"])
    run(o2, resumed, 12, 30)
    assert snapshot(resumed, o2) == snapshot(straight, opt)


def test_checkpoint_format_and_what_it_refuses(tmp_path):
    import json

    xs = arrays(np.float64)
    opt = rmsopt.RMSprop(_groups_of(xs), lr=1e-2, momentum=0.9)
    run(opt, xs, 0, 3)
    opt.save(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz", allow_pickle=False) as z:
        header = json.loads(str(z["header"][()]))
        members = sorted(z.files)
    assert header["version"] == 2 and header["t"] == 3 and len(header["groups"]) == 2
    assert members == ["group0_param_0", "group0_param_1", "group0_state_buf", "group0_state_nu",
                       "group1_param_0", "group1_state_buf", "group1_state_nu", "header"]
    plain = rmsopt.RMSprop(np.ones(3))
    assert plain.state_dict()["version"] == 1 and "groups" not in plain.state_dict()

    d = opt.state_dict()
    target_xs = arrays(np.float64, seed=1)
    target = rmsopt.RMSprop(_groups_of(target_xs), lr=1e-2, momentum=0.9)
    target.step(grads_of(target_xs, 1))
    before = snapshot(target_xs, target)

    def bad_nu(d):  # the second group's state is damaged: the first must not stay loaded
        d["groups"][1]["state"]["nu"] = -d["groups"][1]["state"]["nu"]

    cases = [
        (lambda d: d.update(version=1), "unsupported checkpoint format .* version 1"),
        (lambda d: d.update(optimizer="Adam"), "for optimizer 'Adam'"),
        (lambda d: d.update(groups=d["groups"][:1]), "has 1 param groups, this optimizer has 2"),
        (lambda d: d.update(t=4), r"param_groups\[0\] has step count t=3, but the checkpoint's "
                                  "is 4"),
        (lambda d: d.pop("groups"), "state dict lacks groups"),
        (bad_nu, r"checkpoint param_groups\[1\]: checkpoint state 'nu' has negative values"),
        (lambda d: d["groups"][1]["hyper"].update(rho=2.0),
         r"checkpoint param_groups\[1\]: .*Invalid rho"),
        (lambda d: d["groups"][0].update(shapes=[[4, 3]]), r"param_groups\[0\]: .*shapes"),
    ]
    import copy

    for mutate, match in cases:
        bad = copy.deepcopy(d)
        mutate(bad)
        with pytest.raises(ValueError, match=match):
            target.load_state_dict(bad)
        assert snapshot(target_xs, target) == before, match
    with pytest.raises(ValueError, match="holds param groups"):
        rmsopt.RMSprop(np.ones(3)).load(tmp_path / "g.npz")
    plain.save(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="has no param groups"):
        target.load(tmp_path / "plain.npz")
    assert snapshot(target_xs, target) == before
    target.load_state_dict(d)
    assert snapshot(target_xs, target) == snapshot(xs, opt)


def test_a_damaged_grouped_file_is_detected(tmp_path):
    xs = arrays(np.float64)
    opt = rmsopt.Adam(_groups_of(xs), lr=1e-2)
    opt.step(grads_of(xs, 1))
    path = tmp_path / "g.npz"
    opt.save(path)
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    members["group1_state_v"] = members["group1_state_v"] + 1.0
    np.savez(tmp_path / "edit.npz", **members)
    with pytest.raises(ValueError, match="group1_state_v fails its checksum"):
        opt.load(tmp_path / "edit.npz")
    members.pop("group1_state_v")
    np.savez(tmp_path / "missing.npz", **members)
    with pytest.raises(ValueError, match="members do not match its header"):
        opt.load(tmp_path / "missing.npz")


# ------------------------------------------------------------ threads and Ctrl-C

def test_threads_stepping_one_grouped_optimizer_take_turns():
    xs, ys = arrays(np.float64), arrays(np.float64)
    opt = rmsopt.RMSprop(_groups_of(xs), lr=1e-3, momentum=0.9)
    ref = rmsopt.RMSprop(_groups_of(ys), lr=1e-3, momentum=0.9)
    g = [np.full(s, 0.5) for s in SHAPES]  # the same gradient: every order gives one result

    def worker(_):
        for _ in range(25):
            opt.step(g)
            if _ % 10 == 0:
                d = opt.state_dict()
                assert all(part["t"] == d["t"] for part in d["groups"])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(worker, range(4)))
    for _ in range(100):
        ref.step(g)
    assert opt.t == 100
    assert snapshot(xs, opt) == snapshot(ys, ref)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself is POSIX")
def test_ctrl_c_between_two_groups_is_held_until_every_group_has_stepped(monkeypatch):
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("Python's own SIGINT handler is not installed")
    xs, ys = arrays(np.float64), arrays(np.float64)
    opt = rmsopt.SGD(_groups_of(xs), lr=1e-2, momentum=0.9)
    ref = rmsopt.SGD(_groups_of(ys), lr=1e-2, momentum=0.9)
    apply = Optimizer.apply
    calls = []

    def interrupted_after_first(self, *args, **kwargs):
        apply(self, *args, **kwargs)
        calls.append(self)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives between the groups' launches

    monkeypatch.setattr(Optimizer, "apply", interrupted_after_first)
    with pytest.raises(KeyboardInterrupt):
        opt.step(grads_of(xs, 1))
    monkeypatch.undo()
    assert len(calls) == 2 and opt.t == 1
    ref.step(grads_of(ys, 1))
    assert snapshot(xs, opt) == snapshot(ys, ref)


# ------------------------------------------------------------------ step_rows

def test_step_rows_steps_one_group_and_advances_every_groups_t():
    E, W = np.ones((5, 2)), np.ones(3)
    opt = rmsopt.Adam([{"params": [W]}, {"params": [E], "lr": 0.1}], lr=1e-2)
    opt.step_rows([3, 1], np.ones((2, 2)), index=1)
    F = np.ones((5, 2))
    alone = rmsopt.Adam([F], lr=0.1)
    alone.step_rows([3, 1], np.ones((2, 2)))
    assert E.tobytes() == F.tobytes() and (W == 1).all() and opt.t == 1
    opt.step([np.ones(3), np.ones((5, 2))])
    assert opt.t == 2 and opt.state_dict()["groups"][0]["t"] == 2
    with pytest.raises(ValueError, match="index 2 is out of range for 2 parameter arrays"):
        opt.step_rows([0], np.ones((1, 2)), index=2)
    with pytest.raises(ValueError, match=r"param_groups\[1\]: rows contains 7"):
        opt.step_rows([7], np.ones((1, 2)), index=1)
    with pytest.raises(ValueError, match=r"shares memory with param_groups\[1\]\['params'\]"):
        opt.step_rows([0], E[:1], index=0 + 1)
    assert opt.t == 2


# ------------------------------------------------------------- the class itself

def test_every_optimizer_attribute_works_or_says_why_not():
    """A grouped optimizer is an instance of its class: every public attribute of
    Optimizer either works or is an AttributeError that names param groups (none reaches
    an Optimizer method that would need one group's private state)."""
    xs = arrays(np.float64)
    opt = rmsopt.RMSprop(_groups_of(xs), lr=1e-2)
    for name in dir(Optimizer):
        if name.startswith("_"):
            continue
        try:
            getattr(opt, name)
        except AttributeError as e:
            assert "param groups" in str(e), name
    for cls in OPTIMIZERS.values():  # nothing of Grouped's is shadowed by a class's own
        clash = set(vars(cls)) & set(vars(groups.Grouped)) - {"__init__", "__doc__",
                                                                "__module__", "__qualname__"}
        assert not clash, (cls, clash)
    assert "'lr': 0.01" not in repr(opt) and "RMSprop([{'params': 2 array(s)}" in repr(opt)


def test_every_keyword_is_a_hyperparameter_or_a_known_alias():
    """groups.ALIASES and PAIRS cover every keyword of every optimizer that is not a key of
    its hyper dict (the names param_groups holds)."""
    for cls in OPTIMIZERS.values():
        keywords = set(inspect.signature(cls.__init__).parameters) - {"self", "params",
                                                                      "backend"}
        names = set(cls(np.zeros(1)).hyper)
        extra = keywords - names
        assert extra <= set(groups.ALIASES) | set(groups.PAIRS), (cls, extra)
        for alias in extra & set(groups.ALIASES):
            assert groups.ALIASES[alias] in names
        for pair in extra & set(groups.PAIRS):
            assert set(groups.PAIRS[pair]) <= names


def test_aliases_in_groups_override_the_constructors_value():
    opt = rmsopt.Adam([{"params": [np.ones(2)], "beta1": 0.5},
                       {"params": [np.ones(2)], "betas": (0.6, 0.7)},
                       {"params": [np.ones(2)]}], betas=(0.8, 0.9))
    assert [(g["beta1"], g["beta2"]) for g in opt.param_groups] == [(0.5, 0.9), (0.6, 0.7),
                                                                     (0.8, 0.9)]
    opt = rmsopt.RMSprop([{"params": [np.ones(2)], "alpha": 0.5}, {"params": [np.ones(2)]}],
                         rho=0.8)
    assert [g["rho"] for g in opt.param_groups] == [0.5, 0.8]
    opt = rmsopt.RMSprop([{"params": [np.ones(2)], "convention": "keras"},
                          {"params": [np.ones(2)]}], lr=0.1)
    assert [(g["lr"], g["eps"]) for g in opt.param_groups] == [(0.1, 1e-7), (0.1, 1e-8)]
    assert opt.defaults["lr"] == 0.1 and opt.defaults["convention"] is None


def test_a_rebuilt_group_keeps_its_carried_value():
    """LaProp carries a host value between steps (its A_t, advanced with each group's own
    lr); a param_groups edit that rebuilds the group carries it over with the state."""
    xs, ys = arrays(np.float64), arrays(np.float64)
    opt = rmsopt.LaProp([{"params": xs[:2], "lr": 1e-2}, {"params": xs[2:]}], lr=1e-3)
    separate = [rmsopt.LaProp(ys[:2], lr=1e-2), rmsopt.LaProp(ys[2:], lr=1e-3)]
    for t in range(1, 11):
        if t == 5:
            opt.param_groups[1]["beta2"] = 0.99
            d = separate[1].state_dict()
            d["hyper"]["beta2"] = 0.99
            separate[1] = rmsopt.LaProp(ys[2:], lr=1e-3, beta2=0.99)
            separate[1].load_state_dict(d)
        opt.step(grads_of(xs, t))
        g = grads_of(ys, t)
        separate[0].step(g[:2])
        separate[1].step(g[2:])
    for x, y in zip(xs, ys):
        assert x.tobytes() == y.tobytes()
    saved = opt.state_dict()["groups"]
    assert [part["carry"] for part in saved] == [{"lr_average": o.carry} for o in separate]
    assert saved[0]["carry"] != saved[1]["carry"]  # each group's own lr
