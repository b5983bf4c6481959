"""Stateful optimizers for hand-written training loops.

An optimizer owns the state of a fixed set of parameter arrays and updates
those arrays in place::

    opt = rmsopt.RMSprop(w, lr=1e-3)
    for batch in data:
        opt.step(grad(w, batch))

``params`` is one writable, C-contiguous float32/float64 array of any shape,
or a list of them (all of one dtype). A step updates every array with a single
kernel call. ``params`` may also be torch's param groups, a list of dicts with
per-group hyperparameters: :mod:`rmsopt.groups`. The state is kept in flat buffers,
one per slot (``opt.state``).
With ``backend="cuda"`` (or ``"auto"`` given device arrays) the parameters,
gradients and state are device arrays, see :mod:`rmsopt._kernels.cuda`.
"""

import contextlib
import numbers
import signal
import threading
from bisect import bisect_right

import numpy as np

from . import backend as _backend
from . import checkpoint, hyper, rules, schedules


Variant = _backend.Variant


def as_array(value, name):
    """``np.asarray(value)``, with a ragged nested sequence refused in words that name it."""
    try:
        return np.asarray(value)
    except ValueError as e:
        raise ValueError(f"{name} is not an array (a ragged nested sequence?): {e}") from None


def _sparse_rows(rows, grad, a, param, dtype):
    """Checked ``(rows, grad)`` for :meth:`Optimizer.step_rows`: distinct int64 rows in
    bounds and a C-contiguous ``(len(rows), width)`` gradient, duplicates summed."""
    rows = as_array(rows, "rows")
    if rows.size == 0 and rows.ndim == 1:  # [] is a float array to NumPy: no rows
        rows = rows.astype(np.int64)
    if rows.dtype.kind not in "iu" or rows.ndim != 1:
        raise ValueError(f"rows must be a 1-D array of integers, got dtype {rows.dtype} and "
                         f"shape {rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= a.shape[0]):
        bad = rows[(rows < 0) | (rows >= a.shape[0])][0]
        raise ValueError(f"rows contains {bad}, outside [0, {a.shape[0]}) for a parameter of "
                         f"shape {a.shape}")
    rows = rows.astype(np.int64)
    g = as_array(grad, "grad")
    if g.dtype.kind not in "fiu" or g.dtype.itemsize > 8:
        raise ValueError(f"grad has dtype {g.dtype}; expected a real float or integer array")
    expected = (rows.size,) + a.shape[1:]
    if g.shape != expected:
        raise ValueError(f"grad has shape {g.shape}, expected {expected} (one row per index)")
    if np.may_share_memory(g, a) and np.shares_memory(g, a):
        raise ValueError("grad shares memory with its parameter array; pass a copy")
    g = np.ascontiguousarray(g, dtype=dtype).reshape(rows.size, param.shape[1])
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    first = np.empty(rows.size, dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    if not first.all():  # coalesce: a row's gradients add up, left to right in the order given
        run = np.cumsum(first) - 1
        g_sorted = g[order]
        summed = g_sorted[first]
        np.add.at(summed, run[~first], g_sorted[~first])
        rows, g = ordered[first], summed
    return rows, g


@contextlib.contextmanager
def interrupts_deferred():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block until the block is done.

    For steps made of several calls (NumPy and CUDA backends, the Dask optimizers'
    commit): a KeyboardInterrupt between two of them would leave a step half applied. Only where Python's own
    handler is installed and in the main thread (where handlers run); elsewhere
    the block runs as it is.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    held = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        previous(signal.SIGINT, None)  # raises KeyboardInterrupt, the step now whole


def _same(a, b):
    """Equal hyperparameter values: the same number (0 and 0.0 alike), flag, string or None."""
    def number(v):
        return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))

    if number(a) and number(b):
        return a == b
    return type(a) is type(b) and a == b


def _may_share_any(a, arrays):
    """Whether ``a`` may share memory with any of ``arrays`` (a bounds test)."""
    for b in arrays:
        if np.may_share_memory(a, b):
            return True
    return False


#: The registry: method name -> optimizer class. A class registers itself by naming its
#: method, ``class RMSprop(Optimizer, method="rmsprop")``; ``rmsopt.minimize``'s methods,
#: the scipy custom methods of :mod:`rmsopt.methods`, rmsopt's exports, the Dask
#: optimizers and :func:`precompile`'s defaults all come from here.
OPTIMIZERS = {}

#: The class that takes param groups (a list of dicts, as torch's), registered by
#: ``class Grouped(Optimizer, groups=True)`` in :mod:`rmsopt.groups` (imported with rmsopt):
#: ``RMSprop([{"params": ...}, ...])`` is an RMSprop with that class's bookkeeping.
GROUPS = []


class Optimizer:
    """Base class: bookkeeping only; the math is in :mod:`rmsopt.rules`.

    A subclass is one row of the registry (:data:`OPTIMIZERS`): it names its method
    (``class X(Optimizer, method="x")``), sets ``rule`` (a :class:`rmsopt.rules.Rule`)
    and ``_build`` (the :mod:`rmsopt.hyper` builder of its hyperparameter dict), and
    declares its keywords in ``__init__``'s signature and docstring (which
    ``rmsopt.minimize`` reads for its options). ``precompiled`` lists the keyword sets
    whose kernels :func:`precompile` compiles by default.

    Attributes
    ----------
    params : ndarray or list of ndarray
        The arrays being optimised, as given.
    hyper : dict
        The validated hyperparameters (read-only view; build a new optimizer
        to change them).
    t : int
        Number of steps taken.
    state : dict of str -> ndarray
        Flat state buffers of the active slots, over all arrays in order.

    Notes
    -----
    Threads: one optimizer may be stepped from several threads. Its steps take
    turns (a lock): each is applied whole, in some order, and ``t`` counts every
    one. Different optimizers step at the same time, each kernel without the GIL.
    Interrupts: a step is all or nothing. A Ctrl-C during :meth:`step` either
    stops it before anything changed or is raised once the step, ``t``
    included, is complete.
    """

    rule: rules.Rule
    _build = staticmethod(hyper.rmsprop)
    precompiled = ({},)

    def __init_subclass__(cls, method=None, groups=False, **kwargs):
        super().__init_subclass__(**kwargs)
        if method is not None:
            OPTIMIZERS[method] = cls
        if groups:
            GROUPS.append(cls)

    def __new__(cls, params=None, *args, **kwargs):
        if GROUPS and not issubclass(cls, GROUPS[0]) and GROUPS[0].takes(params):
            return super().__new__(GROUPS[0].over(cls))  # param groups: see rmsopt.groups
        return super().__new__(cls)

    def __init__(self, params, options, backend="auto"):
        self._backend = _backend.resolve(backend, params)
        self._device = device = _backend.get(self._backend)
        arrays, self._single = device.param_arrays(params)
        self._schedule = options["lr"] if callable(options.get("lr")) else None
        if self._schedule is not None:  # the rate of the first step stands in for lr
            options = dict(options, lr=self._schedule(0))
        self._hyper = type(self)._build(**options)
        self._dtype = arrays[0].dtype
        hyper.check_dtype(self._hyper, self._dtype)
        self.params = params
        self._arrays = arrays
        self._flat = device.flat(arrays)
        self._layout = device.layout(self._flat)
        # the step count, incremented by the CPU kernel in the call that applies the step
        self._count = np.zeros(1, dtype=np.int64)
        self._nonfinite, self.skipped = "apply", 0
        self._lock = threading.Lock()
        self._configure()
        initial = self.rule.initial(self._hyper)
        self._carry = self.rule.initial_carry(self._hyper)
        self._set_state([device.full(self._layout.n if used else 0, value, self._dtype)
                         for used, value in zip(self._active, initial)])

    def _configure(self):
        """Derive the variant (flags, active slots) from the hyperparameters."""
        self._flags = self.rule.flags(self._hyper)
        self._common = self.rule.common_flags(self._hyper)
        self._active = tuple(bool(u) for u in self.rule.active(self._flags))
        self._step_dependent = self.rule.depends_on_step(self._hyper)
        # host-scalar inputs taken once per configuration, and the last scalars computed
        self._constants = self.rule.constants(self._hyper)
        self._common_constants = rules.common_constants(self._hyper)
        self._rule_key = self._rule_scalars = self._common_key = self._common_scalars = None
        self._scalars_key = self._scalars = None

    def _set_state(self, state):
        self._state = state
        if self._device.host:  # (device gradients are checked by the CUDA backend)
            # Memory the kernels write: each parameter array and state buffer as a byte span
            # (all C-contiguous and disjoint), sorted by start, for the gradient aliasing check.
            owned = [(a, f"params[{i}]") for i, a in enumerate(self._arrays)]
            owned += [(s, f"the optimizer state {name!r}")
                      for s, name in zip(state, self.rule.slots) if s.size]
            spans = sorted(((_backend.address(a), _backend.address(a) + a.nbytes, a, label)
                            for a, label in owned), key=lambda s: s[0])
            self._spans, self._span_starts = spans, [s[0] for s in spans]
            self._single_owned = [a for a, _ in owned]  # for the one-array fast path
        self._apply = self._device.step_function(self.variant, self._layout, self._flat, state,
                                                 self._hyper["clip_norm"], self._count)

    def host_scalars(self, t, lr, clip_scale=1.0, carry=0.0):
        """The kernel's scalars ``(c, h)`` for step ``t`` at rate ``lr`` with gradient scale
        ``clip_scale`` (the clip scale) and the rule's carried value ``carry`` after this step
        (:meth:`advance_carry`), each reused while its inputs hold.

        The rule's values function and :func:`rmsopt.rules.common_values`, run as Python
        here and inlined by the compiled loop (:func:`rmsopt.rules.host_and_kernel`), on
        constants taken once in :meth:`_configure`.
        """
        key = (t if self._step_dependent else None, carry, lr, clip_scale)
        if key == self._scalars_key:  # nothing changed (a rule without step dependence)
            return self._scalars
        if key[2:] != self._common_key:
            self._common_scalars = hyper.as_scalars(
                rules.CommonScalars, rules.common_values(self._common_constants, float(lr),
                                                         float(clip_scale)), self._dtype)
            self._common_key = key[2:]
        if key[:3] != self._rule_key:
            self._rule_scalars = hyper.as_scalars(
                self.rule.Scalars, self.rule.values(self._constants, t, float(lr),
                                                    float(carry)), self._dtype)
            self._rule_key = key[:3]
        self._scalars_key, self._scalars = key, (self._common_scalars, self._rule_scalars)
        return self._scalars

    @property
    def carry(self):
        """The rule's value carried from step to step (``rule.carried``; 0.0 if none).

        Engines that step the kernels themselves (the compiled minimize loop) read it, and
        set it once their steps are taken.
        """
        return self._carry

    @carry.setter
    def carry(self, value):
        self._carry = float(value)

    def advance_carry(self, lr):
        """The carried value after a step at rate ``lr`` (``rule.advance``; nothing set)."""
        if not self.rule.carried:
            return self._carry
        return float(self.rule.advance(self._constants, float(lr), self._carry))

    @property
    def t(self):
        """The number of steps taken."""
        return self._count.item()

    @t.setter
    def t(self, value):
        self._count[0] = value

    NONFINITE = ("apply", "skip", "raise")

    @property
    def nonfinite(self):
        """What :meth:`step` and :meth:`step_rows` do with a gradient holding NaN or inf.

        ``"apply"`` (the default, as PyTorch): the step is taken and the NaN or inf
        spreads into the parameters. ``"skip"`` (optax's ``apply_if_finite``): the
        step is not taken (parameters, state and ``t`` unchanged) and
        :attr:`skipped` counts it. ``"raise"``: a ``FloatingPointError``, nothing
        changed. The test is the gradient's global norm (one pass, no copy), so a
        finite gradient whose norm exceeds the float64 range counts as non-finite.
        """
        return self._nonfinite

    @nonfinite.setter
    def nonfinite(self, value):
        if not isinstance(value, str) or value not in self.NONFINITE:
            raise ValueError(f"Invalid nonfinite value: {value!r}; expected one of "
                             f"{', '.join(map(repr, self.NONFINITE))}")
        self._nonfinite = value

    def _refuse_nonfinite(self, grads, layout=None):
        """True if the step must be skipped (``nonfinite="skip"``); raises for ``"raise"``."""
        if self._nonfinite == "apply":
            return False
        finite = self._device.all_finite(layout or self._layout, grads)
        if finite:
            return False
        if self._nonfinite == "raise":
            raise FloatingPointError("the gradient holds NaN or inf; the step was not taken "
                                     "(nonfinite='raise')")
        self.skipped += 1
        return True

    @property
    def hyper(self):
        return dict(self._hyper)

    # ----------------------------------------------- the interface for engines
    # minimize's loops (rmsopt.loop, rmsopt.compiled) and the Dask optimizers drive an
    # optimizer through these: the kernel variant, its layout and buffers, the host scalars
    # of a step and the step after validation.

    @property
    def backend(self):
        """The backend that runs the steps: ``"cpu"``, ``"numpy"`` or ``"cuda"``."""
        return self._backend

    @property
    def variant(self):
        """The :class:`Variant` (rule and compile-time flags) that selects the kernels."""
        return Variant(self.rule, self._flags, self._common, self._active)

    @property
    def layout(self):
        """The kernels' view of the parameters (:class:`rmsopt.backend.Layout`)."""
        return self._layout

    @property
    def buffers(self):
        """The three state buffers in the order of ``rule.slots``, empty where unused (live)."""
        return tuple(self._state)

    @property
    def dtype(self):
        return self._dtype

    @property
    def state(self):
        """The flat state buffers by slot name (device arrays on CUDA; live, not copies)."""
        return {name: s for name, s, used in zip(self.rule.slots, self._state, self._active)
                if used}

    def __repr__(self):
        shown = ", ".join(f"{k}={self._schedule if k == 'lr' and self._schedule else v!r}"
                          for k, v in self._hyper.items())
        return f"{type(self).__name__}({shown}, backend={self._backend!r}, t={self.t})"

    # --------------------------------------------------------------- step

    def _aliased(self, g):
        """The label of a parameter array or state buffer sharing memory with ``g``, or None.

        Candidates come from a bisection over the sorted byte spans of the owned
        arrays (a bounds test, as ``np.may_share_memory``); only a candidate gets the
        exact, costlier ``np.shares_memory``.
        """
        lo, hi = _backend.byte_bounds(g)
        spans = self._spans
        j = bisect_right(self._span_starts, hi - 1) - 1  # the last span starting below hi
        while j >= 0 and spans[j][1] > lo:  # disjoint spans: their ends increase too
            if np.shares_memory(g, spans[j][2]):
                return spans[j][3]
            j -= 1
        return None

    def _grad_arrays(self, grad):
        """Gradients as 1-D arrays of the parameters' dtype, checked before any update."""
        if not self._device.host:
            return self._device.grad_arrays(grad, self._arrays, self._single)
        p = self._arrays[0]
        if (self._single and type(grad) is np.ndarray and grad.dtype == self._dtype
                and grad.shape == p.shape and grad.flags.c_contiguous
                and not _may_share_any(grad, self._single_owned)):
            return [grad.reshape(-1)]  # the common case, checked cheaply
        if self._single:
            grads = [grad]
        else:
            if not isinstance(grad, (list, tuple)) or len(grad) != len(self._arrays):
                raise ValueError(f"grad must be a list of {len(self._arrays)} arrays, one per "
                                 f"parameter array; got {type(grad).__name__}"
                                 + (f" of length {len(grad)}" if isinstance(grad, (list, tuple))
                                    else ""))
            grads = grad
        flat, dtype = [], self._dtype
        for i, (g, p) in enumerate(zip(grads, self._arrays)):
            g = as_array(g, self._grad_name(i))
            if g.dtype.kind not in "fiu" or g.dtype.itemsize > 8:
                raise ValueError(f"{self._grad_name(i)} has dtype {g.dtype}; expected a real "
                                 "float or integer array")
            if g.shape != p.shape:
                raise ValueError(f"{self._grad_name(i)} has shape {g.shape} but its parameter "
                                 f"has shape {p.shape}")
            shared = self._aliased(g)
            if shared is not None:
                own = shared == f"params[{i}]"
                raise ValueError(f"{self._grad_name(i)} shares memory with "
                                 f"{'its parameter array' if own else shared}, which the step "
                                 "writes; pass a copy")
            if g.dtype != dtype or not g.flags.c_contiguous:
                g = np.ascontiguousarray(g, dtype=dtype)
            flat.append(g if g.ndim == 1 else g.reshape(-1))
        return flat

    def _grad_name(self, i):
        return "grad" if self._single else f"grad[{i}]"

    def _check_writeable(self):
        """ValueError if a parameter array was made read-only after construction."""
        if not self._device.host:  # device arrays have no read-only flag
            return
        for i, a in enumerate(self._arrays):
            if not a.flags.writeable:
                name = "params" if self._single else f"params[{i}]"
                raise ValueError(f"{name} is read-only (it was made so after the optimizer was "
                                 "built); the optimizer updates it in place")

    def step(self, grad, lr=None):
        """Update the parameters in place with gradient ``grad``.

        Parameters
        ----------
        grad : array_like or list of array_like
            Same shapes as the parameters. Other real dtypes and non-contiguous
            arrays are converted (a copy); the caller's arrays are not modified.
            On CUDA: device arrays of the parameters' dtype, C-contiguous (no
            conversion happens on the device; anything else is an error).
        lr : float, optional
            Learning rate for this step only (a schedule), instead of ``hyper["lr"]``.
        """
        with self._lock:
            grads, lr = self.check_step(grad, lr)
            if not self._refuse_nonfinite(grads):
                self.apply(grads, lr)

    def check_step(self, grad, lr=None):
        """What :meth:`step` checks before it changes anything, without stepping.

        Returns
        -------
        grads : list
            The gradients as :meth:`apply` takes them (1-D arrays of the dtype; device
            records on CUDA).
        lr : float
            The rate of the step (:meth:`rate`).

        Raises the ValueError or TypeError that :meth:`step` would. For callers that
        step several optimizers as one (:mod:`rmsopt.groups`): all are checked first.
        """
        grads = self._grad_arrays(grad)
        lr = self.rate(lr)
        self._check_writeable()
        return grads, lr

    @property
    def schedule(self):
        """The learning-rate schedule given as ``lr`` (called with the step count ``t``), or
        None."""
        return self._schedule

    def rate(self, lr=None):
        """The learning rate of the next step: ``lr`` if given (checked), else the schedule's
        ``schedule(t)`` (checked when used), else ``hyper["lr"]``."""
        if lr is not None:
            return self.check_lr(lr)
        if self._schedule is not None:
            return self.check_lr(self._schedule(self.t))
        return self._hyper["lr"]

    def check_lr(self, lr):
        """``lr`` given for one step, checked as the constructor checks ``lr`` (ValueError or
        TypeError naming it), as a float."""
        lr = hyper.learning_rate(lr)
        hyper.representable("lr", lr, self._dtype, tiny_ok=True)
        return lr

    def apply(self, grads, lr, src=None, dst=None, clip_scale=None):
        """:meth:`step` after validation, for engines that check once per run: ``grads`` are
        1-D arrays of the dtype that the step does not write, ``lr`` a checked rate.

        ``src``, ``dst``: :class:`rmsopt.backend.Buffers` to read the parameters from and
        write them to (an out-of-place step, host backends), each instead of the
        parameters when None. ``clip_scale``: the clip scale of ``clip_norm``, computed by
        the caller (from the norm of more gradients than these: :mod:`rmsopt.groups`) on
        the host backends; None computes it from ``grads``.
        """
        t = self._count.item() + 1
        if clip_scale is None:
            clip_scale = 1.0
            if self._hyper["clip_norm"] is not None and not self._device.clips_on_device:
                norm = self._device.global_norm(self._layout, grads)
                clip_scale = hyper.clip_scale(norm, self._hyper["clip_norm"])
        carry = self.advance_carry(lr)
        c, h = self.host_scalars(t, lr, clip_scale, carry)
        args = (grads, c, h) if src is None and dst is None else (grads, c, h, src, dst)
        if self._device.counts_steps and not self.rule.carried:
            self._apply(*args)  # one native call: the update and t += 1
        else:
            with interrupts_deferred():
                self._apply(*args)
                self._count[0], self._carry = t, carry

    def step_rows(self, rows, grad, *, index=0, lr=None):
        r"""Update only rows ``rows`` of a parameter array, and only their state (lazy, sparse).

        For embedding tables and factor matrices, where a mini-batch touches a few rows:
        ``grad[i]`` is the gradient of row ``rows[i]`` (axis 0) and every other row, its
        parameters and its optimizer state, stays exactly as it was, as TensorFlow's sparse
        apply ops and ``LazyAdam`` do. A dense :meth:`step` with zeros elsewhere would
        instead decay the untouched rows' :math:`\nu` and move them along their momentum.

        Parameters
        ----------
        rows : array_like of int, shape (m,)
            Row indices in ``[0, shape[0])``. A row given more than once gets the sum of
            its gradients (the gradient of an embedding looked up twice; PyTorch coalesces
            sparse gradients the same way).
        grad : array_like, shape (m,) + shape[1:]
            Gradient rows, converted to the parameters' dtype.
        index : int
            Which parameter array, when the optimizer holds a list (default the first).
        lr : float, optional
            Learning rate for this step only.

        Notes
        -----
        Host backends only ('cpu', 'numpy'): a CUDA optimizer refuses it (ValueError).
        Each call is one step: ``t`` increases by one, and rules with bias correction
        (Adam, ``bias_correction=True``) use that global ``t`` for the rows they touch,
        as ``LazyAdam`` and ``torch.optim.SparseAdam`` do. ``clip_norm`` applies to the
        norm of these rows' gradient; weight decay acts on the touched rows only.
        Everything is checked before anything is updated.

        Examples
        --------
        >>> import numpy as np, rmsopt
        >>> E = np.ones((5, 2))
        >>> opt = rmsopt.SGD(E, lr=0.1)
        >>> opt.step_rows([3, 1, 3], np.ones((3, 2)))   # row 3 twice: its gradients add
        >>> E[:, 0]
        array([1. , 0.9, 1. , 0.8, 1. ])
        """
        with self._lock:
            self._step_rows(rows, grad, index, lr)

    def _step_rows(self, rows, grad, index, lr):
        if not self._device.rows:
            raise ValueError(f"step_rows runs on the host backends ('cpu', 'numpy'), not on "
                             f"backend={self._backend!r}; on the GPU take a dense step with "
                             "zeros in the other rows, or keep the table on the host")
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__} {index!r}")
        if not 0 <= index < len(self._arrays):
            raise ValueError(f"index {index} is out of range for {len(self._arrays)} "
                             "parameter array(s)")
        a = self._arrays[index]
        if a.ndim == 0:
            raise ValueError("step_rows needs a parameter array with at least one dimension")
        param = a.reshape(a.shape[0], -1)
        shared = self._aliased(as_array(grad, "grad"))  # refused as step refuses it
        if shared is not None:
            raise ValueError(f"grad shares memory with {shared}, which the step writes; "
                             "pass a copy")
        rows, g = _sparse_rows(rows, grad, a, param, self._dtype)
        lr = self.rate(lr)
        self._check_writeable()
        flat = [g.reshape(-1)]
        if self._refuse_nonfinite(flat, _backend.Layout(flat)):
            return
        t = self.t + 1
        clip_scale = 1.0
        if self._hyper["clip_norm"] is not None:
            norm = self._device.global_norm(_backend.Layout(flat), flat)
            clip_scale = hyper.clip_scale(norm, self._hyper["clip_norm"])
        carry = self.advance_carry(lr)
        c, h = self.host_scalars(t, lr, clip_scale, carry)
        if rows.size and self._device.counts_steps and not self.rule.carried:
            # one native call: the update and t += 1
            self._device.apply_rows(self.variant, self._layout, index, param, rows, g,
                                    self._state, c, h, self._count)
            return
        with interrupts_deferred():
            if rows.size:
                self._device.apply_rows(self.variant, self._layout, index, param, rows, g,
                                        self._state, c, h)
            self._count[0], self._carry = t, carry

    # --------------------------------------------------------- checkpoints

    def state_dict(self):
        """Everything needed to resume: hyperparameters, step count, state and parameters.

        Arrays are host (NumPy) copies, also for a CUDA optimizer. See
        :mod:`rmsopt.checkpoint` for the format.
        """
        with self._lock:  # not between two halves of another thread's step
            return self._state_dict()

    def _state_dict(self):
        return checkpoint.make(
            optimizer=type(self).__name__, rule=self.rule.name, hyper=self.hyper, t=self.t,
            schedule=None if self._schedule is None else schedules.to_spec(self._schedule),
            **({"carry": {self.rule.carried: self._carry}} if self.rule.carried else {}),
            dtype=self._dtype.name, shapes=[list(a.shape) for a in self._arrays],
            params=[self._device.to_host(a) for a in self._arrays],
            state={k: self._device.to_host(v) for k, v in self.state.items()})

    def load_state_dict(self, d):
        """Restore a :meth:`state_dict`: validated completely first, then applied.

        Parameters are overwritten in place, so references to them stay valid
        (on CUDA the saved host arrays are copied back to the device).
        """
        with self._lock:
            self._load_state_dict(d)

    def _load_state_dict(self, d):
        d = checkpoint.validate(d, optimizer=type(self).__name__, rule=self.rule.name,
                                dtype=self._dtype.name,
                                shapes=[list(a.shape) for a in self._arrays],
                                hyper_keys=set(self._hyper), nonnegative=self.rule.nonnegative,
                                carried=self.rule.carried)
        try:
            options = type(self)._build(**d["hyper"])
        except TypeError as e:  # a damaged checkpoint, whatever the value's type
            raise ValueError(f"checkpoint hyperparameters: {e}") from None
        # stored values are the builder's own: one it would change (None for a default,
        # a value of another form) is not what an optimizer saved
        rebuilt = sorted(k for k, v in options.items() if not _same(v, d["hyper"][k]))
        if rebuilt:
            raise ValueError("checkpoint hyperparameters are not as an optimizer stores them: "
                             + ", ".join(f"{k}={d['hyper'][k]!r} (would be {options[k]!r})"
                                         for k in rebuilt))
        schedule = None if d.get("schedule") is None else schedules.from_spec(d["schedule"])
        if schedule is not None:
            hyper.learning_rate(schedule(d["t"]))
        probe = self.rule.active(self.rule.flags(options))
        expected = {n for n, used in zip(self.rule.slots, probe) if used}
        if set(d["state"]) != expected:
            raise ValueError(f"checkpoint state has slots {sorted(d['state'])}, but its "
                             f"hyperparameters need {sorted(expected)}")
        n = self._layout.n
        for name, arr in d["state"].items():
            if arr.shape != (n,):
                raise ValueError(f"checkpoint state {name!r} has shape {arr.shape}, expected ({n},)")
        hyper.check_dtype(options, self._dtype)
        self._check_writeable()
        state = [self._device.from_host(np.asarray(d["state"][name], dtype=self._dtype))
                 if used else self._device.full(0, 0.0, self._dtype)
                 for name, used in zip(self.rule.slots, self.rule.active(self.rule.flags(options)))]
        # everything checked and built: apply (nothing below can fail), all or nothing
        with interrupts_deferred():
            self._hyper, self._schedule = options, schedule
            self._configure()
            self._set_state(state)
            for a, saved in zip(self._arrays, d["params"]):
                self._device.write(a, saved)
            self.t, self._carry = d["t"], d["carry"]

    def save(self, path):
        """Write a checkpoint to ``path`` (``.npz``; atomically replaced)."""
        checkpoint.save(path, self.state_dict())

    def load(self, path):
        """Read a checkpoint written by :meth:`save` and resume from it."""
        self.load_state_dict(checkpoint.load(path))


def _options(local):
    return {k: v for k, v in local.items() if k not in ("self", "params", "backend", "__class__")}


class RMSprop(Optimizer, method="rmsprop"):
    r"""RMSprop: divide each gradient element by a running RMS of its history.

    .. math::

        \nu_t = \rho\,\nu_{t-1} + (1-\rho)\,g_t^2, \qquad
        p_t = p_{t-1} - \eta\,\frac{g_t}{\sqrt{\nu_t} + \epsilon}

    with optional centering (Graves), momentum/Nesterov, bias correction,
    :math:`\epsilon` inside the root, weight decay, maximize and clipping; see
    :func:`rmsopt.rules.rmsprop`.

    Parameters
    ----------
    params : ndarray or list of ndarray, or list of dict
        Writable, C-contiguous float32/float64 arrays, updated in place; or param groups,
        ``[{"params": [...], "lr": ...}, ...]``, each overriding any of the keywords below
        (:mod:`rmsopt.groups`).
    lr : float or callable, default 1e-3 (or the convention's)
        Learning rate :math:`\eta` (0 is a valid step), or a schedule ``lr(t)`` of the
        steps taken so far (:mod:`rmsopt.schedules`; saved in checkpoints).
    rho : float, default 0.9 (or the convention's)
        Decay of the mean square, in [0, 1). Aliases: ``alpha`` (PyTorch),
        ``decay`` (optax, TF1).
    eps : float, default 1e-8 (or the convention's)
        Added to the root (or inside it with ``eps_in_sqrt``).
    momentum : float, default 0
        Momentum factor in [0, 1).
    centered : bool
        Normalise by the estimated variance :math:`\nu - \mu^2` (clamped at 0).
    nesterov : bool
        Nesterov momentum (requires ``momentum > 0``).
    bias_correction : bool
        Divide :math:`\nu` (and :math:`\mu`) by :math:`1-\rho^t` (optax option).
        With ``centered`` the corrected variance of the first step is
        :math:`g^2 - g^2 = 0`, so that step is :math:`\eta g/\epsilon`: pair
        the two only with ``eps_in_sqrt`` and a large ``eps``, or not at all.
    eps_in_sqrt : bool
        :math:`\sqrt{\nu + \epsilon}` instead of :math:`\sqrt{\nu} + \epsilon`.
    initial_scale : float
        Initial value of :math:`\nu` (0; TF1 uses 1).
    lr_in_momentum : bool
        Accumulate :math:`\eta d` in the momentum buffer (Keras, TF1, optax)
        instead of :math:`d` (PyTorch). Differs once ``lr`` changes.
    weight_decay : float
        :math:`\lambda \ge 0`; added to the gradient (L2) or, with
        ``decoupled_weight_decay``, applied as :math:`p \leftarrow (1-\eta\lambda) p`.
    maximize : bool
        Ascend instead of descend.
    clip_value, clip_norm : float, optional
        Clip each gradient element to [-v, v]; scale the whole gradient (all
        arrays together) to global L2 norm at most ``clip_norm``. The norm is
        computed in float64 without overflow and with the same bits for any
        thread count; a NaN anywhere makes every element NaN (as PyTorch).
        With both, the norm of the raw gradient scales it first, then each
        element is clipped (``clip_grad_norm_`` then ``clip_grad_value_``).
    convention : {None, "torch", "keras", "optax", "tf1"}
        Preset of defaults reproducing that library (table in :mod:`rmsopt.hyper`).
    backend : {"auto", "cpu", "numpy", "cuda"}
        Where the update runs; ``"auto"`` is ``"cuda"`` for device arrays.

    Examples
    --------
    >>> import numpy as np, rmsopt
    >>> w = np.array([1.0, -2.0])
    >>> opt = rmsopt.RMSprop(w, lr=0.1)
    >>> for _ in range(100):
    ...     opt.step(2 * w)           # gradient of sum(w**2)
    >>> bool(np.abs(w).max() < 0.1)
    True
    """

    rule = rules.RULES["rmsprop"]
    _build = staticmethod(hyper.rmsprop)
    precompiled = ({}, {"centered": True}, {"momentum": 0.9})

    def __init__(self, params, *, lr=None, rho=None, eps=None, momentum=0.0, centered=False,
                 nesterov=False, bias_correction=False, eps_in_sqrt=None, initial_scale=None,
                 lr_in_momentum=None, weight_decay=0.0, decoupled_weight_decay=None,
                 maximize=False, clip_value=None, clip_norm=None, convention=None,
                 backend="auto", alpha=None, decay=None):
        super().__init__(params, _options(locals()), backend)


class SGD(Optimizer, method="sgd"):
    r"""Gradient descent with optional heavy-ball or Nesterov momentum.

    :math:`p \leftarrow p - \eta g`; with momentum ``m``:
    :math:`b \leftarrow m b + g,\ p \leftarrow p - \eta b` (PyTorch, without
    dampening). ``lr`` defaults to 1e-3; other options as :class:`RMSprop`.
    """

    rule = rules.RULES["sgd"]
    _build = staticmethod(hyper.sgd)
    precompiled = ({"momentum": 0.9},)

    def __init__(self, params, *, lr=None, momentum=0.0, nesterov=False, lr_in_momentum=None,
                 weight_decay=0.0, decoupled_weight_decay=False, maximize=False,
                 clip_value=None, clip_norm=None, backend="auto"):
        super().__init__(params, _options(locals()), backend)


class AdaGrad(Optimizer, method="adagrad"):
    r"""AdaGrad: :math:`a \leftarrow a + g^2,\ p \leftarrow p - \eta g / (\sqrt{a} + \epsilon)`.

    PyTorch defaults: ``lr=1e-2``, ``eps=1e-10``, ``initial_accumulator_value=0``,
    ``lr_decay=0`` (the step-``t`` rate is :math:`\eta / (1 + (t-1)\,\mathrm{lr\_decay})`).
    Keras puts ``eps`` inside the root (``eps_in_sqrt=True``) and starts the
    accumulator at 0.1.
    """

    rule = rules.RULES["adagrad"]
    _build = staticmethod(hyper.adagrad)

    def __init__(self, params, *, lr=None, lr_decay=0.0, eps=None, initial_accumulator_value=0.0,
                 eps_in_sqrt=None, weight_decay=0.0, decoupled_weight_decay=False,
                 maximize=False, clip_value=None, clip_norm=None, backend="auto"):
        super().__init__(params, _options(locals()), backend)


class AdaDelta(Optimizer, method="adadelta"):
    r"""AdaDelta (Zeiler 2012); PyTorch defaults ``lr=1.0``, ``rho=0.9``, ``eps=1e-6``.

    .. math::

        \nu \leftarrow \rho\nu + (1-\rho) g^2,\quad
        d = \frac{\sqrt{u + \epsilon}}{\sqrt{\nu + \epsilon}}\, g,\quad
        u \leftarrow \rho u + (1-\rho) d^2,\quad p \leftarrow p - \eta d
    """

    rule = rules.RULES["adadelta"]
    _build = staticmethod(hyper.adadelta)

    def __init__(self, params, *, lr=None, rho=None, eps=None, weight_decay=0.0,
                 decoupled_weight_decay=False, maximize=False, clip_value=None, clip_norm=None,
                 backend="auto"):
        super().__init__(params, _options(locals()), backend)


class Adam(Optimizer, method="adam"):
    r"""Adam, AMSGrad and (with ``decoupled_weight_decay``) AdamW, as PyTorch computes them.

    Defaults ``lr=1e-3``, ``beta1=0.9``, ``beta2=0.999``, ``eps=1e-8``; PyTorch's
    ``betas=(beta1, beta2)`` is accepted too. See :func:`rmsopt.rules.adam` for the math.
    """

    rule = rules.RULES["adam"]
    _build = staticmethod(hyper.adam)

    def __init__(self, params, *, lr=None, beta1=None, beta2=None, eps=None, amsgrad=False,
                 weight_decay=0.0, decoupled_weight_decay=False, maximize=False, clip_value=None,
                 clip_norm=None, backend="auto", betas=None):
        super().__init__(params, _options(locals()), backend)


class AdamW(Adam, method="adamw"):
    """Adam with decoupled weight decay (``weight_decay=1e-2`` by default, as PyTorch)."""

    precompiled = ()  # Adam's kernels with decoupled decay: compiled when first used

    def __init__(self, params, *, lr=None, beta1=None, beta2=None, eps=None, amsgrad=False,
                 weight_decay=1e-2, decoupled_weight_decay=True, maximize=False, clip_value=None,
                 clip_norm=None, backend="auto", betas=None):
        super().__init__(params, **_options(locals()), backend=backend)


class Lion(Optimizer, method="lion"):
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as optax.

    .. math::

        p \leftarrow p - \eta\, \operatorname{sign}\big((1-\beta_1) g + \beta_1 m\big),
        \qquad m \leftarrow (1-\beta_2) g + \beta_2 m

    optax's ``lion`` (``scale_by_lion``, ``add_decayed_weights``, ``scale_by_learning_rate``):
    weight decay is decoupled, :math:`p \leftarrow p - \eta (u + \lambda p)`. Defaults
    ``lr=1e-4``, ``beta1=0.9``, ``beta2=0.99``, ``weight_decay=0`` (optax's default is 1e-3,
    timm's 0); ``betas=(beta1, beta2)`` is accepted too. Every update has the size of
    ``lr`` in each element: use a learning rate 3-10x smaller than Adam's. Other options as
    :class:`RMSprop`.
    """

    rule = rules.RULES["lion"]
    _build = staticmethod(hyper.lion)

    def __init__(self, params, *, lr=None, beta1=None, beta2=None, weight_decay=0.0,
                 decoupled_weight_decay=True, maximize=False, clip_value=None, clip_norm=None,
                 backend="auto", betas=None):
        super().__init__(params, _options(locals()), backend)


class AdaBelief(Optimizer, method="adabelief"):
    r"""AdaBelief (Zhuang et al. 2020): Adam with the variance of the gradient around its mean.

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad
        s \leftarrow \beta_2 s + (1-\beta_2)(g - m)^2 + \epsilon_{root}, \quad
        p \leftarrow p - \eta\, \frac{m / (1-\beta_1^t)}{\sqrt{s / (1-\beta_2^t)} + \epsilon}

    As optax's ``adabelief`` (``scale_by_belief``), weight decay added to the update
    before the learning rate (decoupled: :math:`p \leftarrow p - \eta (u + \lambda p)`, as
    optax's main branch chains ``add_decayed_weights``). Defaults ``lr=1e-3``,
    ``beta1=0.9``, ``beta2=0.999``, ``eps=1e-16``, ``eps_root=1e-16``, ``weight_decay=0``;
    ``betas=(beta1, beta2)`` is accepted too. Other options as :class:`RMSprop`.
    """

    rule = rules.RULES["adabelief"]
    _build = staticmethod(hyper.adabelief)

    def __init__(self, params, *, lr=None, beta1=None, beta2=None, eps=None, eps_root=None,
                 weight_decay=0.0, decoupled_weight_decay=True, maximize=False,
                 clip_value=None, clip_norm=None, backend="auto", betas=None):
        super().__init__(params, _options(locals()), backend)


class LaProp(Optimizer, method="laprop"):
    r"""LaProp (Ziyin, Wang & Ueda 2020): momentum over normalised gradients, as timm's.

    .. math::

        \nu \leftarrow \beta_2 \nu + (1-\beta_2) g^2, \quad
        m \leftarrow \beta_1 m + \eta (1-\beta_1) \frac{g}{\sqrt{\nu/(1-\beta_2^t)} + \epsilon},
        \quad p \leftarrow p - \frac{\eta}{A_t} m

    RMSprop's normalisation, then momentum: unlike Adam, momentum and adaptivity are
    separate, and the learning rate enters the momentum with each step, so a schedule
    acts on the momentum gradually. :math:`A_t = \beta_1 A_{t-1} + (1-\beta_1)\eta_t`
    is the momentum's bias correction for any schedule, carried between steps (``carry``,
    saved in checkpoints). Decoupled weight decay (the default) follows the update, scaled
    by the rate: :math:`p \leftarrow p - \eta\lambda p` (timm); with
    ``decoupled_weight_decay=False`` it is L2, added to the gradient. See
    :func:`rmsopt.rules.laprop`. Defaults ``lr=4e-4``, ``beta1=0.9``, ``beta2=0.999``,
    ``eps=1e-15``, ``weight_decay=0`` (timm's); ``betas=(beta1, beta2)`` is accepted too.
    Other options as :class:`RMSprop`.
    """

    rule = rules.RULES["laprop"]
    _build = staticmethod(hyper.laprop)

    def __init__(self, params, *, lr=None, beta1=None, beta2=None, eps=None, weight_decay=0.0,
                 decoupled_weight_decay=True, maximize=False, clip_value=None, clip_norm=None,
                 backend="auto", betas=None):
        super().__init__(params, _options(locals()), backend)


DEFAULT_VARIANTS = tuple((cls, kwargs) for cls in OPTIMIZERS.values() for kwargs in cls.precompiled)


def precompile(variants=DEFAULT_VARIANTS, dtypes=(np.float32, np.float64)):
    """Compile step kernels now instead of at the first step (about a second each).

    Numba compiles each kernel variant on its first call; a program that wants
    that cost up front (before timing, or in a server's start-up) calls this.
    Nothing is stepped.

    Parameters
    ----------
    variants : sequence of (optimizer class, dict of keyword arguments)
        The configurations to compile: their flags, not their numbers, select the
        kernel. By default each optimizer's ``precompiled`` (its defaults; RMSprop's
        centered and momentum variants too, SGD's with momentum).
    dtypes : sequence of dtype
        float32 and/or float64.

    Returns
    -------
    int
        The number of kernels compiled (serial and threaded, per variant and dtype).
    """
    count = 0
    for cls, kwargs in variants:
        for dtype in dtypes:
            opt = cls(np.zeros(1, dtype=dtype), **kwargs)
            c, h = opt.host_scalars(1, opt.hyper["lr"], 1.0)
            for parallel in (False, True):
                kernel = _backend.cpu.step_kernel(opt.rule.kernel, opt._flags, opt._common,
                                                  opt._active, parallel)
                layout = opt._layout
                _backend.cpu.entry_point(kernel, (layout.paddr, layout.paddr, layout.paddr,
                                                  layout.size, layout.offset, layout.tasks,
                                                  *opt._state, c, h,
                                                  _backend.address(opt._count)))
                count += 1
    return count


__all__ = ["OPTIMIZERS", "Optimizer", "Variant", "interrupts_deferred", "precompile",
           *(cls.__name__ for cls in OPTIMIZERS.values())]
