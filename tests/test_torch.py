"""rmsopt.torch against torch.optim: the same parameters at every step, torch's usage.

A small CNN (conv + linear, float64, 260 parameters) is trained from the same weights and
data by ``torch.optim.X`` and ``rmsopt.torch.X``; every test compares the two after every
step (rtol 1e-9), over torch's own optimizer test inputs (``optim_db``) and the usage torch
users rely on: param groups, schedulers, closures, frozen layers, state dicts.
"""

import copy
import inspect
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rmsopt.torch")
nn = torch.nn

NAMES = ["RMSprop", "Adam", "AdamW", "SGD", "Adagrad", "Adadelta"]
RTOL = 1e-9


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(64, 4)).double()


_gen = torch.Generator().manual_seed(1)
X = torch.randn(8, 1, 6, 6, generator=_gen, dtype=torch.float64)
Y = torch.randn(8, 4, generator=_gen, dtype=torch.float64)


def loss_of(model):
    return ((model(X) - Y) ** 2).mean()


def assert_same(a, b, step, rtol=RTOL):
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pb.detach(), pa.detach(), rtol=rtol, atol=1e-15,
                                   msg=lambda m: f"step {step}, {name}: {m}")


def train_pair(make_torch, make_ours, steps=20, before_step=None, after_step=None):
    """Train two copies of the CNN side by side, comparing after every step."""
    a, b = cnn(), cnn()
    oa, ob = make_torch(a), make_ours(b)
    for s in range(steps):
        for model, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            loss_of(model).backward()
            if before_step:
                before_step(s, model, opt)
            opt.step()
            if after_step:
                after_step(s, model, opt)
        assert_same(a, b, s)
    return (a, oa), (b, ob)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """torch's thread pool on this 260-parameter model only contends with the other test
    worker (a conv and its backward took 10-25 ms on 2 busy cores, against well under 1 ms on
    one thread); rmsopt's kernels are unaffected (Numba's own threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def torch_inputs():
    """torch's own test inputs per optimizer (``optim_inputs_func_*`` of ``optim_db``)."""
    co = pytest.importorskip("torch.testing._internal.common_optimizers")
    return {info.optim_cls.__name__: info.optim_inputs_func(device="cpu")
            for info in co.optim_db if info.optim_cls.__name__ in NAMES}


# -------------------------------------------------------------------------------- parity

REFUSED = {"dampening": 0}  # torch options rmsopt has not: a clear error unless at this value


@pytest.mark.parametrize("name", NAMES)
def test_same_parameters_as_torch_for_torchs_own_inputs(name, torch_inputs):
    inputs = torch_inputs[name]
    assert len(inputs) >= 5
    ran = 0
    for case in inputs:
        kwargs = case.kwargs
        refused = [k for k, ok in REFUSED.items() if k in kwargs and kwargs[k] != ok]
        if refused:
            p = nn.Parameter(torch.ones(3, dtype=torch.float64))
            with pytest.raises(ValueError, match=refused[0]):
                getattr(rt, name)([p], **kwargs)
            continue
        train_pair(lambda m: getattr(torch.optim, name)(m.parameters(), **kwargs),
                   lambda m: getattr(rt, name)(m.parameters(), **kwargs))
        ran += 1
    assert ran >= len(inputs) - 1


# torch's error inputs that rmsopt.torch accepts on purpose: the limits of torch's foreach
# implementation (rmsopt converts tensor hyperparameters to numbers; foreach has no effect)
ACCEPTED = ("lr as Tensor doesn't work with foreach", "betas must be either both floats",
            "as a Tensor is not supported for capturable=False and foreach=True")


@pytest.fixture(scope="module")
def torch_error_inputs():
    co = pytest.importorskip("torch.testing._internal.common_optimizers")
    return co, {info.optim_cls.__name__: info.optim_error_inputs_func(device="cpu",
                                                                     dtype=torch.float64)
                for info in co.optim_db if info.optim_cls.__name__ in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_torchs_own_error_inputs_are_refused(name, torch_error_inputs):
    co, inputs = torch_error_inputs
    checked = 0
    for case in inputs[name]:
        given = case.optimizer_error_input
        params = given.params
        if params is None:  # torch's optimizers check hyperparameters first; rmsopt needs params
            params = [nn.Parameter(torch.ones(3, dtype=torch.float64))]
        assert case.error_on == co.OptimizerErrorEnum.CONSTRUCTION_ERROR
        if any(text in given.desc for text in ACCEPTED):
            getattr(rt, name)(params, **given.kwargs)
            continue
        # a duplicate parameter, a warning in torch, is an error here (it would step twice)
        error = ValueError if issubclass(case.error_type, Warning) else case.error_type
        with warnings.catch_warnings(), pytest.raises(error):
            warnings.simplefilter("ignore")
            getattr(rt, name)(params, **given.kwargs)
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_defaults_are_torchs(name):
    ours = inspect.signature(getattr(rt, name)).parameters
    for pname, param in inspect.signature(getattr(torch.optim, name)).parameters.items():
        assert pname in ours, pname
        assert ours[pname].kind == param.kind, pname
        assert ours[pname].default == param.default, pname
    p = nn.Parameter(torch.ones(2, dtype=torch.float64))
    group = getattr(rt, name)([p]).param_groups[0]
    reference = getattr(torch.optim, name)([p]).param_groups[0]
    for key, value in reference.items():
        if key != "params":
            assert group[key] == value, key


def test_param_groups_with_their_own_hyperparameters():
    def groups(m):
        return [{"params": m[0].parameters(), "lr": 3e-2, "weight_decay": 0.1},
                {"params": m[3].parameters(), "momentum": 0.5, "centered": True}]

    (_, oa), (_, ob) = train_pair(lambda m: torch.optim.RMSprop(groups(m), lr=1e-2),
                                  lambda m: rt.RMSprop(groups(m), lr=1e-2))
    assert [g["lr"] for g in ob.param_groups] == [3e-2, 1e-2]
    assert ob.param_groups[1]["momentum"] == 0.5 and ob.param_groups[0]["momentum"] == 0
    assert set(ob.state_dict()["state"][2]) == set(oa.state_dict()["state"][2])


@pytest.mark.parametrize("name", ["RMSprop", "Adam"])
def test_an_lr_scheduler_takes_effect(name):
    schedulers = {}

    def make(cls):
        def build(m):
            opt = cls(m.parameters(), lr=1e-2)
            schedulers[opt] = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.3)
            return opt
        return build

    (_, oa), (_, ob) = train_pair(make(getattr(torch.optim, name)), make(getattr(rt, name)),
                                  after_step=lambda s, m, opt: schedulers[opt].step())
    assert ob.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.3 ** 6) \
        == oa.param_groups[0]["lr"]


def test_a_schedule_and_a_constant_rate_differ():
    a, b = cnn(), cnn()
    oa, ob = rt.Adam(a.parameters(), lr=1e-2), rt.Adam(b.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.ExponentialLR(ob, gamma=0.5)
    for _ in range(3):
        for model, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            loss_of(model).backward()
            opt.step()
        sched.step()
    assert not torch.equal(a[3].weight, b[3].weight)


@pytest.mark.parametrize("name", ["SGD", "Adadelta"])
def test_step_with_a_closure_returns_its_loss(name):
    losses = {}

    def closure_step(s, model, opt):
        def closure():
            opt.zero_grad()
            loss = loss_of(model)
            loss.backward()
            return loss
        losses.setdefault(type(opt).__module__, []).append(opt.step(closure).item())

    def make(cls):
        return lambda m: cls(m.parameters(), lr=0.1, **({"momentum": 0.9} if name == "SGD" else {}))

    a, b = cnn(), cnn()
    oa, ob = make(getattr(torch.optim, name))(a), make(getattr(rt, name))(b)
    with torch.no_grad():  # the closure must get grad mode back
        for s in range(20):
            closure_step(s, a, oa)
            closure_step(s, b, ob)
            assert_same(a, b, s)
    ours, theirs = losses["rmsopt.torch"], losses[f"torch.optim.{name.lower()}"]
    np.testing.assert_allclose(ours, theirs, rtol=RTOL)
    assert ours[-1] < ours[0]


@pytest.mark.parametrize("name", ["Adam", "Adagrad", "RMSprop"])
def test_a_frozen_layer_and_parameters_without_grad_keep_their_own_step_counts(name):
    def before(s, model, opt):
        if s < 5:  # the conv layer frozen for the first 5 steps
            for p in model[0].parameters():
                p.grad = None
        if s % 3 == 1:  # the linear bias has no gradient every third step
            model[3].bias.grad = None

    kwargs = {"lr": 1e-2, **({"lr_decay": 0.1} if name == "Adagrad" else {})}
    (a, oa), (b, ob) = train_pair(lambda m: getattr(torch.optim, name)(m.parameters(), **kwargs),
                                  lambda m: getattr(rt, name)(m.parameters(), **kwargs),
                                  before_step=before)
    ours = {k: v["step"].item() for k, v in ob.state_dict()["state"].items()}
    theirs = {k: v["step"].item() for k, v in oa.state_dict()["state"].items()}
    assert ours == theirs == {0: 15, 1: 15, 2: 20, 3: 13}
    assert len(ob._cohorts[0]) > 1  # the group split by step count


def test_requires_grad_false_is_never_updated_and_has_no_state():
    def frozen(cls):
        def build(m):
            m[0].requires_grad_(False)
            return cls(m.parameters())
        return build

    (_, oa), (m, ob) = train_pair(frozen(torch.optim.Adam), frozen(rt.Adam))
    assert torch.equal(m[0].weight, cnn()[0].weight)
    assert sorted(ob.state_dict()["state"]) == sorted(oa.state_dict()["state"]) == [2, 3]
    assert ob.state[m[0].weight] == {} and set(ob.state[m[3].weight]) == {
        "step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize("name, kwargs", [
    ("RMSprop", {"centered": True, "momentum": 0.9}), ("Adam", {"amsgrad": True}),
    ("AdamW", {}), ("SGD", {"momentum": 0.9, "nesterov": True}), ("Adagrad", {"lr_decay": 0.1}),
    ("Adadelta", {}), ("RMSprop", {"nesterov": True, "momentum": 0.5, "bias_correction": True,
                                   "eps_in_sqrt": True, "clip_norm": 0.1})])
def test_state_dict_round_trip_through_torch_save_resumes_bit_identically(name, kwargs, tmp_path):
    cls = getattr(rt, name)

    def run(model, opt, steps):
        for step in steps:
            opt.zero_grad()
            loss_of(model).backward()
            if step == 2 and "clip_norm" not in kwargs:  # step counts then differ in the file
                model[3].bias.grad = None
            opt.step()

    whole = cnn()
    opt = cls(whole.parameters(), **kwargs)
    run(whole, opt, range(20))
    half = cnn()
    first = cls(half.parameters(), **kwargs)
    run(half, first, range(10))
    torch.save({"model": half.state_dict(), "opt": first.state_dict()}, tmp_path / "c.pt")
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    resumed_model = cnn(seed=5)
    resumed_model.load_state_dict(saved["model"])
    resumed = cls(resumed_model.parameters(), **kwargs)
    resumed.load_state_dict(saved["opt"])
    assert saved["opt"]["state"][3]["step"].item() == (10 if "clip_norm" in kwargs else 9)
    run(resumed_model, resumed, range(10, 20))
    for p, q in zip(whole.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)
    assert resumed.state_dict()["state"][0]["step"].item() == 20


@pytest.mark.parametrize("name, kwargs", [("RMSprop", {"centered": True, "momentum": 0.5}),
                                          ("Adam", {"amsgrad": True}), ("Adagrad", {}),
                                          ("SGD", {"momentum": 0.9}), ("Adadelta", {})])
def test_loads_the_state_dict_of_torchs_own_optimizer(name, kwargs):
    a, b = cnn(), cnn()
    oa = getattr(torch.optim, name)(a.parameters(), **kwargs)
    for _ in range(5):
        oa.zero_grad()
        loss_of(a).backward()
        oa.step()
    b.load_state_dict(a.state_dict())
    buffer = io.BytesIO()
    torch.save(oa.state_dict(), buffer)
    buffer.seek(0)
    ob = getattr(rt, name)(b.parameters(), **kwargs)
    ob.load_state_dict(torch.load(buffer, weights_only=True))
    for s in range(10):
        for model, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            loss_of(model).backward()
            opt.step()
        assert_same(a, b, s)
    theirs, ours = oa.state_dict()["state"], ob.state_dict()["state"]
    for k in theirs:
        assert set(theirs[k]) - {"step"} <= set(ours[k]), k


def test_a_hyperparameter_changed_in_param_groups_takes_effect():
    def change(s, model, opt):
        if s == 5:
            for g in opt.param_groups:
                g["alpha"], g["weight_decay"], g["momentum"] = 0.9, 0.01, 0.5

    train_pair(lambda m: torch.optim.RMSprop(m.parameters(), momentum=0.2),
               lambda m: rt.RMSprop(m.parameters(), momentum=0.2), before_step=change)


def test_parameters_are_updated_in_place_with_no_copy():
    m = cnn()
    opt = rt.RMSprop(m.parameters())
    pointers = [p.data_ptr() for p in m.parameters()]
    before = [p.detach().clone() for p in m.parameters()]
    loss_of(m).backward()
    opt.step()
    assert [p.data_ptr() for p in m.parameters()] == pointers
    assert all(not torch.equal(p, q) for p, q in zip(m.parameters(), before))
    square_avg = opt.state[m[3].weight]["square_avg"]  # a live view of rmsopt's buffer
    seen = square_avg.clone()
    opt.step()
    assert not torch.equal(square_avg, seen)
    assert len(opt._cohorts[0]) == 1  # one rmsopt optimizer: one kernel call per step


def test_extras_reach_rmsopt_as_its_own_optimizer_computes_them():
    import rmsopt
    m = cnn()
    extras = dict(momentum=0.9, nesterov=True, bias_correction=True, eps_in_sqrt=True,
                  clip_norm=0.05, clip_value=0.01)
    opt = rt.RMSprop(m.parameters(), lr=1e-2, **extras)
    arrays = [p.detach().numpy().copy() for p in m.parameters()]
    core = rmsopt.RMSprop(arrays, lr=1e-2, convention="torch", **extras)
    for s in range(5):
        opt.zero_grad()
        loss_of(m).backward()
        grads = [p.grad.numpy().copy() for p in m.parameters()]
        opt.step()
        core.step(grads)
        for p, a in zip(m.parameters(), arrays):
            assert np.array_equal(p.detach().numpy(), a), s


def test_autograd_sees_the_in_place_update():
    m = cnn()
    opt = rt.SGD(m.parameters(), lr=0.1)
    loss = loss_of(m)
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ---------------------------------------------------------------------------- bad input

def _param(*shape, dtype=torch.float64, **kw):
    return nn.Parameter(torch.ones(*shape, dtype=dtype, **kw))


@pytest.mark.parametrize("name, params, kwargs, error, match", [
    ("SGD", None, {"momentum": 0.9, "dampening": 0.1}, ValueError, "dampening"),
    ("RMSprop", None, {"capturable": True}, ValueError, "capturable"),
    ("Adam", None, {"differentiable": True}, ValueError, "differentiable"),
    ("AdamW", None, {"fused": True}, ValueError, "fused"),
    ("Adagrad", None, {"foreach": "yes"}, TypeError, "foreach"),
    ("RMSprop", None, {"alpha": 1.5}, ValueError, "alpha"),
    ("Adam", None, {"betas": (0.9, 1.0)}, ValueError, "beta2"),
    ("Adadelta", None, {"lr": -1.0}, ValueError, "lr"),
    ("SGD", None, {"nesterov": True}, ValueError, "nesterov"),
    ("RMSprop", None, {"convention": "jax"}, ValueError, "convention"),
    ("RMSprop", [_param(3, dtype=torch.float16)], {}, ValueError, "float16"),
    ("RMSprop", [_param(3, dtype=torch.complex64)], {}, ValueError, "complex"),
    ("RMSprop", [_param(3, device="meta")], {}, ValueError, "CPU tensors only"),
    ("RMSprop", [nn.Parameter(torch.ones(4, 3, dtype=torch.float64).t())], {}, ValueError,
     "contiguous"),
    ("Adam", [nn.Parameter(torch.tensor([1.0, float("nan")], dtype=torch.float64))], {},
     ValueError, "NaN"),
])
def test_refused_at_construction_with_the_option_named(name, params, kwargs, error, match):
    params = params or [_param(3)]
    before = [p.detach().numpy().tobytes() for p in params if p.device.type == "cpu"
              and p.dtype in (torch.float32, torch.float64)]
    with pytest.raises(error, match=match):
        getattr(rt, name)(params, **kwargs)
    assert before == [p.detach().numpy().tobytes() for p in params if p.device.type == "cpu"
                      and p.dtype in (torch.float32, torch.float64)]


def test_a_refused_step_changes_nothing():
    m = cnn()
    opt = rt.SGD([{"params": m[0].parameters()}, {"params": m[3].parameters()}], lr=0.1,
                 momentum=0.9)
    loss_of(m).backward()
    opt.step()
    saved = copy.deepcopy(m.state_dict())
    state = opt.state_dict()
    loss_of(m).backward()
    opt.param_groups[1]["dampening"] = 0.5  # torch would apply it; rmsopt has no dampening
    with pytest.raises(ValueError, match=r"param_groups\[1\].*dampening"):
        opt.step()
    for k, v in m.state_dict().items():
        assert torch.equal(v, saved[k]), k  # group 0 was not stepped either
    assert all(torch.equal(state["state"][k]["momentum_buffer"], v["momentum_buffer"])
               for k, v in opt.state_dict()["state"].items())
    opt.param_groups[1]["dampening"] = 0
    opt.param_groups[1]["differentiable"] = True
    with pytest.raises(ValueError, match="differentiable"):
        opt.step()


def test_sparse_gradients_are_refused_at_step():
    emb = nn.Embedding(5, 2, sparse=True).double()
    opt = rt.Adagrad(emb.parameters())
    emb(torch.tensor([1, 3])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(TypeError, match="sparse"):
        opt.step()
    assert torch.equal(emb.weight, before)


def test_replaced_storage_and_edited_param_lists_are_refused():
    m = cnn()
    opt = rt.Adam(m.parameters())
    m[3].bias.data = m[3].bias.data.clone()
    loss_of(m).backward()
    with pytest.raises(ValueError, match="new storage"):
        opt.step()
    opt = rt.Adam(m.parameters())
    opt.param_groups[0]["params"].pop()
    with pytest.raises(ValueError, match="add_param_group"):
        opt.step()


def test_clip_norm_over_parameters_at_different_step_counts_is_refused():
    m = cnn()
    opt = rt.RMSprop(m.parameters(), clip_norm=1.0)
    loss_of(m).backward()
    m[3].bias.grad = None
    opt.step()
    loss_of(m).backward()
    with pytest.raises(ValueError, match="clip_norm"):
        opt.step()


def test_bad_state_dicts_are_refused_and_nothing_changes():
    m = cnn()
    opt = rt.Adam(m.parameters())
    loss_of(m).backward()
    opt.step()
    good = opt.state_dict()
    negative = copy.deepcopy(good)
    negative["state"][1]["exp_avg_sq"] = -torch.ones_like(negative["state"][1]["exp_avg_sq"])
    missing = copy.deepcopy(good)
    del missing["state"][0]["exp_avg"]
    short = copy.deepcopy(good)
    short["param_groups"][0]["params"].pop()
    for bad, match in ((negative, "negative|exp_avg_sq|v"), (missing, "exp_avg"),
                       (short, "parameters")):
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(bad)
        for k, v in opt.state_dict()["state"].items():
            for key in v:
                assert torch.equal(v[key], good["state"][k][key])


def test_not_picklable_but_state_dict_is():
    opt = rt.RMSprop(cnn().parameters())
    with pytest.raises(TypeError, match="state_dict"):
        copy.deepcopy(opt)


def test_importing_rmsopt_does_not_import_torch():
    code = "import sys, rmsopt; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    without = "import sys; sys.modules['torch'] = None; import rmsopt.torch"
    run = subprocess.run([sys.executable, "-c", without], capture_output=True, text=True)
    assert run.returncode != 0 and 'pip install "rmsopt[torch]"' in run.stderr


def test_the_bench_table_times_every_contender():
    from rmsopt import bench
    lines = []
    t = bench.torch_table(total=4000, tensors=4, small=8, repeats=2, budget=1.0,
                          out=lines.append)
    assert set(t) == {"rmsopt.torch", "torch foreach", "torch for-loop",
                      "rmsopt.torch 8 tensors", "rmsopt.torch 1 tensor"}
    assert all(v > 0 for v in t.values())
    assert any("speed-up over torch's best" in line for line in lines)
    assert any("8 tensors vs one" in line for line in lines)


def test_a_group_of_float32_and_float64_tensors_steps_each_in_its_dtype():
    def mixed(cls):
        def build(m):
            m[0].float()  # the conv layer in float32 (its input cast inside forward below)
            return cls(m.parameters(), lr=1e-2)
        return build

    a, b = cnn(), cnn()
    oa, ob = mixed(torch.optim.Adam)(a), mixed(rt.Adam)(b)
    for s in range(5):
        for model, opt in ((a, oa), (b, ob)):
            opt.zero_grad()
            hidden = model[0](X.float()).double()
            ((model[3](torch.tanh(hidden).flatten(1)) - Y) ** 2).mean().backward()
            opt.step()
        assert a[0].weight.dtype == b[0].weight.dtype == torch.float32
        torch.testing.assert_close(b[0].weight, a[0].weight, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(b[3].weight, a[3].weight, rtol=1e-5, atol=1e-7)
    assert len(ob._cohorts[0]) == 2


def test_an_invalid_hyperparameter_set_later_is_refused_at_the_next_step():
    m = cnn()
    opt = rt.RMSprop(m.parameters())
    loss_of(m).backward()
    opt.param_groups[0]["alpha"] = 1.5
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(ValueError, match=r"param_groups\[0\].*1\.5.*alpha"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), before))
    opt.param_groups[0]["alpha"] = 0.9
    opt.step()
    assert not torch.equal(m[3].weight, before[2])


@pytest.mark.parametrize("name, kwargs", [("Lion", {"weight_decay": 0.1}),
                                          ("AdaBelief", {"weight_decay": 0.1}),
                                          ("LaProp", {"weight_decay": 0.1})])
def test_lion_adabelief_laprop_step_as_rmsopts_own_and_round_trip(name, kwargs):
    import rmsopt
    m = cnn()
    opt = getattr(rt, name)(m.parameters(), lr=1e-2, **kwargs)
    arrays = [p.detach().numpy().copy() for p in m.parameters()]
    core = getattr(rmsopt, name)(arrays, lr=1e-2, **kwargs)
    for s in range(5):
        opt.zero_grad()
        loss_of(m).backward()
        core.step([p.grad.numpy().copy() for p in m.parameters()])
        opt.step()
        assert all(np.array_equal(p.detach().numpy(), a) for p, a in zip(m.parameters(), arrays))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    again = getattr(rt, name)(m.parameters(), lr=1e-2, **kwargs)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    carried = {"exp_avg_lr_1", "exp_avg_lr_2"} if name == "LaProp" else set()
    assert set(again.state_dict()["state"][0]) == {"step", *opt._state_names.values(), *carried}
    assert again.state_dict()["state"][0]["step"].item() == 5


def test_torchs_state_dict_hooks_run():
    opt = rt.Adagrad(cnn().parameters())
    seen = []
    opt.register_state_dict_pre_hook(lambda o: seen.append("pre"))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1})
    opt.register_load_state_dict_pre_hook(lambda o, sd: {k: v for k, v in sd.items()
                                                         if k != "extra"})
    opt.register_load_state_dict_post_hook(lambda o: seen.append("loaded"))
    sd = opt.state_dict()
    assert sd["extra"] == 1
    opt.load_state_dict(sd)
    assert seen == ["pre", "loaded"]


def test_the_same_tensor_twice_or_overlapping_views_are_refused():
    base = torch.zeros(10, dtype=torch.float64)
    w = nn.Parameter(torch.ones(3, dtype=torch.float64))
    for params, pair in (([w, _param(2), w], r"\[0\] and .*\[2\]"),
                         ([base[:6], _param(1), base[4:]], r"\[0\] and .*\[2\]")):
        with pytest.raises(ValueError, match=pair + ".*share memory"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own warning on a duplicate
            rt.SGD(params)
    rt.SGD([base[:5], base[5:]])  # disjoint views of one storage are fine


def test_add_param_group_mid_run_as_when_unfreezing_a_layer():
    def build(cls):
        def make(m):
            return cls(m[0].parameters(), lr=1e-2)
        return make

    def unfreeze(s, model, opt):
        if s == 4:
            opt.add_param_group({"params": model[3].parameters(), "lr": 3e-3})
        if s < 5:
            for p in model[3].parameters():
                p.grad = None

    (_, oa), (_, ob) = train_pair(build(torch.optim.Adam), build(rt.Adam), before_step=unfreeze)
    assert len(ob.param_groups) == 2 and ob.state_dict()["state"][2]["step"].item() == 15


def test_one_cycle_lr_cycling_adams_betas_takes_effect():
    schedulers = {}

    def make(cls):
        def build(m):
            opt = cls(m.parameters(), lr=1e-2)
            schedulers[opt] = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-2,
                                                                  total_steps=20)
            return opt
        return build

    (_, oa), (_, ob) = train_pair(make(torch.optim.Adam), make(rt.Adam),
                                  after_step=lambda s, m, opt: schedulers[opt].step())
    assert ob.param_groups[0]["betas"] == oa.param_groups[0]["betas"] != (0.9, 0.999)


def test_laprop_carries_each_parameters_average_rate_through_frozen_steps_and_a_scheduler():
    """timm's LaProp keeps the average of the rates per parameter: a parameter without a
    gradient for some steps, under a scheduler, has its own. Compared with the NumPy
    reference stepped per parameter, and resumed from a state dict mid-run."""
    import rmsopt
    from rmsopt._kernels.reference import Reference
    m = cnn()
    opt = rt.LaProp(m.parameters(), lr=2e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    params = list(m.parameters())
    refs = [Reference("laprop", rmsopt.LaProp(np.zeros(1), lr=2e-2, weight_decay=0.1).hyper,
                      p.detach().numpy().astype(np.float64)) for p in params]
    for s in range(8):
        opt.zero_grad()
        loss_of(m).backward()
        if s in (2, 3, 5):
            params[0].grad = None  # frozen for these steps
        lr = opt.param_groups[0]["lr"]
        for p, ref in zip(params, refs):
            if p.grad is not None:
                ref.step(p.grad.detach().numpy().astype(np.float64), lr=lr)
        opt.step()
        sched.step()
        if s == 4:  # resume from a state dict: the averages come back per parameter
            d = opt.state_dict()
            assert d["state"][0]["exp_avg_lr_1"].item() != d["state"][1]["exp_avg_lr_1"].item()
            opt = rt.LaProp(m.parameters(), lr=2e-2, weight_decay=0.1)
            opt.load_state_dict(d)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5,
                                                    last_epoch=s)
        for p, ref in zip(params, refs):
            np.testing.assert_allclose(p.detach().numpy().reshape(-1), ref.params[0],
                                       rtol=1e-12, atol=1e-15)
    assert opt.state[params[0]]["step"].item() == 5 and opt.state[params[1]]["step"].item() == 8
