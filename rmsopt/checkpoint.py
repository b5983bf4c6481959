"""Checkpoint format: an ``.npz`` archive with a JSON header, never a pickle.

Members: ``header`` (a 0-d unicode array holding JSON), ``param_<i>`` for each
parameter array and ``state_<slot>`` for each active state buffer. The header
carries the format version, optimizer and rule names, hyperparameters, the
learning-rate schedule (``rmsopt.schedules`` by name and parameters, or null;
optional, absent in older files), step count, the rule's carried host value
(``carry``: ``{name: float}``, only for a rule that carries one, such as LaProp's
average learning rate), dtype, shapes and a SHA-256 of
every array, so a truncated or altered
file is detected on load. Files are read with ``allow_pickle=False`` and
written atomically (a temporary file in the same folder, then ``os.replace``;
see :func:`save` for symlinks, modes and leftovers).

Versions: 1 is an optimizer without param groups (files of every rmsopt so far). 2 is an
optimizer with param groups (:mod:`rmsopt.groups`): the header has ``format``,
``version``, ``optimizer``, ``t`` and ``groups``, a list holding each group's version-1
header (with its own ``t``, equal to the shared one), and the members of group ``g`` are
named ``group<g>_param_<i>`` and ``group<g>_state_<slot>``. An optimizer without groups
writes version 1 as before, and each kind refuses the other's files in words.
"""

import hashlib
import json
import math
import os
import secrets
import stat
import zipfile

import numpy as np

FORMAT = "rmsopt-checkpoint"
VERSION = 1
#: The version of a checkpoint of an optimizer with param groups (see the module doc).
GROUPS_VERSION = 2
_KEYS = ("format", "version", "optimizer", "rule", "hyper", "t", "dtype", "shapes", "params",
         "state")
_GROUPS_KEYS = ("format", "version", "optimizer", "t", "groups")


def make(**fields):
    """A state dict: the header fields plus ``params`` (list) and ``state`` (dict) arrays."""
    return dict(format=FORMAT, version=VERSION, **fields)


def make_groups(**fields):
    """The state dict of an optimizer with param groups: ``optimizer``, ``t`` and
    ``groups`` (a list of :func:`make` state dicts, one per group)."""
    return dict(format=FORMAT, version=GROUPS_VERSION, **fields)


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


#: The largest step count a checkpoint may hold: the int64 counter must take more steps.
MAX_T = 2 ** 62


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _shapes(value):
    """``value`` as a list of shapes (lists of ints >= 0), or a ValueError."""
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(s, (list, tuple)) and all(_is_int(n) and 0 <= n <= MAX_T for n in s)
            for s in value):
        raise ValueError(f"checkpoint shapes {value!r} is not a list of shapes")
    return [[int(n) for n in s] for s in value]


def validate(d, *, optimizer, rule, dtype, shapes, hyper_keys, nonnegative=(), carried=""):
    """Check a state dict against the live optimizer; return it or raise ValueError.

    As strict as the constructor: ``hyper_keys`` are the hyperparameter names the
    live optimizer has, and the checkpoint must name exactly those (an unknown
    name is a typo or another version, a missing one would silently become a
    default). Parameters must be finite (the constructor refuses NaN and inf),
    the state free of NaN and the ``nonnegative`` slots (sums of squares) >= 0.
    The step count is an integer in ``[0, MAX_T]``; a NumPy integer is taken. A rule
    that carries a host value (``carried``, its name) needs ``carry`` as ``{carried:
    finite float}``; for any other rule ``carry`` is absent (or empty). The returned dict
    holds the value as ``carry`` (a float, 0.0 for a rule without one).
    """
    if not isinstance(d, dict):
        raise TypeError(f"state dict must be a dict, got {type(d).__name__}")
    if "groups" in d:
        raise ValueError("checkpoint holds param groups (it was saved by an optimizer built "
                         "with a list of group dicts); load it into one built with the same "
                         "groups")
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise ValueError(f"state dict lacks {', '.join(missing)}")
    if d["format"] != FORMAT or type(d["version"]) is not int or d["version"] != VERSION:
        raise ValueError(f"unsupported checkpoint format {d['format']!r} version {d['version']!r}")
    for key, live in (("optimizer", optimizer), ("rule", rule), ("dtype", dtype)):
        if not isinstance(d[key], str) or d[key] != live:
            raise ValueError(f"checkpoint is for {key} {d[key]!r}, this optimizer has {live!r}")
    if _shapes(d["shapes"]) != shapes:
        raise ValueError(f"checkpoint parameter shapes {d['shapes']} differ from {shapes}")
    t = d["t"]
    if not _is_int(t) or not 0 <= t <= MAX_T:
        raise ValueError(f"checkpoint step count t={t!r} is invalid (an integer in "
                         f"[0, 2**62] expected)")
    if not isinstance(d["hyper"], dict):
        raise ValueError("checkpoint hyperparameters are not a dict")
    unknown = sorted(map(str, set(d["hyper"]) - set(hyper_keys)))
    if unknown:
        raise ValueError(f"checkpoint hyperparameters have unknown names: {', '.join(unknown)}")
    absent = sorted(set(hyper_keys) - set(d["hyper"]))
    if absent:
        raise ValueError(f"checkpoint hyperparameters lack {', '.join(absent)}")
    if not isinstance(d["state"], dict) or not all(isinstance(k, str) for k in d["state"]):
        raise ValueError(f"checkpoint state must be a dict of slot name -> array, got "
                         f"{type(d['state']).__name__}"
                         + (f" with keys {list(d['state'])}" if isinstance(d["state"], dict)
                            else ""))
    params = d["params"]
    if not isinstance(params, (list, tuple)):
        raise ValueError(f"checkpoint params must be a list of arrays, got "
                         f"{type(params).__name__}")
    if len(params) != len(shapes):
        raise ValueError(f"checkpoint has {len(params)} parameter arrays, expected {len(shapes)}")
    for i, (p, shape) in enumerate(zip(params, shapes)):
        if not isinstance(p, np.ndarray) or p.dtype != dtype or list(p.shape) != shape:
            raise ValueError(f"checkpoint parameter {i} is not a {dtype} array of shape {shape}")
        if not np.isfinite(p).all():
            raise ValueError(f"checkpoint parameter {i} contains NaN or inf")
    for name, s in d["state"].items():
        if not isinstance(s, np.ndarray) or s.dtype != dtype:
            raise ValueError(f"checkpoint state {name!r} is not a {dtype} array")
        if np.isnan(s).any():
            raise ValueError(f"checkpoint state {name!r} contains NaN")
        if name in nonnegative and (s < 0).any():
            raise ValueError(f"checkpoint state {name!r} has negative values; it holds "
                             "sums of squares")
    return dict(d, t=int(t), carry=_carry(d.get("carry"), carried))


def _carry(value, carried):
    """The carried value of a state dict's ``carry`` field for a rule carrying ``carried``."""
    expected = [carried] if carried else []
    if value is None and not carried:
        return 0.0
    if not isinstance(value, dict) or sorted(map(str, value)) != expected:
        raise ValueError(f"checkpoint carry must be {{{carried!r}: float}}" if carried else
                         "checkpoint carry must be absent for this rule")
    if not carried:
        return 0.0
    v = value[carried]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.floating)) \
            or not math.isfinite(v):
        raise ValueError(f"checkpoint carry {carried!r} must be a finite float, got {v!r}")
    return float(v)


def validate_groups(d, *, optimizer, groups):
    """Check the frame of a :func:`make_groups` state dict against a live optimizer with
    ``groups`` param groups; return it or raise ValueError.

    Each group's own state dict is checked by that group's optimizer (:func:`validate`);
    here: the format and version, the optimizer's name, the step count (as
    :func:`validate` checks it), the number of groups, and each group's ``t`` equal to
    the shared one.
    """
    if not isinstance(d, dict):
        raise TypeError(f"state dict must be a dict, got {type(d).__name__}")
    if "groups" not in d and d.get("format") == FORMAT and d.get("version") == VERSION:
        raise ValueError(f"checkpoint has no param groups (it was saved by an optimizer "
                         f"built with arrays); this optimizer has {groups} groups")
    missing = [k for k in _GROUPS_KEYS if k not in d]
    if missing:
        raise ValueError(f"state dict lacks {', '.join(missing)}")
    if d["format"] != FORMAT or type(d["version"]) is not int \
            or d["version"] != GROUPS_VERSION:
        raise ValueError(f"unsupported checkpoint format {d['format']!r} version {d['version']!r}")
    if not isinstance(d["optimizer"], str) or d["optimizer"] != optimizer:
        raise ValueError(f"checkpoint is for optimizer {d['optimizer']!r}, this optimizer has "
                         f"{optimizer!r}")
    t = d["t"]
    if not _is_int(t) or not 0 <= t <= MAX_T:
        raise ValueError(f"checkpoint step count t={t!r} is invalid (an integer in "
                         f"[0, 2**62] expected)")
    parts = d["groups"]
    if not isinstance(parts, (list, tuple)) or not all(isinstance(p, dict) for p in parts):
        raise ValueError("checkpoint groups must be a list of state dicts")
    if len(parts) != groups:
        raise ValueError(f"checkpoint has {len(parts)} param groups, this optimizer has {groups}")
    for g, part in enumerate(parts):
        if "t" in part and not (_is_int(part["t"]) and part["t"] == t):
            raise ValueError(f"checkpoint param_groups[{g}] has step count t={part['t']!r}, "
                             f"but the checkpoint's is {t}")
    return dict(d, t=int(t))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or not a pid: leave its file alone
    return True


def _clean_stale(folder, name):
    """Remove temporaries of checkpoint ``name`` whose writing process has died (kill -9
    mid-save); another live process's temporary is its save in progress."""
    prefix = f".{name}.rmsopt-"
    for entry in os.scandir(folder):
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        pid = entry.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def save(path, d):
    """Write state dict ``d`` to ``path`` atomically.

    A symlink is written through (its target is replaced, the link stays); an
    existing file keeps its permission bits, a new one gets ``0666`` under the
    umask; anything that is not a regular file (a directory, FIFO or device) is
    refused with a ValueError. The data goes to a temporary file beside the
    target, named after it and the writing process, then ``os.replace``: a crash
    leaves the old checkpoint whole, and the next save removes the temporaries of
    processes that died mid-save.
    """
    target = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        mode = None
    else:
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"checkpoint path {os.fspath(path)!r} is not a regular file; "
                             "refusing to replace it")
        mode = stat.S_IMODE(st.st_mode)
    folder, name = os.path.split(target)
    _clean_stale(folder, name)
    parts = _parts(d)
    arrays = {}
    for prefix, part in parts:
        arrays.update({f"{prefix}param_{i}": p for i, p in enumerate(part["params"])})
        arrays.update({f"{prefix}state_{k}": v for k, v in part["state"].items()})
    if "groups" in d:
        header = {k: v for k, v in d.items() if k != "groups"}
        header["groups"] = [_part_header(part) for _, part in parts]
    else:
        header = _part_header(d)
    header["sha256"] = {k: _digest(v) for k, v in arrays.items()}
    tmp = os.path.join(folder, f".{name}.rmsopt-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _parts(d):
    """``[(member prefix, part)]``: the state dict or header itself, or (version 2) each
    group's."""
    if "groups" not in d:
        return [("", d)]
    groups = d["groups"]
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("its groups is not a list of objects")
    return [(f"group{g}_", part) for g, part in enumerate(groups)]


def _part_header(part):
    """The JSON header of one optimizer's (or group's) state dict."""
    header = {k: v for k, v in part.items() if k not in ("params", "state")}
    header["state_slots"] = list(part["state"])
    return header


def _declared(z, name):
    """The ``(shape, dtype)`` that member ``name`` of an open npz declares, read from its
    ``.npy`` header only (so that a damaged header cannot make ``load`` allocate)."""
    with z.zip.open(name + ".npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def _expected_members(header, prefix=""):
    """``{member: (shape, dtype)}`` that a checkpoint's own header (or a group's, its
    members named with ``prefix``) implies."""
    shapes = _shapes(header.get("shapes"))
    slots = header.get("state_slots")
    if not isinstance(slots, list) or not all(isinstance(k, str) for k in slots):
        raise ValueError("its state_slots is not a list of names")
    try:
        dtype = np.dtype(header.get("dtype"))
    except TypeError:
        raise ValueError(f"its dtype {header.get('dtype')!r} is not a dtype") from None
    n = sum(math.prod(s) for s in shapes)
    members = {f"{prefix}param_{i}": (tuple(s), dtype) for i, s in enumerate(shapes)}
    members.update({f"{prefix}state_{k}": ((n,), dtype) for k in slots})
    return members


def load(path):
    """Read a checkpoint into a state dict; ValueError if it is damaged.

    The JSON header is read and checked first; each array member's declared
    shape and dtype must be what the header implies before its data is read.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"][()]))
            if not isinstance(header, dict):
                raise ValueError(f"its header is a JSON {type(header).__name__}, not an object")
            parts = _parts(header)
            expected = {}
            for prefix, part in parts:
                expected.update(_expected_members(part, prefix))
            members = [k for k in z.files if k != "header"]
            if set(members) != set(expected):
                raise ValueError("its members do not match its header")
            for k in members:
                if _declared(z, k) != expected[k]:
                    raise ValueError(f"member {k} declares shape and dtype {_declared(z, k)}, "
                                     f"its header says {expected[k]}")
            arrays = {k: z[k] for k in members}
    except (zipfile.BadZipFile, EOFError, KeyError, json.JSONDecodeError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted: {e}") from e
    except ValueError as e:
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted: {e}") from e
    digests = header.pop("sha256", None)
    if not isinstance(digests, dict) or set(digests) != set(arrays):
        raise ValueError(f"checkpoint {path!r} is corrupted: its members do not match its header")
    for k, a in arrays.items():
        if _digest(a) != digests[k]:
            raise ValueError(f"checkpoint {path!r} is corrupted: {k} fails its checksum")
    for prefix, part in parts:
        slots = part.pop("state_slots", None)
        n_params = len(part.get("shapes", []))
        part["params"] = [arrays.get(f"{prefix}param_{i}") for i in range(n_params)]
        part["state"] = {k: arrays.get(f"{prefix}state_{k}") for k in slots}
    return header
