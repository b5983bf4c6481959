"""PyTorch optimizers over rmsopt's kernels: drop-in ``torch.optim.Optimizer`` subclasses.

:class:`RMSprop`, :class:`Adam`, :class:`AdamW`, :class:`SGD`, :class:`Adagrad` and
:class:`Adadelta` take ``torch.optim``'s arguments with its defaults (RMSprop in rmsopt's
``convention="torch"``) and reproduce its updates; :class:`Lion` and :class:`AdaBelief`, which
torch lacks, compute as rmsopt's (that is optax's), and :class:`LaProp` as rmsopt's (timm's). Each also takes the extras of the rmsopt
optimizer it runs on (``nesterov``, ``bias_correction``, ``eps_in_sqrt``, ``clip_norm``, ...)
as keywords. The math of each is documented on that rmsopt class (:class:`rmsopt.RMSprop`,
...), and :mod:`rmsopt.hyper` maps torch's names onto rmsopt's (``alpha`` is ``rho``,
``square_avg`` is ``nu``, ``momentum_buffer`` is ``buf``).

Usage is torch's: parameters as tensors or param-group dicts with per-group hyperparameters,
``step(closure=None)`` returning the closure's loss, ``zero_grad()``, parameters without a
``.grad`` skipped (each parameter keeps its own step count, as torch), ``param_groups`` with
torch's names, ``state_dict()``/``load_state_dict()`` of tensors (``torch.save`` and
``torch.load(weights_only=True)`` round-trip it; it also loads the state dict of the
matching ``torch.optim`` optimizer), and ``torch.optim.lr_scheduler`` schedulers.

How it works: the parameters of a group that step together (one dtype, one step count)
share one rmsopt optimizer over NumPy views of the tensors (``tensor.detach().numpy()``, no
copy), so a step is one kernel call per group in the common case and updates the tensors in
place. When only some of a group's parameters have a gradient, the group splits into cohorts
that keep their own step counts (their state carried over exactly). Any hyperparameter of
``param_groups`` may be changed between steps: ``lr`` is passed to each step, and a change of
another one rebuilds the group's optimizers with the state carried over (that step takes
about twice as long: ``OneCycleLR`` with ``cycle_momentum`` changes ``betas`` or
``momentum`` at every step).

Supported: CPU tensors of float32 or float64, contiguous, dense gradients. Refused with an
error that names the argument (nothing is changed): CUDA tensors (not supported yet),
complex, half and integer tensors, non-contiguous parameters, sparse gradients, and torch
options that rmsopt has no equivalent of: ``capturable=True``, ``differentiable=True``,
``fused=True``, SGD's ``dampening != 0``. ``foreach`` is accepted and has no effect (the
step is one fused, threaded kernel either way). Parameters with no elements are never
updated and have no state.

Importing :mod:`rmsopt` does not import torch; this module does (``pip install
"rmsopt[torch]"``).

Examples
--------
>>> import torch, rmsopt.torch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> model = torch.nn.Linear(3, 1, dtype=torch.float64)
>>> X = torch.randn(64, 3, dtype=torch.float64)
>>> y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
>>> opt = rmsopt.torch.RMSprop(model.parameters(), lr=1e-2)
>>> sched = torch.optim.lr_scheduler.StepLR(opt, step_size=200, gamma=0.5)
>>> for _ in range(600):
...     opt.zero_grad()
...     loss = torch.mean((model(X).squeeze(1) - y) ** 2)
...     loss.backward()
...     opt.step()
...     sched.step()
>>> bool(loss < 1e-3), opt.state_dict()["state"][0]["step"].item()
(True, 600.0)
"""

import math
import numbers
from collections.abc import Mapping

import numpy as np

try:
    import torch
except ImportError as e:  # the message names the extra that brings it
    raise ImportError(f"rmsopt.torch needs PyTorch ({e}); install it with "
                      "pip install \"rmsopt[torch]\" (the CPU build is enough)") from e

from . import optimizer as _core

__all__ = ["RMSprop", "Adam", "AdamW", "SGD", "Adagrad", "Adadelta", "Lion", "AdaBelief",
           "LaProp"]

_DTYPES = (torch.float32, torch.float64)


# ------------------------------------------------------------------ tensors as arrays

def _plain(value):
    """A hyperparameter as a plain Python value: 0-d tensors become numbers (torch allows a
    tensor ``lr`` and tensor ``betas``), tuples and lists their elements' plain values."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"a tensor hyperparameter must hold one number, got shape "
                            f"{tuple(value.shape)}")
        return value.item()
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    return value


def _param_array(p, name):
    """The NumPy view of parameter tensor ``p`` (shares its memory), or an error naming it."""
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
    if p.device.type != "cpu":
        raise ValueError(f"{name} is on {p.device}; rmsopt.torch supports CPU tensors only "
                         "for now (CUDA tensors are not supported yet)")
    if p.layout != torch.strided:
        raise ValueError(f"{name} has layout {p.layout}; rmsopt.torch updates dense tensors")
    if p.dtype.is_complex:
        raise ValueError(f"{name} is complex ({p.dtype}); rmsopt.torch supports float32 and "
                         "float64 parameters (complex ones are not supported yet)")
    if p.dtype not in _DTYPES:
        raise ValueError(f"{name} has dtype {p.dtype}; rmsopt.torch updates float32 or float64 "
                         "tensors in place (convert the model with .double() or .float())")
    if not p.is_contiguous():
        raise ValueError(f"{name} is not contiguous (strides {p.stride()}); rmsopt.torch updates "
                         "parameters in place through a NumPy view: make it contiguous first "
                         "(p.data = p.data.contiguous())")
    try:
        a = p.detach().numpy()
    except RuntimeError as e:  # a tensor with its conjugate or negative bit set
        raise ValueError(f"{name} cannot be viewed as a NumPy array: {e}") from None
    if a.size and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _grad_array(p):
    """The NumPy view of ``p.grad`` (no copy), checked against its parameter; an error's
    message continues the parameter's name."""
    g = p.grad
    if g.layout != torch.strided:
        raise TypeError(f" has a sparse gradient ({g.layout}); rmsopt.torch supports dense "
                        "gradients only")
    if g.dtype != p.dtype or g.shape != p.shape or g.device != p.device:
        raise ValueError(f" has a gradient of {g.dtype} {tuple(g.shape)} on {g.device}, its "
                         f"parameter is {p.dtype} {tuple(p.shape)} on {p.device}")
    try:
        return g.detach().numpy()
    except RuntimeError as e:
        raise ValueError(f"'s gradient cannot be viewed as a NumPy array: {e}") from None


def _or(value, default):
    return default if value is None else value


def _address(a):
    return a.__array_interface__["data"][0]


class _Cohort:
    """Parameters of one group that step together (one dtype, one step count): one rmsopt
    optimizer over NumPy views of the tensors. ``spans[k]`` is the ``(offset, size)`` of
    parameter ``k`` in the optimizer's flat state buffers."""

    __slots__ = ("params", "arrays", "opt", "spans", "layouts")

    def __init__(self, params, arrays, opt):
        self.params, self.arrays, self.opt = params, arrays, opt
        sizes = [a.size for a in arrays]
        offsets = np.cumsum([0] + sizes[:-1]).tolist()
        self.spans = list(zip(offsets, sizes))
        self.layouts = [(_address(a), p.dtype, p.shape) for p, a in zip(params, arrays)]

    def moved(self):
        """The index of a parameter whose storage was replaced (``p.data = ...``), or None."""
        for k, (p, (address, dtype, shape)) in enumerate(zip(self.params, self.layouts)):
            if p.data_ptr() != address or p.dtype != dtype or p.shape != shape:
                return k
        return None


# ------------------------------------------------------------------------- base class

def _refuse_true(name, why):
    def check(value, where):
        value = _plain(value)
        if value is None or (isinstance(value, (bool, np.bool_)) and not value):
            return
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where}: {name} must be True or False, got "
                            f"{type(value).__name__} {value!r}")
        raise ValueError(f"{where}: {name}=True is not supported by rmsopt.torch ({why})")
    return check


def _accept_flag(name):
    def check(value, where):
        if value is not None and not isinstance(_plain(value), (bool, np.bool_)):
            raise TypeError(f"{where}: {name} must be None, True or False, got "
                            f"{type(value).__name__} {value!r}")
    return check


def _refuse_dampening(value, where):
    value = _plain(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: dampening must be a real number, got "
                        f"{type(value).__name__} {value!r}")
    if value != 0:
        raise ValueError(f"{where}: dampening={value!r} is not supported by rmsopt.torch "
                         "(rmsopt's SGD momentum has no dampening); use dampening=0")


_FOREACH = _accept_flag("foreach")
_CAPTURABLE = _refuse_true("capturable", "CUDA graph capture; it steps CPU tensors")
_DIFFERENTIABLE = _refuse_true("differentiable", "its kernels do not record autograd graphs")
_FUSED = _refuse_true("fused", "its step is one fused kernel already; leave fused unset")


class _Adapter(torch.optim.Optimizer):
    """Bookkeeping between torch's param groups and rmsopt optimizers (see the module doc).

    A subclass sets ``_core_class`` (the rmsopt class), ``_renamed`` (torch hyperparameter
    name -> rmsopt keyword), ``_torch_only`` (name -> check of a torch option that does not
    reach rmsopt), ``_state_names`` (rmsopt slot -> torch state name) and
    ``_step_in_state`` (whether torch's state has ``step``) and, for a rule that carries a
    host value between steps (LaProp's average rate), ``_carry_name`` (its torch state name).
    """

    _core_class = None
    _renamed = {}
    _torch_only = {}
    _state_names = {}
    _step_in_state = True
    _carry_name = None
    _derived_names = ()  # state names of torch's that rmsopt derives (accepted, not read)

    def __init__(self, params, defaults):
        self._cohorts = []   # per group: list of _Cohort
        self._options = []   # per group: the rmsopt keywords (lr aside) its cohorts were built with
        self._members = []   # per group: the ids of its parameters, to notice an edited list
        self._hyper_names = [k for k in defaults if k != "lr" and k not in self._torch_only]
        super().__init__(params, defaults)
        self.state = _StateView(self)

    # ------------------------------------------------------------ groups and cohorts

    def add_param_group(self, param_group):
        """Add a param group (torch's method); it is checked completely first."""
        super().add_param_group(param_group)
        index = len(self.param_groups) - 1
        group = self.param_groups[index]
        try:
            options = self._group_options(group, index)
            cohorts = self._fresh_cohorts(group, index, options)
        except Exception:
            self.param_groups.pop()
            raise
        self._cohorts.append(cohorts)
        self._options.append(options)
        self._members.append(tuple(map(id, group["params"])))

    def _group_options(self, group, index):
        """The rmsopt keywords of ``group`` (lr aside), torch-only options checked."""
        where = f"param_groups[{index}]"
        for name, check in self._torch_only.items():
            check(group.get(name), where)
        return {self._renamed.get(k, k): _plain(group[k]) for k in self._hyper_names}

    def _build(self, arrays, options, lr, where):
        """An rmsopt optimizer over ``arrays``, its errors prefixed with where they arose."""
        try:
            return self._core_class(arrays, lr=_plain(lr), **options)
        except (ValueError, TypeError) as e:
            renamed = "".join(f" (rmsopt's {new} is {old} here)"
                              for old, new in self._renamed.items() if new in str(e))
            raise type(e)(f"{where}: {e}{renamed}") from None

    def _arrays(self, params, index):
        """The NumPy views of a group's parameters, checked, none overlapping another."""
        where = f"param_groups[{index}]['params']"
        arrays = [_param_array(p, f"{where}[{k}]") for k, p in enumerate(params)]
        # contiguous views: each is the byte range [start, start + nbytes); sorted by start,
        # a range overlaps an earlier one exactly when it starts before the furthest end
        ranges = sorted((_address(a), _address(a) + a.nbytes, k)
                        for k, a in enumerate(arrays) if a.size)
        furthest = (0, None)
        for start, end, k in ranges:
            if start < furthest[0]:
                first, second = sorted((k, furthest[1]))
                raise ValueError(f"{where}[{first}] and {where}[{second}] share memory (the "
                                 "same tensor twice?); each parameter may appear once")
            furthest = max(furthest, (end, k), key=lambda e: e[0])
        return arrays

    def _fresh_cohorts(self, group, index, options):
        """One cohort per dtype (at step count 0) over the group's non-empty parameters."""
        params = group["params"]
        arrays = self._arrays(params, index)
        cohorts = []
        for dtype in _DTYPES:
            chosen = [k for k, p in enumerate(params) if p.dtype == dtype and arrays[k].size]
            if chosen:
                opt = self._build([arrays[k] for k in chosen], options, group["lr"],
                                  f"param_groups[{index}]")
                cohorts.append(_Cohort([params[k] for k in chosen],
                                       [arrays[k] for k in chosen], opt))
        return cohorts

    def _carried(self, cohort, keep, options, lr, where):
        """A cohort of ``cohort``'s parameters ``keep`` (indices) with ``options``, carrying
        their state (the slots both configurations have) and step count over exactly."""
        arrays = [cohort.arrays[k] for k in keep]
        opt = self._build(arrays, options, lr, where)
        old = cohort.opt.state
        for name, buf in opt.state.items():
            if name in old:
                parts = [old[name][o:o + n] for o, n in (cohort.spans[k] for k in keep)]
                buf[...] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        opt.t, opt.carry = cohort.opt.t, cohort.opt.carry
        return _Cohort([cohort.params[k] for k in keep], arrays, opt)

    # ------------------------------------------------------------------------- step

    def step(self, closure=None):
        """One update of every parameter that has a gradient.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss; called under
            ``torch.enable_grad()`` before the update.

        Returns
        -------
        The closure's loss, or None.

        Notes
        -----
        Everything (every group's options, parameters and gradients) is checked before any
        parameter is updated; a refused step changes nothing.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plans = [self._plan(index, group) for index, group in enumerate(self.param_groups)]
        for index, (cohorts, options, _) in enumerate(plans):
            self._cohorts[index], self._options[index] = cohorts, options
        stepped = []
        for _, _, work in plans:
            for cohort, grads, lr in work:
                cohort.opt.step(grads, lr=lr)
                stepped.extend(cohort.params)
        if stepped:  # autograd sees the in-place change (a stale graph is then refused)
            torch.autograd.graph.increment_version(stepped)
        return loss

    def _plan(self, index, group):
        """``(cohorts, options, work)`` for one group, checked; nothing is changed yet.

        ``work`` lists ``(cohort, grads, lr)`` for the cohorts whose every parameter has a
        gradient; a cohort where only some have one is split in two first.
        """
        where = f"param_groups[{index}]"
        if tuple(map(id, group["params"])) != self._members[index]:
            raise ValueError(f"{where}['params'] was changed after it was added; add "
                             "parameters with add_param_group")
        options = self._group_options(group, index)
        lr = _plain(group["lr"])
        cohorts = self._cohorts[index]
        if options != self._options[index]:  # rebuilt with the new hyperparameters
            cohorts = [self._carried(c, range(len(c.params)), options, lr, where)
                       for c in cohorts]
        for c in cohorts:
            moved = c.moved()
            if moved is not None:
                k = next(k for k, p in enumerate(group["params"]) if p is c.params[moved])
                raise ValueError(f"{where}['params'][{k}] has new storage, dtype or shape "
                                 "(p.data was replaced) since the optimizer was built; build "
                                 "a new optimizer (load_state_dict carries the state)")
        planned, work = [], []
        for c in cohorts:
            has = [p.grad is not None for p in c.params]
            if all(has):
                planned.append(c)
                work.append(c)
            elif not any(has):
                planned.append(c)
            else:
                active = self._carried(c, [k for k, h in enumerate(has) if h], options, lr,
                                       where)
                planned += [active, self._carried(c, [k for k, h in enumerate(has) if not h],
                                                  options, lr, where)]
                work.append(active)
        if options.get("clip_norm") is not None and len(work) > 1:
            raise ValueError(f"{where}: clip_norm clips by the norm of the parameters that step "
                             "together, and this group's parameters are at different step "
                             "counts or dtypes; put them in separate groups")
        steps = []
        for c in work:
            grads = self._grads(c, group, where)
            try:
                rate = c.opt.rate(lr)
            except (ValueError, TypeError) as e:
                raise type(e)(f"{where}: {e}") from None
            steps.append((c, grads, rate))
        return planned, options, steps

    @staticmethod
    def _grads(cohort, group, where):
        """The gradients of ``cohort``'s parameters as NumPy views, checked."""
        grads = []
        for p in cohort.params:
            try:
                grads.append(_grad_array(p))
            except (ValueError, TypeError) as e:
                k = next(k for k, q in enumerate(group["params"]) if q is p)
                raise type(e)(f"{where}['params'][{k}]{e}") from None
        return grads

    # --------------------------------------------------------------- state dicts

    def _state_of(self, cohort, k, copy):
        """Torch's per-parameter state of parameter ``k`` of ``cohort``."""
        p = cohort.params[k]
        offset, size = cohort.spans[k]
        entry = {}
        if self._step_in_state:
            entry["step"] = torch.tensor(float(cohort.opt.t), dtype=torch.float64)
        for name, buf in cohort.opt.state.items():
            view = torch.from_numpy(buf[offset:offset + size]).view(p.shape)
            entry[self._state_names[name]] = view.clone() if copy else view
        if self._carry_name is not None:
            entry[self._carry_name] = torch.tensor(cohort.opt.carry, dtype=torch.float64)
        if not self._step_in_state and not entry:
            entry["momentum_buffer"] = None  # as torch's SGD without momentum
        return entry

    def _stepped(self):
        """``(parameter, cohort, k)`` for every parameter stepped at least once."""
        for cohorts in self._cohorts:
            for c in cohorts:
                if c.opt.t:
                    for k, p in enumerate(c.params):
                        yield p, c, k

    def __getstate__(self):
        raise TypeError(f"{type(self).__name__} cannot be pickled or deep-copied (it holds views "
                        "of the parameters' memory); save its state_dict() instead")

    def state_dict(self):
        """The state as torch lays it out, of tensors (copies): ``{"state": {index: {...}},
        "param_groups": [...]}``, with torch's state names (``step`` as a float64 tensor).

        ``torch.save`` writes it and ``torch.load(weights_only=True)`` reads it back; a
        parameter never stepped has no entry, as in torch.
        """
        for hook in self._optimizer_state_dict_pre_hooks.values():  # torch's hooks, as its
            hook(self)
        indices, groups = {}, []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [indices.setdefault(id(p), len(indices)) for p in group["params"]]
            groups.append(packed)
        state = {indices[id(p)]: self._state_of(c, k, copy=True) for p, c, k in self._stepped()}
        state_dict = {"state": dict(sorted(state.items())), "param_groups": groups}
        for hook in self._optimizer_state_dict_post_hooks.values():
            state_dict = _or(hook(self, state_dict), state_dict)
        return state_dict

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict` (also one of the matching ``torch.optim`` optimizer):
        validated completely first (group sizes, hyperparameters, state names, shapes, step
        counts, values as rmsopt's checkpoints are), then applied all at once."""
        for hook in self._optimizer_load_state_dict_pre_hooks.values():  # torch's hooks
            state_dict = _or(hook(self, state_dict), state_dict)
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, this "
                             f"optimizer has {len(self.param_groups)}")
        built = []
        for index, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"loaded state dict's param_groups[{index}] has "
                                 f"{len(saved['params'])} parameters, this optimizer's has "
                                 f"{len(group['params'])}")
            # hyperparameters the saved group lacks (rmsopt's extras, in a torch.optim state
            # dict) keep their current values
            new_group = {**group, **saved, "params": group["params"]}
            options = self._group_options(new_group, index)
            entries = [saved_state.get(i) for i in saved["params"]]
            built.append((new_group, options, self._loaded_cohorts(new_group, index, options,
                                                                   entries)))
        for index, (group, options, cohorts) in enumerate(built):
            self.param_groups[index] = group
            self._cohorts[index], self._options[index] = cohorts, options
            self._members[index] = tuple(map(id, group["params"]))
        for hook in self._optimizer_load_state_dict_post_hooks.values():
            hook(self)

    def _loaded_cohorts(self, group, index, options, entries):
        """Cohorts of ``group`` by (dtype, step count), their state from ``entries`` (torch's
        per-parameter dicts or None), validated by rmsopt's ``load_state_dict``."""
        where = f"param_groups[{index}]"
        params = group["params"]
        arrays = self._arrays(params, index)
        # the state slots these hyperparameters use, from a one-element optimizer
        slots = list(self._build([np.zeros(1)], options, group["lr"], where).state)
        keys = {}
        for k, (p, entry) in enumerate(zip(params, entries)):
            name = f"loaded state of {where}['params'][{k}]"
            t = self._loaded_step(entry, slots, name)
            carry = self._loaded_carry(entry, name)
            if arrays[k].size:  # parameters step together at one count (and carried value)
                keys.setdefault((p.dtype, t, carry), []).append(k)
        cohorts = []
        for (dtype, t, carry), chosen in keys.items():
            opt = self._build([arrays[k] for k in chosen], options, group["lr"], where)
            cohort = _Cohort([params[k] for k in chosen], [arrays[k] for k in chosen], opt)
            self._fill(cohort, [entries[k] for k in chosen], t, carry,
                       [f"{where}['params'][{k}]" for k in chosen])
            cohorts.append(cohort)
        return cohorts

    def _loaded_step(self, entry, slots, name):
        """The step count of a loaded per-parameter state (0 without one), its names checked."""
        if entry is None:
            return 0
        if not isinstance(entry, Mapping):
            raise ValueError(f"{name} must be a dict, got {type(entry).__name__}")
        present = {k for k, v in entry.items() if v is not None} - set(self._derived_names)
        expected = {self._state_names[s] for s in slots}
        if self._step_in_state:
            expected.add("step")
        if self._carry_name is not None and present:
            expected.add(self._carry_name)
        # torch's SGD stores no step; rmsopt.torch's SGD stores one
        if not self._step_in_state and present == expected | {"step"}:
            expected.add("step")
        if present != expected:
            raise ValueError(f"{name} has {sorted(present)}, expected {sorted(expected)} for "
                             "these hyperparameters")
        if "step" not in present:
            return 1 if present else 0
        step = _plain(entry["step"])
        if isinstance(step, bool) or not isinstance(step, numbers.Real) \
                or not math.isfinite(step) or step < 0 or step != int(step):
            raise ValueError(f"{name}: step {step!r} is not a whole number >= 0")
        return int(step)

    def _loaded_carry(self, entry, name):
        """The carried value of a loaded per-parameter state (0.0 without one)."""
        if self._carry_name is None or not entry:
            return 0.0
        value = _plain(entry[self._carry_name])
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ValueError(f"{name}: {self._carry_name} {value!r} is not a finite number")
        return float(value)

    def _fill(self, cohort, entries, t, carry, names):
        """Write loaded state into ``cohort`` through rmsopt's validated ``load_state_dict``."""
        d = cohort.opt.state_dict()
        for slot in d["state"]:
            torch_name = self._state_names[slot]
            parts = []
            for p, entry, name in zip(cohort.params, entries, names):
                if entry is None or entry.get(torch_name) is None:
                    parts.append(np.asarray(d["state"][slot][:p.numel()]))  # initial values
                    continue
                value = entry[torch_name]
                if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"loaded state {torch_name!r} of {name} must be a tensor "
                                     f"of shape {tuple(p.shape)}, got "
                                     f"{getattr(value, 'shape', type(value).__name__)}")
                parts.append(value.detach().cpu().to(p.dtype).reshape(-1).numpy())
            d["state"][slot] = np.concatenate(parts)
        d["t"] = t
        if cohort.opt.rule.carried:
            d["carry"] = {cohort.opt.rule.carried: carry}
        try:
            cohort.opt.load_state_dict(d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"loaded state of {', '.join(names)}: {e}") from None


class _StateView(Mapping):
    """``optimizer.state``: parameter -> torch's per-parameter state, whose tensors are live
    views of rmsopt's buffers (``step`` is a copy). A parameter never stepped maps to ``{}``;
    iteration yields the stepped ones."""

    def __init__(self, owner):
        self._owner = owner

    def _find(self, p):
        for cohorts in self._owner._cohorts:
            for c in cohorts:
                for k, q in enumerate(c.params):
                    if q is p:
                        return c, k
        return None

    def __getitem__(self, p):
        found = self._find(p)
        if found is None:
            if any(p is q for g in self._owner.param_groups for q in g["params"]):
                return {}  # a parameter without elements
            raise KeyError("not a parameter of this optimizer")
        c, k = found
        return self._owner._state_of(c, k, copy=False) if c.opt.t else {}

    def __iter__(self):
        return (p for p, _, _ in self._owner._stepped())

    def __len__(self):
        return sum(1 for _ in self._owner._stepped())


# --------------------------------------------------------------------------- classes

_EXTRAS_DOC = """
    Other parameters are torch's (same names, defaults and meaning); rmsopt's extras are
    keyword-only and may be set per group like any hyperparameter. ``foreach`` has no effect
    (one fused kernel per group); ``capturable``, ``differentiable`` and ``fused`` must stay
    off (a ValueError otherwise). See the module documentation for what is supported.
"""


class RMSprop(_Adapter):
    r"""``torch.optim.RMSprop`` on rmsopt's kernels (:class:`rmsopt.RMSprop`, convention
    ``"torch"``).

    .. math::

        \nu_t = \alpha\,\nu_{t-1} + (1-\alpha)\,g_t^2, \qquad
        p_t = p_{t-1} - \eta\,\frac{g_t}{\sqrt{\nu_t} + \epsilon}

    with torch's ``momentum``, ``centered`` (the variance clamped at 0 before the root, so it
    stays finite where torch's can turn NaN), L2 ``weight_decay`` and ``maximize``.

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, alpha, eps, weight_decay, momentum, centered, maximize
        As ``torch.optim.RMSprop`` (``alpha`` is rmsopt's ``rho``).
    nesterov, bias_correction, eps_in_sqrt, initial_scale, lr_in_momentum, \
decoupled_weight_decay, clip_value, clip_norm, convention
        rmsopt's extras, as :class:`rmsopt.RMSprop` documents them. ``convention``
        (default ``"torch"``) fills those of them left None; lr, alpha and eps keep torch's
        defaults whatever the convention.
    """ + _EXTRAS_DOC

    _core_class = _core.RMSprop
    _renamed = {"alpha": "rho"}
    _torch_only = {"capturable": _CAPTURABLE, "foreach": _FOREACH,
                   "differentiable": _DIFFERENTIABLE}
    _state_names = {"nu": "square_avg", "mu": "grad_avg", "buf": "momentum_buffer"}

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False, *, nesterov=False, bias_correction=False,
                 eps_in_sqrt=None, initial_scale=None, lr_in_momentum=None,
                 decoupled_weight_decay=None, clip_value=None, clip_norm=None,
                 convention="torch"):
        super().__init__(params, _defaults(locals()))


class SGD(_Adapter):
    r"""``torch.optim.SGD`` on rmsopt's kernels (:class:`rmsopt.SGD`).

    :math:`p \leftarrow p - \eta g`; with momentum :math:`m`,
    :math:`b \leftarrow m b + g,\ p \leftarrow p - \eta b` (Nesterov:
    :math:`p \leftarrow p - \eta (g + m b)`). ``dampening`` must be 0 (rmsopt has none).

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, momentum, dampening, weight_decay, nesterov, maximize
        As ``torch.optim.SGD``; ``dampening != 0`` is a ValueError.
    lr_in_momentum, decoupled_weight_decay, clip_value, clip_norm
        rmsopt's extras, as :class:`rmsopt.SGD` documents them.
    """ + _EXTRAS_DOC

    _core_class = _core.SGD
    _torch_only = {"dampening": _refuse_dampening, "foreach": _FOREACH,
                   "differentiable": _DIFFERENTIABLE, "fused": _FUSED}
    _state_names = {"buf": "momentum_buffer"}
    _step_in_state = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
                 *, maximize=False, foreach=None, differentiable=False, fused=None,
                 lr_in_momentum=False, decoupled_weight_decay=False, clip_value=None,
                 clip_norm=None):
        super().__init__(params, _defaults(locals()))

    def _state_of(self, cohort, k, copy):
        entry = super()._state_of(cohort, k, copy)
        entry["step"] = torch.tensor(float(cohort.opt.t), dtype=torch.float64)
        return entry


class Adagrad(_Adapter):
    r"""``torch.optim.Adagrad`` on rmsopt's kernels (:class:`rmsopt.AdaGrad`).

    :math:`s \leftarrow s + g^2,\ p \leftarrow p - \tilde\eta\, g / (\sqrt{s} + \epsilon)` with
    :math:`\tilde\eta = \eta / (1 + (t-1)\,\mathrm{lr\_decay})`, ``t`` the parameter's step.

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize
        As ``torch.optim.Adagrad``.
    eps_in_sqrt, decoupled_weight_decay, clip_value, clip_norm
        rmsopt's extras, as :class:`rmsopt.AdaGrad` documents them.
    """ + _EXTRAS_DOC

    _core_class = _core.AdaGrad
    _torch_only = {"foreach": _FOREACH, "differentiable": _DIFFERENTIABLE, "fused": _FUSED}
    _state_names = {"acc": "sum"}

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None,
                 eps_in_sqrt=False, decoupled_weight_decay=False, clip_value=None,
                 clip_norm=None):
        super().__init__(params, _defaults(locals()))


class Adadelta(_Adapter):
    r"""``torch.optim.Adadelta`` on rmsopt's kernels (:class:`rmsopt.AdaDelta`).

    .. math::

        \nu \leftarrow \rho\nu + (1-\rho) g^2,\quad
        d = \frac{\sqrt{u + \epsilon}}{\sqrt{\nu + \epsilon}}\, g,\quad
        u \leftarrow \rho u + (1-\rho) d^2,\quad p \leftarrow p - \eta d

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, rho, eps, weight_decay, maximize
        As ``torch.optim.Adadelta``.
    decoupled_weight_decay, clip_value, clip_norm
        rmsopt's extras, as :class:`rmsopt.AdaDelta` documents them.
    """ + _EXTRAS_DOC

    _core_class = _core.AdaDelta
    _torch_only = {"foreach": _FOREACH, "capturable": _CAPTURABLE,
                   "differentiable": _DIFFERENTIABLE}
    _state_names = {"nu": "square_avg", "u": "acc_delta"}

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False,
                 decoupled_weight_decay=False, clip_value=None, clip_norm=None):
        super().__init__(params, _defaults(locals()))


class Adam(_Adapter):
    r"""``torch.optim.Adam`` on rmsopt's kernels (:class:`rmsopt.Adam`), AMSGrad included.

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
        \quad p \leftarrow p - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    with ``t`` the parameter's own step count.

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay
        As ``torch.optim.Adam``.
    clip_value, clip_norm
        rmsopt's extras, as :class:`rmsopt.RMSprop` documents them.
    """ + _EXTRAS_DOC

    _core_class = _core.Adam
    _torch_only = {"foreach": _FOREACH, "capturable": _CAPTURABLE,
                   "differentiable": _DIFFERENTIABLE, "fused": _FUSED}
    _state_names = {"m": "exp_avg", "v": "exp_avg_sq", "vmax": "max_exp_avg_sq"}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 clip_value=None, clip_norm=None):
        super().__init__(params, _defaults(locals()))


class AdamW(Adam):
    r"""``torch.optim.AdamW`` on rmsopt's kernels (:class:`rmsopt.AdamW`): Adam with the
    decoupled decay :math:`p \leftarrow (1 - \eta\lambda) p` before the update.

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, betas, eps, weight_decay, amsgrad, maximize
        As ``torch.optim.AdamW`` (``weight_decay`` defaults to 1e-2).
    clip_value, clip_norm
        rmsopt's extras, as :class:`rmsopt.RMSprop` documents them.
    """ + _EXTRAS_DOC

    _core_class = _core.AdamW

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, clip_value=None, clip_norm=None):
        # torch's AdamW keeps decoupled_weight_decay=True in its groups, as its Adam reads it
        _Adapter.__init__(self, params, {**_defaults(locals()), "decoupled_weight_decay": True})


class Lion(_Adapter):
    r"""Lion on rmsopt's kernels, as :class:`rmsopt.Lion` (optax's ``lion``) computes it;
    torch has no Lion of its own.

    .. math::

        p \leftarrow p - \eta\, \operatorname{sign}\big((1-\beta_1) g + \beta_1 m\big),
        \qquad m \leftarrow (1-\beta_2) g + \beta_2 m

    with decoupled weight decay :math:`p \leftarrow p - \eta \lambda p`. State: ``exp_avg``
    (:math:`m`) and ``step``.

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, betas, weight_decay
        :math:`\eta` (default 1e-4), :math:`(\beta_1, \beta_2)` (default (0.9, 0.99)),
        :math:`\lambda` (default 0).
    maximize, decoupled_weight_decay, clip_value, clip_norm
        As :class:`rmsopt.Lion` takes them.
    """

    _core_class = _core.Lion
    _state_names = {"mu": "exp_avg"}

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False,
                 decoupled_weight_decay=True, clip_value=None, clip_norm=None):
        super().__init__(params, _defaults(locals()))


class AdaBelief(_Adapter):
    r"""AdaBelief on rmsopt's kernels, as :class:`rmsopt.AdaBelief` (optax's ``adabelief``)
    computes it (not the ``adabelief_pytorch`` package's variant); torch has none of its own.

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
        s \leftarrow \beta_2 s + (1-\beta_2)(g - m)^2 + \epsilon_{root}, \quad
        p \leftarrow p - \eta\, \frac{m / (1-\beta_1^t)}{\sqrt{s / (1-\beta_2^t)} + \epsilon}

    State: ``exp_avg`` (:math:`m`), ``exp_avg_var`` (:math:`s`) and ``step``.

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, betas, eps, weight_decay
        Defaults 1e-3, (0.9, 0.999), 1e-16, 0 (decoupled, as optax chains it).
    eps_root, maximize, decoupled_weight_decay, clip_value, clip_norm
        As :class:`rmsopt.AdaBelief` takes them.
    """

    _core_class = _core.AdaBelief
    _state_names = {"mu": "exp_avg", "nu": "exp_avg_var"}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0, *,
                 eps_root=1e-16, maximize=False, decoupled_weight_decay=True, clip_value=None,
                 clip_norm=None):
        super().__init__(params, _defaults(locals()))


class LaProp(_Adapter):
    r"""LaProp on rmsopt's kernels, as :class:`rmsopt.LaProp` (timm's ``LaProp``) computes it;
    torch has none of its own.

    .. math::

        \nu \leftarrow \beta_2 \nu + (1-\beta_2) g^2, \quad
        m \leftarrow \beta_1 m + \eta (1-\beta_1) \frac{g}{\sqrt{\nu/(1-\beta_2^t)} + \epsilon},
        \quad p \leftarrow p - \frac{\eta}{A_t} m

    then decoupled weight decay :math:`p \leftarrow p - \eta\lambda p`. State as timm's:
    ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`\nu`), ``step``, ``exp_avg_lr_1``
    (:math:`A_t`, the average of the rates, a float64 tensor) and ``exp_avg_lr_2``
    (:math:`1-\beta_2^t`, written for timm and recomputed from ``step`` on load), so that
    timm's ``LaProp`` and this one load each other's state dicts.

    Parameters
    ----------
    params : iterable of tensors or dicts
        As torch's.
    lr, betas, eps, weight_decay
        Defaults 4e-4, (0.9, 0.999), 1e-15, 0 (timm's).
    maximize, decoupled_weight_decay, clip_value, clip_norm
        As :class:`rmsopt.LaProp` takes them.
    """

    _core_class = _core.LaProp
    _state_names = {"mu": "exp_avg", "nu": "exp_avg_sq"}
    _carry_name = "exp_avg_lr_1"
    _derived_names = ("exp_avg_lr_2",)

    def __init__(self, params, lr=4e-4, betas=(0.9, 0.999), eps=1e-15, weight_decay=0.0, *,
                 maximize=False, decoupled_weight_decay=True, clip_value=None, clip_norm=None):
        super().__init__(params, _defaults(locals()))

    def _state_of(self, cohort, k, copy):
        entry = super()._state_of(cohort, k, copy)
        beta2 = cohort.opt.hyper["beta2"]
        entry["exp_avg_lr_2"] = torch.tensor(1.0 - beta2 ** float(cohort.opt.t),
                                             dtype=torch.float64)
        return entry


def _defaults(local):
    """A constructor's keywords (its ``locals()``) as torch's ``defaults`` dict."""
    return {k: v for k, v in local.items() if k not in ("self", "params", "__class__")}
