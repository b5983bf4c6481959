r"""Param groups: per-group hyperparameters in rmsopt's own optimizers, in torch's form.

>>> import numpy as np, rmsopt
>>> W, b = np.ones((3, 2)), np.zeros(2)
>>> opt = rmsopt.Adam([{"params": [W], "lr": 1e-2},
...                    {"params": [b], "weight_decay": 0.0}], lr=1e-3, weight_decay=1e-4)
>>> opt.step([np.ones((3, 2)), np.ones(2)])    # one flat list of gradients, in group order
>>> isinstance(opt, rmsopt.Adam), opt.t, [g["lr"] for g in opt.param_groups]
(True, 1, [0.01, 0.001])

``params`` is a list of dicts, each with ``"params"`` (an array or a list of arrays) and
any of the optimizer's keyword hyperparameters (aliases included: ``alpha``, ``betas``),
which override the constructor's keywords for that group: the constructor's keywords are
the defaults of every group (:attr:`Grouped.defaults`). Every group is checked as the
constructor checks its keywords, before anything is built; an error names the group
(``param_groups[1]: Invalid momentum value: 1.5; ...``). Refused: an unknown key, a group
without ``"params"`` or with no arrays, an array in two groups (or two overlapping ones),
arrays of different dtypes, ``backend`` in a group (one backend for the optimizer).

How groups map onto the kernels and the state
    Each group is an ordinary optimizer of the class over the group's arrays: its own
    flat state buffers, kernel variant (flags and slots: ``momentum=0`` in one group and
    0.9 in another is two variants) and host scalars. A kernel launch takes one set of
    host scalars (``lr``, decay factors, the clip scale), so a step is one launch per
    group (one for all the arrays of a group), not one per step.

Steps
    ``opt.step(grads)`` takes the gradients as one flat list, one per parameter array in
    group order (a group of ``[W1, W2]`` then one of ``[b]``: ``[gW1, gW2, gb]``; a group
    whose ``"params"`` is one array counts as one). All the groups' gradients and
    hyperparameters are checked before any group is updated; then every group is updated
    with its own hyperparameters, and all share one step count ``t`` (bias corrections
    and schedules use it), one lock (steps from several threads take turns, each applied
    whole) and the all-or-nothing rule of :meth:`rmsopt.Optimizer.step` across the groups
    (a Ctrl-C is held until every group has its step). ``nonfinite`` looks at every
    group: with ``"skip"`` or ``"raise"`` a NaN or inf in any group's gradient stops the
    whole step. ``step`` and ``step_rows`` take no ``lr``: set ``param_groups[i]["lr"]``.

Clipping
    ``clip_norm`` clips by a joint norm. The groups with the same ``clip_norm`` value are
    clipped together, by the global norm of all their gradients (as torch's
    ``clip_grad_norm_`` over all the parameters, and as one optimizer over all the arrays
    would, to the bit):

    .. math::

        g \leftarrow g \cdot \min\Big(1, \frac{c}{\lVert (g_1, \dots, g_k) \rVert_2}\Big)

    for the gradients :math:`g_1 \dots g_k` of the groups whose ``clip_norm`` is
    :math:`c`. So when only the constructor sets ``clip_norm``, all the groups are
    clipped by one global norm; a group that sets a value of its own is clipped by the
    norm of its own gradients (the groups sharing that value, together), and a group
    with ``clip_norm=None`` is not clipped. On CUDA a joint norm over several groups is
    not supported (each launch reduces its own gradient): a ValueError says so.
    ``clip_value`` is elementwise, per group.

``param_groups``
    A list of dicts, one per group: ``"params"`` and every hyperparameter under rmsopt's
    name (``rho``, not ``alpha``). They may be changed between steps, as torch users
    change them, and are checked at the next step (or :meth:`~Grouped.state_dict`) as the
    constructor checks them: ``"lr"`` (a number, or a schedule ``lr(t)``) is the rate of
    the next steps; a change of another hyperparameter rebuilds that group's optimizer
    with its state carried over exactly (slots that the new configuration lacks are
    dropped; new ones start at their initial values). A group's ``"params"`` may not be
    changed, nor keys added or removed.

Schedules
    Per group: a group's ``"lr"`` (or the constructor's, for groups that do not set one)
    may be a schedule, called with the shared ``t``. rmsopt's schedules
    (:mod:`rmsopt.schedules`) are saved in checkpoints.

Checkpoints
    :meth:`~Grouped.state_dict`, :meth:`~Grouped.load_state_dict`, ``save`` and ``load``
    include every group: its hyperparameters (``lr`` as ``param_groups`` has it), schedule,
    state and parameters, with the shared ``t`` (format version 2, see
    :mod:`rmsopt.checkpoint`). Loading validates every group and is all or nothing; a
    resumed run is bit-identical. A checkpoint with groups loads into an optimizer with
    the same number of groups and arrays of the same shapes.

Not supported: ``rmsopt.minimize`` (one array ``x0``) and the Dask optimizers
(:mod:`rmsopt.dask`) take no groups; the engine interface of
:class:`rmsopt.Optimizer` (``apply``, ``layout``, ``variant``, ``buffers``,
``host_scalars``, ``carry``, ``check_step``, ``rate``, ``schedule``, ``hyper``) belongs
to one group's optimizer, and on a grouped one is an AttributeError that says so. A rule's
carried value (LaProp's) is each group's own, advanced with that group's rate. On CUDA a gradient is
checked against its own parameter array only (as without groups).
"""

import contextlib
import math
import numbers
import re
import threading
from bisect import bisect_right
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from . import backend as _backend
from . import checkpoint, hyper, schedules
from .optimizer import Optimizer, interrupts_deferred

#: Keywords that are other names of one hyperparameter (:func:`rmsopt.hyper.pick`): a group
#: that gives one overrides the constructor's value under any of its names.
ALIASES = {"alpha": "rho", "decay": "rho"}
#: Keywords that give two hyperparameters at once (torch's ``betas``).
PAIRS = {"betas": ("beta1", "beta2")}


def _same(a, b):
    """Equal hyperparameter values: the same number (0 and 0.0 alike), flag, string, None
    or object."""
    def number(v):
        return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))

    if a is b:
        return True
    if number(a) and number(b):
        return a == b
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without one truth value
        return False


def _canonical(kw, names):
    """Keywords ``kw`` with an alias (given, not None) under its canonical name, where the
    optimizer has that name (``names``) and no other of its names is given too (the
    builder then says that it was given twice)."""
    out = dict(kw)
    for alias, name in ALIASES.items():
        if name in names and out.get(alias) is not None and out.get(name) is None \
                and all(out.get(a) is None for a, n in ALIASES.items() if n == name and a != alias):
            out[name], out[alias] = out[alias], None
    for pair, (first, second) in PAIRS.items():
        value = out.get(pair)
        if first in names and value is not None and out.get(first) is None \
                and out.get(second) is None and np.ndim(value) == 1 and len(value) == 2:
            out[first], out[second], out[pair] = value[0], value[1], None
    return out


def _arrays_of(params):
    """A group's ``"params"`` as a list (one array, or the list given)."""
    return list(params) if isinstance(params, (list, tuple)) else [params]


def _byte_range(a, device):
    """``[start, end)`` of a validated (C-contiguous) parameter array's memory."""
    if device.host:
        start = _backend.address(a)
        return start, start + a.nbytes
    iface = _backend.cuda_kernels().interface(a)
    start = int(iface["data"][0])
    return start, start + math.prod(iface["shape"]) * np.dtype(iface["typestr"]).itemsize


class _Plan:
    """What a step will use: each group's optimizer, its rate, the ``param_groups`` values
    it was checked against, and whether any group was rebuilt."""

    __slots__ = ("applied", "inners", "rates", "rebuilt")

    def __init__(self, inners, rates, applied, rebuilt):
        self.inners, self.rates, self.applied, self.rebuilt = inners, rates, applied, rebuilt


class Grouped(Optimizer, groups=True):
    """The bookkeeping of an optimizer built from param groups (see the module doc).

    ``rmsopt.RMSprop([{...}, ...])`` is an instance of ``Grouped.over(rmsopt.RMSprop)``, a
    subclass of both :class:`rmsopt.RMSprop` and this class, made once per optimizer class.

    Attributes
    ----------
    param_groups : list of dict
        One dict per group: ``"params"`` and the group's hyperparameters (editable
        between steps, see the module doc).
    defaults : dict
        The constructor's hyperparameters, validated (a schedule as ``lr`` as given).
    params : list of dict
        The groups as given.
    t : int
        The number of steps taken, shared by all the groups.
    state : list of dict
        Per group, its flat state buffers by slot name (live, as :attr:`rmsopt.Optimizer.state`).
    skipped : int
        Steps skipped because of a non-finite gradient (``nonfinite="skip"``).
    """

    _base = None  # the optimizer class of each group, in the classes made by over()
    _classes: ClassVar[dict] = {}

    @staticmethod
    def takes(params):
        """Whether ``params`` is given as param groups: a dict, or a list or tuple holding one
        (a list mixing dicts and arrays is refused by the constructor)."""
        if isinstance(params, Mapping):
            return True
        return isinstance(params, (list, tuple)) and any(isinstance(p, Mapping) for p in params)

    @classmethod
    def over(cls, base):
        """The class of ``base``'s optimizers built from param groups (made once)."""
        if base not in cls._classes:
            cls._classes[base] = type(base.__name__, (base, Grouped), {
                "__module__": __name__, "__qualname__": base.__qualname__,
                "__doc__": base.__doc__, "_base": base})
        return cls._classes[base]

    def __init__(self, params, options, backend="auto"):
        base = self._base
        if base is None:
            raise TypeError("build param groups through an optimizer class: "
                            "rmsopt.RMSprop([{'params': ...}, ...]), not rmsopt.groups.Grouped")
        names = set(options)
        entries = self._entries(params, names, base.__name__)
        defaults = _canonical(options, names)
        # the constructor's keywords alone, checked (with its own messages) before any group
        probe = base(np.zeros(1, dtype=self._probe_dtype(entries)),
                     **self._concrete(defaults), backend="numpy")
        flat = [a for arrays, _ in entries for a in _arrays_of(arrays)]
        self._backend_name = _backend.resolve(backend, flat)
        self._device = _backend.get(self._backend_name)
        self._policy, self.skipped = "apply", 0
        inners, lrs = [], []
        for g, (arrays, overrides) in enumerate(entries):
            inner, lr = self._group_optimizer(f"param_groups[{g}]", arrays,
                                    {**defaults, **_canonical(overrides, names)})
            inners.append(inner)
            lrs.append(lr)
        self._check_disjoint(inners)
        self.params = params
        self.defaults = dict(probe.hyper, lr=defaults["lr"] if callable(defaults["lr"])
                             else probe.hyper["lr"])
        self.param_groups = [{"params": arrays, **dict(inner.hyper, lr=lr)}
                             for (arrays, _), inner, lr in zip(entries, inners, lrs)]
        self._members = [tuple(map(id, _arrays_of(group["params"])))
                         for group in self.param_groups]
        self._guard = threading.Lock()
        plan = _Plan(inners, None, [dict(group) for group in self.param_groups], True)
        self._joint = self._joint_sets(plan.inners)
        self._commit(plan)

    # ------------------------------------------------------------ construction

    @staticmethod
    def _entries(params, names, cls_name):
        """``[(arrays, overrides)]`` of the groups given, their structure and keys checked."""
        if isinstance(params, Mapping):
            raise TypeError("params is a dict; give param groups as a list of dicts, "
                            "[{'params': [...], ...}, ...]")
        entries = []
        for g, group in enumerate(params):
            where = f"param_groups[{g}]"
            if not isinstance(group, Mapping):
                raise TypeError(f"params[{g}] is a {type(group).__name__}, but params holds param "
                                "groups (dicts) too; give every group as a dict "
                                "{'params': [...], ...}")
            if "params" not in group:
                raise ValueError(f"{where} has no 'params' (the arrays of the group)")
            arrays = group["params"]
            if isinstance(arrays, Mapping):
                raise TypeError(f"{where}['params'] is a dict; give an array or a list of arrays")
            if isinstance(arrays, (list, tuple)) and not arrays:
                raise ValueError(f"{where} is empty: its 'params' holds no arrays")
            for key in group:
                if key == "params":
                    continue
                if key == "backend":
                    raise ValueError(f"{where} sets 'backend'; the backend is the optimizer's, "
                                     "for every group: pass backend= to the constructor")
                if not isinstance(key, str) or key not in names:
                    raise TypeError(f"{where} has the unknown hyperparameter {key!r}; "
                                    f"{cls_name} takes {', '.join(sorted(names))}")
            entries.append((arrays, {k: v for k, v in group.items() if k != "params"}))
        return entries

    @staticmethod
    def _probe_dtype(entries):
        """The dtype of the first parameter array if it is float32 or float64, else float64
        (for checking the constructor's keywords in the dtype they will meet)."""
        first = _arrays_of(entries[0][0])[0] if entries else None
        try:
            dtype = np.dtype(getattr(first, "dtype", None))
        except TypeError:
            return np.float64
        return dtype if dtype in (np.float32, np.float64) else np.float64

    @staticmethod
    def _concrete(kw):
        """Keywords for a group's optimizer: a schedule's first rate instead of the schedule
        (checked as the constructor checks it; the group's schedule is applied here)."""
        lr = kw.get("lr")
        return dict(kw, lr=lr(0)) if callable(lr) else kw

    def _group_optimizer(self, where, arrays, kw):
        """A group's optimizer over ``arrays`` with keywords ``kw`` and its ``param_groups``
        lr, errors prefixed with ``where``."""
        try:
            inner = self._base(arrays, **self._concrete(kw), backend=self._backend_name)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{where}: {e}") from None
        inner.nonfinite = self._policy
        return inner, kw["lr"] if callable(kw.get("lr")) else inner.hyper["lr"]

    def _check_disjoint(self, inners):
        """One dtype for all groups, and no array (or memory) in two groups."""
        spans = []
        for g, inner in enumerate(inners):
            if inner.dtype != inners[0].dtype:
                raise ValueError(f"param_groups[{g}]['params'] has dtype {inner.dtype}, but "
                                 f"param_groups[0]['params'] has {inners[0].dtype}; all "
                                 "parameter arrays must share one dtype")
            for j, a in enumerate(_arrays_of(inner.params)):
                spans.append((*_byte_range(a, self._device), g, j))
        spans.sort()
        furthest = None  # the span reaching furthest among those starting earlier
        for span in spans:
            if furthest is not None and span[0] < furthest[1]:
                (g1, j1), (g2, j2) = sorted([furthest[2:], span[2:]])
                raise ValueError(f"param_groups[{g2}]['params'][{j2}] and "
                                 f"param_groups[{g1}]['params'][{j1}] share memory (one array "
                                 "in two groups?); each parameter array may be in one group "
                                 "only")
            if furthest is None or span[1] > furthest[1]:
                furthest = span

    def _joint_sets(self, inners):
        """``[(groups, clip_norm, layout)]``: the groups clipped together by one norm (two
        or more with the same clip_norm), with a layout over all their arrays."""
        by_value = {}
        for g, inner in enumerate(inners):
            if inner.hyper["clip_norm"] is not None:
                by_value.setdefault(inner.hyper["clip_norm"], []).append(g)
        joint = []
        for value, members in by_value.items():
            if len(members) < 2:
                continue
            if not self._device.host:
                raise ValueError(
                    f"param_groups{members} share clip_norm={value!r}, a joint norm over "
                    f"several groups, which backend={self._backend_name!r} does not support "
                    "(each launch reduces its own gradient); give each group its own "
                    "clip_norm value, or clip the gradients before the step")
            flat = self._device.flat([a for g in members
                                      for a in _arrays_of(inners[g].params)])
            joint.append((tuple(members), value, _backend.Layout(flat)))
        return joint

    def _spans_of(self, inners):
        """The memory that a step writes, as sorted byte spans with labels, for the check
        that no gradient aliases another group's parameters or state (host backends)."""
        owned = []
        for g, inner in enumerate(inners):
            where = f"param_groups[{g}]"
            single = not isinstance(inner.params, (list, tuple))
            for j, a in enumerate(_arrays_of(inner.params)):
                owned.append((a, f"{where}['params']" + ("" if single else f"[{j}]")))
            owned += [(s, f"the optimizer state {name!r} of {where}")
                      for name, s in inner.state.items() if s.size]
        spans = sorted(((_backend.address(a), _backend.address(a) + a.nbytes, a, label)
                        for a, label in owned), key=lambda s: s[0])
        return spans, [s[0] for s in spans]

    def _commit(self, plan):
        """Make ``plan``'s optimizers, checked values and rates the current ones."""
        self._inners, self._applied = plan.inners, plan.applied
        self._rates = plan.rates or [
            None if callable(group["lr"]) else self._checked_lr(g, inner, group["lr"])
            for g, (group, inner) in enumerate(zip(plan.applied, plan.inners))]
        if plan.rebuilt and self._device.host and len(self._inners) > 1:
            self._spans, self._span_starts = self._spans_of(self._inners)

    # ----------------------------------------------------------- param_groups

    def _plan(self):
        """Each group's optimizer and rate for the next step, from ``param_groups`` as they
        are now: checked, a group rebuilt where a hyperparameter other than lr changed.
        Nothing is changed (:meth:`_commit` does that)."""
        if not isinstance(self.param_groups, list) or len(self.param_groups) != len(self._inners):
            raise ValueError(f"param_groups must stay a list of {len(self._inners)} dicts; add "
                             "or remove groups by building a new optimizer")
        inners, rates, applied, rebuilt = [], [], [], False
        t = self.t
        for g, (group, before, inner) in enumerate(zip(self.param_groups, self._applied,
                                                       self._inners)):
            if (type(group) is dict and len(group) == len(before)
                    and all(group.get(k, group) is v for k, v in before.items())
                    and tuple(map(id, _arrays_of(group["params"]))) == self._members[g]):
                # unchanged since the last step (the usual case): its rate is checked already,
                # unless a schedule gives it
                lr = group["lr"]
                inners.append(inner)
                rates.append(self._checked_lr(g, inner, lr(t)) if callable(lr)
                             else self._rates[g])
                applied.append(before)
                continue
            where = f"param_groups[{g}]"
            if not isinstance(group, dict):
                raise TypeError(f"{where} must be a dict, got {type(group).__name__}")
            if set(group) != set(before):
                added = sorted(map(str, set(group) - set(before)))
                lost = sorted(map(str, set(before) - set(group)))
                names = ", ".join(k for k in before if k != "params")
                said = ([f"new keys {', '.join(added)} (the keys are rmsopt's names: {names})"]
                        if added else [])
                said += [f"lost the keys {', '.join(lost)}"] if lost else []
                raise ValueError(f"{where} has {'; '.join(said)}")
            if group["params"] is not before["params"] or \
                    tuple(map(id, _arrays_of(group["params"]))) != self._members[g]:
                raise ValueError(f"{where}['params'] was changed; a group's arrays are fixed "
                                 "when the optimizer is built (build a new one; "
                                 "load_state_dict carries the state)")
            changed = [k for k in group if k not in ("params", "lr")
                       and not _same(group[k], before[k])]
            if changed:
                new, _ = self._group_optimizer(where, inner.params,
                                     {k: v for k, v in group.items() if k != "params"})
                if any(not _same(new.hyper[k], inner.hyper[k]) for k in inner.hyper
                       if k != "lr"):
                    inner = self._carried(where, inner, new)
                    rebuilt = True
            lr = group["lr"]
            inners.append(inner)
            rates.append(self._checked_lr(g, inner, lr(t) if callable(lr) else lr))
            applied.append(dict(group) if changed or not _same(lr, before["lr"]) else before)
        return _Plan(inners, rates, applied, rebuilt)

    @staticmethod
    def _checked_lr(g, inner, lr):
        try:
            return inner.check_lr(lr)
        except (ValueError, TypeError) as e:
            raise type(e)(f"param_groups[{g}]: {e}") from None

    @staticmethod
    def _carried(where, old, new):
        """``new`` with ``old``'s state (the slots both have) and step count, exactly."""
        fresh = new.state_dict()
        saved = old.state_dict()
        # the old one's t, carried value and parameters; the new hyperparameters, and the
        # slots they use: the old values where the old configuration had them
        carried = dict(saved, hyper=fresh["hyper"], schedule=fresh["schedule"],
                       state={k: saved["state"].get(k, v) for k, v in fresh["state"].items()})
        try:
            new.load_state_dict(carried)
        except (ValueError, TypeError) as e:
            raise type(e)(f"{where}: the state cannot be carried over to the new "
                          f"hyperparameters: {e}") from None
        return new

    # ------------------------------------------------------------------ step

    def step(self, grad, lr=None):
        """Update every group's parameters in place, each with its own hyperparameters.

        Parameters
        ----------
        grad : list of array_like
            One gradient per parameter array, flat, in group order (as
            :meth:`rmsopt.Optimizer.step` takes each); the caller's arrays are not modified.
        lr : None
            Not taken: set ``param_groups[i]["lr"]`` (a number or a schedule).

        Notes
        -----
        Everything (``param_groups``, every gradient) is checked before any group is
        updated; a refused step changes nothing. One kernel launch per group.
        """
        with self._guard:
            self._no_lr(lr)
            plan = self._plan()
            grads = self._checked_grads(plan, grad)
            if plan.rebuilt:
                self._joint = self._joint_sets(plan.inners)
            self._commit(plan)
            if self._refuse_nonfinite(plan.inners, grads):
                return
            scales = [None] * len(plan.inners)  # None: a group clips by its own norm
            for members, clip_norm, layout in self._joint:
                norm = self._device.global_norm(layout, [a for g in members for a in grads[g]])
                scale = hyper.clip_scale(norm, clip_norm)
                for g in members:
                    scales[g] = scale
            # every group's step or none (one group's apply is whole by itself)
            with interrupts_deferred() if len(grads) > 1 else contextlib.nullcontext():
                for inner, part, rate, scale in zip(plan.inners, grads, plan.rates, scales):
                    inner.apply(part, rate, clip_scale=scale)

    @staticmethod
    def _no_lr(lr):
        if lr is not None:
            raise TypeError("an optimizer with param groups takes no lr for a step; set "
                            "param_groups[i]['lr'] (a number, or a schedule of t) instead")

    def _sizes(self):
        return [len(_arrays_of(inner.params)) for inner in self._inners]

    def _checked_grads(self, plan, grad):
        """Each group's gradients as its optimizer's ``apply`` takes them, all checked."""
        sizes = self._sizes()
        n = sum(sizes)
        if not isinstance(grad, (list, tuple)) or len(grad) != n:
            got = type(grad).__name__ + (f" of length {len(grad)}"
                                         if isinstance(grad, (list, tuple)) else "")
            raise ValueError(f"grad must be a flat list of {n} arrays, one per parameter array "
                             f"in group order ({', '.join(map(str, sizes))} per group); got {got}")
        out, offset = [], 0
        for g, (inner, size) in enumerate(zip(plan.inners, sizes)):
            part = list(grad[offset:offset + size])
            single = not isinstance(inner.params, (list, tuple))
            try:
                # (the rate is the group's, checked by _plan)
                checked, _ = inner.check_step(part[0] if single else part)
            except (ValueError, TypeError) as e:
                raise type(e)(self._renamed(str(e), g, offset, single)) from None
            out.append(checked)
            offset += size
        if self._device.host and len(out) > 1:
            k = 0
            for g, checked in enumerate(out):
                for a in checked:
                    shared = self._aliased(a)
                    if shared is not None:  # (its own group's memory: refused above)
                        raise ValueError(f"grad[{k}] shares memory with {shared}, which the "
                                         "step writes; pass a copy")
                    k += 1
        return out

    @staticmethod
    def _renamed(message, g, offset, single):
        """A group optimizer's error message with its gradient named as in the flat list."""
        where = f"param_groups[{g}]"
        m = re.match(r"grad(\[(\d+)\])?(?!\w)", message)
        if m is None:
            return f"{where}: {message}"
        j = int(m.group(2) or 0)
        own = f"{where}['params']" + ("" if single else f"[{j}]")
        return f"grad[{offset + j}] (of {own}){message[m.end():]}"

    def _aliased(self, a):
        """The label of the owned memory that gradient ``a`` shares, or None."""
        lo, hi = _backend.byte_bounds(a)
        spans = self._spans
        j = bisect_right(self._span_starts, hi - 1) - 1
        while j >= 0 and spans[j][1] > lo:  # disjoint spans: their ends increase too
            if np.shares_memory(a, spans[j][2]):
                return spans[j][3]
            j -= 1
        return None

    def _refuse_nonfinite(self, inners, grads):
        """True if the step must be skipped; raises for ``nonfinite="raise"``."""
        if self._policy == "apply":
            return False
        if all(self._device.all_finite(inner.layout, part) for inner, part in zip(inners, grads)):
            return False
        if self._policy == "raise":
            raise FloatingPointError("the gradient holds NaN or inf; the step was not taken "
                                     "(nonfinite='raise')")
        self.skipped += 1
        return True

    def step_rows(self, rows, grad, *, index=0, lr=None):
        """Update rows ``rows`` of one parameter array, as :meth:`rmsopt.Optimizer.step_rows`.

        ``index`` counts the parameter arrays flat, in group order, as :meth:`step` takes
        the gradients; the array's group steps with its hyperparameters (``clip_norm`` by
        these rows' norm) and every group's ``t`` advances (one step). No ``lr``: set
        ``param_groups[i]["lr"]``.
        """
        with self._guard:
            self._no_lr(lr)
            sizes = self._sizes()
            if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                raise TypeError(f"index must be an integer, got {type(index).__name__} {index!r}")
            if not 0 <= index < sum(sizes):
                raise ValueError(f"index {index} is out of range for {sum(sizes)} parameter "
                                 "arrays (all groups, in order)")
            g, j = 0, int(index)
            while j >= sizes[g]:
                j, g = j - sizes[g], g + 1
            plan = self._plan()
            inner = plan.inners[g]
            if self._device.host and len(plan.inners) > 1 and isinstance(grad, np.ndarray):
                shared = self._aliased(grad)  # (a rebuilt group's new state is not exposed)
                if shared is not None:
                    raise ValueError(f"grad shares memory with {shared}, which the step "
                                     "writes; pass a copy")
            before = inner.t
            with interrupts_deferred():
                try:
                    inner.step_rows(rows, grad, index=j, lr=plan.rates[g])
                except (ValueError, TypeError) as e:
                    raise type(e)(f"param_groups[{g}]: {e}") from None
                if plan.rebuilt:
                    self._joint = self._joint_sets(plan.inners)
                self._commit(plan)
                if inner.t == before:  # skipped (nonfinite="skip")
                    self.skipped += 1
                    return
                for other in plan.inners:
                    other.t = inner.t

    # ------------------------------------------------------------- attributes

    @property
    def t(self):
        """The number of steps taken (shared by all groups)."""
        return self._inners[0].t

    @t.setter
    def t(self, value):
        for inner in self._inners:
            inner.t = value

    @property
    def nonfinite(self):
        """As :attr:`rmsopt.Optimizer.nonfinite`, over all the groups' gradients: with
        ``"skip"`` or ``"raise"`` a NaN or inf in any group stops the whole step."""
        return self._policy

    @nonfinite.setter
    def nonfinite(self, value):
        for inner in self._inners:
            inner.nonfinite = value  # checked as Optimizer.nonfinite checks it
        self._policy = value

    @property
    def backend(self):
        return self._backend_name

    @property
    def dtype(self):
        return self._inners[0].dtype

    @property
    def state(self):
        """Per group, its flat state buffers by slot name (live, not copies)."""
        return [inner.state for inner in self._inners]

    def check_lr(self, lr):
        """``lr`` checked as the constructor checks ``lr``, as a float."""
        return self._inners[0].check_lr(lr)

    def __repr__(self):
        groups = []
        for group in self.param_groups:
            shown = [f"'params': {len(_arrays_of(group['params']))} array(s)"]
            shown += [f"{k!r}: {v!r}" for k, v in group.items()
                      if k != "params" and not _same(v, self.defaults.get(k))]
            groups.append("{" + ", ".join(shown) + "}")
        defaults = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return (f"{type(self).__name__}([{', '.join(groups)}], {defaults}, "
                f"backend={self.backend!r}, t={self.t})")

    # ----------------------------------------------------------- checkpoints

    def state_dict(self):
        """Everything needed to resume, every group included (format version 2).

        ``param_groups`` are taken as they are now (checked as :meth:`step` checks them,
        an edit applied). Arrays are host copies.
        """
        with self._guard:
            plan = self._plan()
            if plan.rebuilt:
                self._joint = self._joint_sets(plan.inners)
            self._commit(plan)
            parts = []
            for group, inner in zip(self.param_groups, self._inners):
                d = inner.state_dict()
                lr = group["lr"]
                d["hyper"] = dict(d["hyper"], lr=hyper.learning_rate(lr(0) if callable(lr)
                                                                     else lr))
                try:
                    d["schedule"] = schedules.to_spec(lr) if callable(lr) else None
                except TypeError as e:
                    raise TypeError(f"param_groups[{len(parts)}]: {e}") from None
                parts.append(d)
            return checkpoint.make_groups(optimizer=self._base.__name__, t=self.t,
                                          groups=parts)

    def load_state_dict(self, d):
        """Restore a :meth:`state_dict`: every group validated (as
        :meth:`rmsopt.Optimizer.load_state_dict` validates one), all or nothing.

        Parameters are overwritten in place; ``param_groups`` get the saved
        hyperparameters (the dicts are updated, not replaced).
        """
        with self._guard:
            d = checkpoint.validate_groups(d, optimizer=self._base.__name__,
                                           groups=len(self._inners))
            before = [inner.state_dict() for inner in self._inners]
            done = []
            with interrupts_deferred():
                try:
                    for g, (inner, part) in enumerate(zip(self._inners, d["groups"])):
                        try:
                            inner.load_state_dict(part)
                        except (ValueError, TypeError) as e:
                            raise type(e)(f"checkpoint param_groups[{g}]: {e}") from None
                        done.append(inner)
                except BaseException:
                    for inner, saved in zip(done, before):  # nothing stays half loaded
                        inner.load_state_dict(saved)
                    raise
                for group, inner in zip(self.param_groups, self._inners):
                    lr = inner.hyper["lr"] if inner.schedule is None else inner.schedule
                    values = {"params": group["params"], **dict(inner.hyper, lr=lr)}
                    group.clear()
                    group.update(values)
                plan = _Plan(self._inners, None, [dict(group) for group in self.param_groups],
                             True)
                self._joint = self._joint_sets(plan.inners)
                self._commit(plan)


def _per_group(name, instead):
    def refuse(self):
        raise AttributeError(f"{type(self).__name__} built from param groups has no single "
                             f"{name!r}: {instead}")
    return property(refuse, doc=f"Not on an optimizer with param groups: {instead}.")


_ENGINE = "the engine interface drives one optimizer, and minimize and rmsopt.dask take no groups"
for _name, _instead in {
        "hyper": "see param_groups (each group's) and defaults (the constructor's)",
        "schedule": "each group's lr is in param_groups[i]['lr']",
        "rate": "each group's lr is in param_groups[i]['lr']",
        "check_step": "step checks every group before it updates any",
        "carry": "each group's optimizer carries its own (in its part of state_dict()['groups'])",
        "advance_carry": _ENGINE,
        "apply": _ENGINE, "host_scalars": _ENGINE, "layout": _ENGINE, "variant": _ENGINE,
        "buffers": _ENGINE}.items():
    setattr(Grouped, _name, _per_group(_name, _instead))
del _name, _instead


__all__ = ["ALIASES", "PAIRS", "Grouped"]
