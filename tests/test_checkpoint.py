"""Checkpoints: bit-identical resume, validate-then-apply, atomic save, damage detected."""

import json
import os
import zipfile

import numpy as np
import pytest

import rmsopt

from .configs import CONFIGS, IDS
from .test_backends import gradient


def train(opt, arrays, start, stop):
    for t in range(start + 1, stop + 1):
        grads = [gradient(a, t, k) for k, a in enumerate(arrays)]
        opt.step(grads if isinstance(opt.params, list) else grads[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_resume_is_bit_identical(name, cls, kwargs, dtype, tmp_path):
    x0 = np.random.default_rng(5).standard_normal((4, 3)).astype(dtype)
    straight = x0.copy()
    opt = cls(straight, **kwargs)
    train(opt, [straight], 0, 100)

    first = x0.copy()
    opt1 = cls(first, **kwargs)
    train(opt1, [first], 0, 40)
    opt1.save(tmp_path / "ckpt.npz")
    resumed = np.zeros_like(x0)
    opt2 = cls(resumed, **kwargs)
    opt2.load(tmp_path / "ckpt.npz")
    assert opt2.t == 40
    train(opt2, [resumed], 40, 100)
    np.testing.assert_array_equal(resumed, straight)
    for k in opt.state:
        np.testing.assert_array_equal(opt2.state[k], opt.state[k])


def test_resume_list_of_arrays(tmp_path):
    shapes = [(3, 2), (5,)]
    xs = [np.full(s, 0.3) for s in shapes]
    opt = rmsopt.Adam(xs, lr=0.01, amsgrad=True)
    train(opt, xs, 0, 30)
    ys = [np.full(s, 0.3) for s in shapes]
    o1 = rmsopt.Adam(ys, lr=0.01, amsgrad=True)
    train(o1, ys, 0, 10)
    state = o1.state_dict()
    zs = [np.zeros(s) for s in shapes]
    o2 = rmsopt.Adam(zs, lr=0.01, amsgrad=True)
    o2.load_state_dict(state)
    train(o2, zs, 10, 30)
    for a, b in zip(zs, xs):
        np.testing.assert_array_equal(a, b)


def test_state_dict_is_a_copy_and_hyper_round_trips():
    x = np.ones(3)
    opt = rmsopt.RMSprop(x, convention="keras", momentum=0.9)
    opt.step(np.ones(3))
    d = opt.state_dict()
    d["params"][0][:] = 7.0
    d["state"]["nu"][:] = 7.0
    assert (x != 7).all() and (opt.state["nu"] != 7).all()
    assert d["hyper"] == opt.hyper and d["hyper"]["eps_in_sqrt"] is True
    json.dumps({k: v for k, v in d.items() if k not in ("params", "state")})  # plain JSON


def test_load_restores_saved_hyperparameters(tmp_path):
    x = np.ones(3)
    a = rmsopt.RMSprop(x, lr=0.05, centered=True)
    a.save(tmp_path / "c.npz")
    b = rmsopt.RMSprop(np.zeros(3), lr=0.001)
    b.load(tmp_path / "c.npz")
    assert b.hyper == a.hyper and "mu" in b.state


MISMATCHES = [
    (lambda: rmsopt.Adam(np.zeros(3)), "optimizer 'RMSprop'"),
    (lambda: rmsopt.RMSprop(np.zeros(4)), "shapes"),
    (lambda: rmsopt.RMSprop(np.zeros(3, np.float32)), "dtype 'float64'"),
    (lambda: rmsopt.RMSprop([np.zeros(3), np.zeros(1)]), "shapes"),
]


@pytest.mark.parametrize("make,match", MISMATCHES)
def test_load_validates_before_changing_anything(make, match, tmp_path):
    x = np.ones(3)
    src = rmsopt.RMSprop(x, momentum=0.5)
    src.step(np.ones(3))
    src.save(tmp_path / "c.npz")
    target = make()
    arrays = target.params if isinstance(target.params, list) else [target.params]
    before = [a.tobytes() for a in arrays], {k: v.tobytes() for k, v in target.state.items()}
    with pytest.raises(ValueError, match=match):
        target.load(tmp_path / "c.npz")
    after = [a.tobytes() for a in arrays], {k: v.tobytes() for k, v in target.state.items()}
    assert after == before and target.t == 0


def test_inconsistent_state_dict_is_rejected_whole():
    x = np.ones(3)
    opt = rmsopt.RMSprop(x, momentum=0.5)
    opt.step(np.ones(3))
    d = opt.state_dict()
    target = rmsopt.RMSprop(np.zeros(3))
    bad_slots = dict(d, state={"nu": d["state"]["nu"]})  # momentum needs buf
    with pytest.raises(ValueError, match="slots"):
        target.load_state_dict(bad_slots)
    bad_hyper = dict(d, hyper=dict(d["hyper"], rho=2.0))
    with pytest.raises(ValueError, match="Invalid rho"):
        target.load_state_dict(bad_hyper)
    bad_size = dict(d, state={"nu": np.zeros(2), "buf": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        target.load_state_dict(bad_size)
    with pytest.raises(ValueError, match="step count"):
        target.load_state_dict(dict(d, t=-1))
    assert target.t == 0 and (target.params == 0).all() and (target.state["nu"] == 0).all()


def test_truncated_and_corrupted_files_are_detected(tmp_path):
    x = np.linspace(0, 1, 50)
    opt = rmsopt.RMSprop(x)
    opt.step(np.ones(50))
    path = tmp_path / "c.npz"
    opt.save(path)
    raw = path.read_bytes()
    target = rmsopt.RMSprop(np.zeros(50))

    (tmp_path / "short.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        target.load(tmp_path / "short.npz")

    # flip bytes inside a stored array: zip CRC or our checksum must notice
    flipped = bytearray(raw)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("param_0.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    flipped[start:start + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupted"):
        target.load(tmp_path / "flip.npz")

    # a consistent archive whose array was replaced: only the checksum can tell
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    members["param_0"] = members["param_0"] + 1.0
    np.savez(tmp_path / "edit.npz", **members)
    with pytest.raises(ValueError, match="param_0 fails its checksum"):
        target.load(tmp_path / "edit.npz")
    assert (target.params == 0).all() and target.t == 0


def test_checkpoint_holds_no_pickle(tmp_path):
    opt = rmsopt.RMSprop(np.ones(3))
    opt.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        header = json.loads(str(z["header"][()]))
    assert header["format"] == "rmsopt-checkpoint" and header["version"] == 1


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous checkpoint intact and no temporary file."""
    path = tmp_path / "c.npz"
    x = np.ones(3)
    opt = rmsopt.RMSprop(x)
    opt.save(path)
    good = path.read_bytes()
    opt.step(np.ones(3))

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        opt.save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["c.npz"]


def test_a_schedule_as_lr_steps_with_t_and_resumes_bit_identically(tmp_path):
    """optax's habit: a schedule as the optimizer's lr, called with the step count."""
    from rmsopt import schedules as S

    sched = S.warmup(S.cosine(1e-2, 50), 5)
    a, b = np.linspace(-1, 1, 8), np.linspace(-1, 1, 8)
    by_hand = rmsopt.RMSprop(b, lr=1.0)
    opt = rmsopt.RMSprop(a, lr=sched)
    for t in range(40):
        opt.step(np.cos(3 * a))
        by_hand.step(np.cos(3 * b), lr=sched(t))
    assert a.tobytes() == b.tobytes() and opt.schedule is sched

    x = np.linspace(-1, 1, 8)
    first = rmsopt.RMSprop(x, lr=sched)
    for _ in range(15):
        first.step(np.cos(3 * x))
    first.save(tmp_path / "s.npz")
    y = np.zeros(8)
    resumed = rmsopt.RMSprop(y)  # no schedule: the checkpoint brings it
    resumed.load(tmp_path / "s.npz")
    assert repr(resumed.schedule) == repr(sched) and resumed.t == 15
    for _ in range(25):
        first.step(np.cos(3 * x))
        resumed.step(np.cos(3 * y))
    assert x.tobytes() == y.tobytes()

    d = first.state_dict()
    d["schedule"] = {"name": "cosine", "params": {"lr": 1e-2, "period": -3}}
    with pytest.raises(ValueError, match="Invalid period"):
        rmsopt.RMSprop(np.zeros(8)).load_state_dict(d)
    d["schedule"] = {"name": "os.system", "params": {}}
    with pytest.raises(ValueError, match="invalid lr schedule in checkpoint"):
        rmsopt.RMSprop(np.zeros(8)).load_state_dict(d)
    with pytest.raises(TypeError, match="not one of rmsopt.schedules"):
        rmsopt.RMSprop(np.zeros(8), lr=lambda t: 0.1).save(tmp_path / "c.npz")
    assert not (tmp_path / "c.npz").exists()


def test_a_carried_value_resumes_bit_identically_and_is_validated(tmp_path):
    """LaProp carries the average of its learning rates (its momentum's bias correction):
    saved in the header, resumed to the bit under a schedule, and checked on load."""
    from rmsopt import schedules as S

    sched = S.warmup(S.cosine(1e-2, 50), 5)
    x = np.linspace(-1, 1, 8)
    first = rmsopt.LaProp(x, lr=sched, weight_decay=0.1)
    for _ in range(15):
        first.step(np.cos(3 * x))
    assert first.carry != 0.0 and first.state_dict()["carry"] == {"lr_average": first.carry}
    first.save(tmp_path / "l.npz")
    y = np.zeros(8)
    resumed = rmsopt.LaProp(y)
    resumed.load(tmp_path / "l.npz")
    assert resumed.carry == first.carry and resumed.t == 15
    forgotten = rmsopt.LaProp(z := np.zeros(8))  # without the carried value: another path
    forgotten.load_state_dict(first.state_dict())
    forgotten.carry = 0.0
    for _ in range(25):
        first.step(np.cos(3 * x))
        resumed.step(np.cos(3 * y))
        forgotten.step(np.cos(3 * z))
    assert x.tobytes() == y.tobytes() and x.tobytes() != z.tobytes()

    d = first.state_dict()
    target = rmsopt.LaProp(w := np.zeros(8))
    for bad, match in [({}, "carry must be"), (None, "carry must be"),
                       ({"lr_average": float("nan")}, "finite float"),
                       ({"lr_average": True}, "finite float"),
                       ({"lr_average": "0.1"}, "finite float"),
                       ({"lr_average": 0.1, "x": 1.0}, "carry must be")]:
        with pytest.raises(ValueError, match=match):
            target.load_state_dict({**d, "carry": bad} if bad is not None else
                                   {k: v for k, v in d.items() if k != "carry"})
        assert target.t == 0 and target.carry == 0.0 and (w == 0).all()
    # a rule without a carried value: none in its checkpoints, and none accepted
    plain = rmsopt.RMSprop(np.ones(3)).state_dict()
    assert "carry" not in plain
    with pytest.raises(ValueError, match="carry must be absent"):
        rmsopt.RMSprop(np.ones(3)).load_state_dict(dict(plain, carry={"lr_average": 0.1}))


def _rewrite(path, out, header=None, members=None):
    """A copy of checkpoint ``path`` with its JSON header and/or members replaced."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    head = json.loads(str(arrays.pop("header")[()]))
    head = header(head) if header else head
    arrays = members(arrays) if members else arrays
    np.savez(out, header=np.array(json.dumps(head)), **arrays)
    return out


def _huge_member(path, out, name):
    """``path`` with member ``name``'s .npy header declaring 2**40 elements (data unchanged)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == name + ".npy":
                old = data[:data.index(b"\n") + 1]
                new = old.replace(b"(50,)", b"(1099511627776,)")
                new = new[:-1].rstrip(b" ") + b" " * (len(old) - len(new.rstrip(b" \n")) - 1)
                data = new[:len(old) - 1] + b"\n" + data[len(old):]
            dst.writestr(info, data)
    return out


def test_damaged_or_implausible_checkpoints_are_value_errors_before_any_change(tmp_path):
    """Each file is refused with a ValueError (not TypeError, AttributeError, MemoryError or
    OverflowError) and the optimizer it was loaded into is untouched."""
    x = np.linspace(0, 1, 50)
    opt = rmsopt.RMSprop(x, momentum=0.5)
    opt.step(np.ones(50))
    good = tmp_path / "good.npz"
    opt.save(good)

    def edited(name, **kw):
        return _rewrite(good, tmp_path / f"{name}.npz", **kw)

    def nonneg(a):
        a["state_nu"] = -a["state_nu"]
        return a

    def nan_param(a):
        a["param_0"] = a["param_0"].copy()
        a["param_0"][3] = np.nan
        return a

    cases = {
        "a JSON list": edited("list", header=lambda h: [h]),
        "a JSON number": edited("number", header=lambda h: 3),
        "shapes: 10": edited("shapes", header=lambda h: dict(h, shapes=10)),
        "t = 2**63": edited("bigt", header=lambda h: dict(h, t=2 ** 63)),
        "hyper = {}": edited("nohyper", header=lambda h: dict(h, hyper={})),
        "negative nu": edited("negnu", members=nonneg),
        "NaN parameter": edited("nanp", members=nan_param),
        "npy of 2**40 elements": _huge_member(good, tmp_path / "huge.npz", "param_0"),
    }
    y = np.zeros(50)
    target = rmsopt.RMSprop(y, momentum=0.5)
    target.step(np.full(50, 0.5))
    before = y.tobytes(), target.t, {k: v.tobytes() for k, v in target.state.items()}
    for what, path in cases.items():
        with pytest.raises(ValueError):
            target.load(path)
        assert (y.tobytes(), target.t,
                {k: v.tobytes() for k, v in target.state.items()}) == before, what
    # a checksum-consistent state dict (no file): the same checks
    d = opt.state_dict()
    for bad in (dict(d, t=2 ** 63), dict(d, hyper={}), dict(d, shapes=10),
                dict(d, state=dict(d["state"], nu=-d["state"]["nu"]))):
        with pytest.raises(ValueError):
            target.load_state_dict(bad)
    target.load_state_dict(dict(d, t=2 ** 62))  # the largest count accepted
    assert target.t == 2 ** 62
    target.load_state_dict(dict(d, t=np.int64(5)))  # a NumPy integer is an integer
    assert target.t == 5 and type(target.state_dict()["t"]) is int
    target.step(np.ones(50))
    assert target.t == 6


@pytest.mark.skipif(os.name != "posix", reason="symlinks, FIFOs and modes as POSIX has them")
def test_save_writes_through_symlinks_keeps_modes_and_refuses_special_files(tmp_path):
    opt = rmsopt.RMSprop(np.ones(3))
    target, link = tmp_path / "real.npz", tmp_path / "link.npz"
    opt.save(target)
    os.chmod(target, 0o640)
    link.symlink_to(target)
    opt.step(np.ones(3))
    opt.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)  # still a link
    assert os.stat(target).st_mode & 0o777 == 0o640  # the existing file's mode is kept
    fresh = rmsopt.RMSprop(np.zeros(3))
    fresh.load(target)
    assert fresh.t == 1
    old = os.umask(0o027)
    try:
        opt.save(tmp_path / "new.npz")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "new.npz").st_mode & 0o777 == 0o640  # 0666 under the umask
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        opt.save(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        opt.save(tmp_path)  # a directory
    assert fifo.exists() and not fifo.is_file()


def test_save_cleans_temporaries_left_by_a_killed_save(tmp_path):
    """kill -9 mid-save leaves a temporary file; the next save of that checkpoint removes it
    (and leaves alone another live process's temporary and other files)."""
    import subprocess
    import sys

    opt = rmsopt.RMSprop(np.ones(3))
    path = tmp_path / "c.npz"
    opt.save(path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".c.npz.rmsopt-{dead}-deadbeef.tmp"
    live = tmp_path / f".c.npz.rmsopt-{os.getppid()}-cafef00d.tmp"
    other = tmp_path / ".other.npz.rmsopt-1-x.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"x" * 1000)
    opt.save(path)
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, live.name, other.name])


def _drop(key):
    return lambda d: d.pop(key)


# (mutation of a valid state dict, message regex): every branch of checkpoint.validate
VALIDATION = [
    (lambda d: d.update(format="other"), "unsupported checkpoint format 'other'"),
    (lambda d: d.update(version=2), "unsupported checkpoint format .* version 2"),
    (_drop("t"), "lacks t"),
    (_drop("state"), "lacks state"),
    (lambda d: d.update(optimizer="Adam"), "for optimizer 'Adam'"),
    (lambda d: d.update(rule="adam"), "for rule 'adam'"),
    (lambda d: d.update(dtype="float32"), "for dtype 'float32'"),
    (lambda d: d.update(shapes=[[4]]), "shapes"),
    (lambda d: d.update(shapes=[3]), "is not a list of shapes"),
    (lambda d: d.update(shapes=[["3"]]), "is not a list of shapes"),
    (lambda d: d.update(t=2 ** 62 + 1), "step count"),
    (lambda d: d.update(t=True), "step count"),
    (lambda d: d.update(t=1.0), "step count"),
    (lambda d: d.update(hyper=[1]), "hyperparameters are not a dict"),
    (lambda d: d["hyper"].pop("eps"), "lack eps"),
    (lambda d: d.update(params=[]), "has 0 parameter arrays, expected 1"),
    (lambda d: d.update(params=np.zeros(3)), "params must be a list"),
    (lambda d: d.update(params=[np.zeros(3, np.float32)]), "parameter 0 is not a float64"),
    (lambda d: d.update(params=[np.zeros(4)]), "parameter 0 is not a float64 array of shape"),
    (lambda d: d["state"].update(nu=d["state"]["nu"].astype(np.float32)),
     "state 'nu' is not a float64 array"),
    (lambda d: d["state"].update(nu=[0.0, 0.0, 0.0]), "state 'nu' is not a float64 array"),
    (lambda d: d["state"]["buf"].__setitem__(0, np.nan), "state 'buf' contains NaN"),
    (lambda d: d["params"][0].__setitem__(0, np.inf), "parameter 0 contains NaN or inf"),
]


@pytest.mark.parametrize("mutate,match", VALIDATION)
def test_every_validation_branch_refuses_and_changes_nothing(mutate, match):
    src = rmsopt.RMSprop(np.ones(3), momentum=0.5)
    src.step(np.ones(3))
    d = src.state_dict()
    mutate(d)
    x = np.zeros(3)
    target = rmsopt.RMSprop(x, momentum=0.5)
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(d)
    assert target.t == 0 and (x == 0).all() and (target.state["nu"] == 0).all()


def test_file_members_must_match_the_header(tmp_path):
    opt = rmsopt.RMSprop(np.ones(3), momentum=0.5)
    path = tmp_path / "c.npz"
    opt.save(path)
    target = rmsopt.RMSprop(np.zeros(3), momentum=0.5)

    def without_buf(a):
        a.pop("state_buf")
        return a

    for name, kw, match in (
            ("missing", dict(members=without_buf), "members do not match its header"),
            ("extra", dict(members=lambda a: dict(a, state_mu=a["state_nu"])),
             "members do not match its header"),
            ("slots", dict(header=lambda h: dict(h, state_slots="nu")), "state_slots"),
            ("dtype", dict(header=lambda h: dict(h, dtype="no-such-type")), "dtype"),
            ("sha", dict(header=lambda h: dict(h, sha256=[])), "do not match its header")):
        with pytest.raises(ValueError, match=match):
            target.load(_rewrite(path, tmp_path / f"{name}.npz", **kw))
    assert target.t == 0 and (target.params == 0).all()
