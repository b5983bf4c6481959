"""Checkpoint format: an ``.npz`` archive with a JSON header, never a pickle.

Members: ``header`` (a 0-d unicode array holding JSON), ``param_<i>`` for each
parameter array and ``state_<slot>`` for each active state buffer. The header
carries the format version, optimizer and rule names, hyperparameters, the
learning-rate schedule (``rmsopt.schedules`` by name and parameters, or null;
optional, absent in older files), step count, dtype, shapes and a SHA-256 of
every array, so a truncated or altered
file is detected on load. Files are read with ``allow_pickle=False`` and
written atomically (a temporary file in the same folder, then ``os.replace``).
"""

import hashlib
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "rmsopt-checkpoint"
VERSION = 1
_KEYS = ("format", "version", "optimizer", "rule", "hyper", "t", "dtype", "shapes", "params",
         "state")


def make(**fields):
    """A state dict: the header fields plus ``params`` (list) and ``state`` (dict) arrays."""
    return dict(format=FORMAT, version=VERSION, **fields)


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def validate(d, *, optimizer, rule, dtype, shapes, hyper_keys):
    """Check a state dict against the live optimizer; return it or raise ValueError.

    ``hyper_keys`` are the hyperparameter names the live optimizer has; any other
    name in the checkpoint is an error (a typo or another version, not ignored).
    """
    if not isinstance(d, dict):
        raise TypeError(f"state dict must be a dict, got {type(d).__name__}")
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise ValueError(f"state dict lacks {', '.join(missing)}")
    if d["format"] != FORMAT or d["version"] != VERSION:
        raise ValueError(f"unsupported checkpoint format {d['format']!r} version {d['version']!r}")
    for key, live in (("optimizer", optimizer), ("rule", rule), ("dtype", dtype)):
        if d[key] != live:
            raise ValueError(f"checkpoint is for {key} {d[key]!r}, this optimizer has {live!r}")
    if [list(s) for s in d["shapes"]] != shapes:
        raise ValueError(f"checkpoint parameter shapes {d['shapes']} differ from {shapes}")
    if not isinstance(d["t"], int) or isinstance(d["t"], bool) or d["t"] < 0:
        raise ValueError(f"checkpoint step count t={d['t']!r} is invalid")
    if not isinstance(d["hyper"], dict):
        raise ValueError("checkpoint hyperparameters are not a dict")
    unknown = sorted(map(str, set(d["hyper"]) - set(hyper_keys)))
    if unknown:
        raise ValueError(f"checkpoint hyperparameters have unknown names: {', '.join(unknown)}")
    if not isinstance(d["state"], dict):
        raise ValueError(f"checkpoint state must be a dict of slot name -> array, got "
                         f"{type(d['state']).__name__}")
    params = d["params"]
    if len(params) != len(shapes):
        raise ValueError(f"checkpoint has {len(params)} parameter arrays, expected {len(shapes)}")
    for i, (p, shape) in enumerate(zip(params, shapes)):
        if not isinstance(p, np.ndarray) or p.dtype != dtype or list(p.shape) != shape:
            raise ValueError(f"checkpoint parameter {i} is not a {dtype} array of shape {shape}")
    for name, s in d["state"].items():
        if not isinstance(s, np.ndarray) or s.dtype != dtype:
            raise ValueError(f"checkpoint state {name!r} is not a {dtype} array")
    return d


def save(path, d):
    """Write state dict ``d`` to ``path`` atomically."""
    arrays = {f"param_{i}": p for i, p in enumerate(d["params"])}
    arrays.update({f"state_{k}": v for k, v in d["state"].items()})
    header = {k: v for k, v in d.items() if k not in ("params", "state")}
    header["state_slots"] = list(d["state"])
    header["sha256"] = {k: _digest(v) for k, v in arrays.items()}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".rmsopt-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path):
    """Read a checkpoint into a state dict; ValueError if it is damaged."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"][()]))
            arrays = {k: z[k] for k in z.files if k != "header"}
    except (zipfile.BadZipFile, EOFError, KeyError, json.JSONDecodeError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted: {e}") from e
    except ValueError as e:
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted: {e}") from e
    digests = header.pop("sha256", None)
    slots = header.pop("state_slots", None)
    if not isinstance(digests, dict) or not isinstance(slots, list) \
            or set(digests) != set(arrays):
        raise ValueError(f"checkpoint {path!r} is corrupted: its members do not match its header")
    for k, a in arrays.items():
        if _digest(a) != digests[k]:
            raise ValueError(f"checkpoint {path!r} is corrupted: {k} fails its checksum")
    n_params = len(header.get("shapes", []))
    header["params"] = [arrays.get(f"param_{i}") for i in range(n_params)]
    header["state"] = {k: arrays.get(f"state_{k}") for k in slots}
    return header
