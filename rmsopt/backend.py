"""Backends: ``"auto" | "numpy" | "cpu" | "cuda"``, resolution, and one object per backend.

``"numpy"`` runs the vectorised reference of :mod:`rmsopt._kernels.reference`;
``"cpu"`` the Numba kernels of :mod:`rmsopt._kernels.cpu`, threaded with
``prange`` above :data:`rmsopt._config.PARALLEL_THRESHOLD` elements and serial
below; ``"cuda"`` the kernels of :mod:`rmsopt._kernels.cuda` on device arrays,
that module imported only when asked for (``import rmsopt`` never touches
CUDA); ``"auto"`` picks ``"cuda"`` when the parameters are device arrays
(``__cuda_array_interface__``) and ``"cpu"`` otherwise. :func:`get` gives a
backend's object (:class:`NumpyBackend`, :class:`CpuBackend`, :class:`CudaBackend`),
all with one interface (see :class:`HostBackend`).
"""

import math
import threading
from typing import NamedTuple

import numba
import numpy as np

from . import _config
from ._kernels import cpu, layout, reference
from ._kernels.devices import is_device_array

BACKENDS = ("auto", "numpy", "cpu", "cuda")


def cuda_kernels():
    """:mod:`rmsopt._kernels.cuda`, imported on first use, or an error that says what is missing."""
    try:
        from ._kernels import cuda
    except ImportError as e:
        raise ImportError("backend='cuda' needs numba-cuda, which could not be imported "
                          f"({e}); install it with: pip install 'rmsopt[cuda]'") from e
    cuda.require()
    return cuda


def resolve(backend, params=None):
    """The concrete backend for ``backend``, or a ValueError naming it.

    ``"auto"`` is ``"cuda"`` when ``params`` (an array or a list) holds device
    arrays, else ``"cpu"``. ``"cuda"`` checks here that numba-cuda and a GPU
    (or the simulator) are there.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"Invalid backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        arrays = params if isinstance(params, (list, tuple)) else [params]
        backend = "cuda" if any(is_device_array(a) for a in arrays) else "cpu"
    if backend == "cuda":
        cuda_kernels()
    return backend


# Host dtypes the compiled helpers accept (native byte order; not float16).
_COMPILED_DTYPES = frozenset(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float32, np.float64))


def byte_bounds(a):
    """First and one-past-last byte address that host array ``a`` can touch."""
    if a.dtype in _COMPILED_DTYPES:
        return cpu.byte_bounds(a)
    return np.lib.array_utils.byte_bounds(a)  # NumPy's, ~3 us: float16, byte-swapped dtypes


def address(a):
    """Address of a host array's first element."""
    if a.dtype in _COMPILED_DTYPES:
        return cpu.address(a)
    return a.__array_interface__["data"][0]


def host_param_arrays(params):
    """Validate host ``params`` (a NumPy array or a list of them) and return ``(arrays,
    single)``."""
    single = isinstance(params, np.ndarray)
    if not single and not isinstance(params, (list, tuple)):
        raise TypeError("params must be a NumPy array or a list of arrays, "
                        f"got {type(params).__name__}")
    arrays = [params] if single else list(params)
    if not arrays:
        raise ValueError("params is an empty list")
    for i, a in enumerate(arrays):
        name = "params" if single else f"params[{i}]"
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array, got {type(a).__name__}")
        if a.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name} has dtype {a.dtype}; an optimizer updates float32 or "
                             "float64 arrays in place (convert with .astype(np.float64))")
        if a.dtype != arrays[0].dtype:
            raise ValueError(f"{name} has dtype {a.dtype} but params[0] has {arrays[0].dtype}; "
                             "all parameter arrays must share one dtype")
        if not a.flags.writeable:
            raise ValueError(f"{name} is read-only; the optimizer updates it in place")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} is not C-contiguous; pass np.ascontiguousarray(...) "
                             "and keep a reference to that array")
        if a.size == 0:
            raise ValueError(f"{name} is empty")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
    for i in range(len(arrays)):
        for j in range(i):
            if np.shares_memory(arrays[i], arrays[j]):
                raise ValueError(f"params[{i}] and params[{j}] share memory")
    return arrays, single


class Layout(layout.Layout):
    """Where each host parameter array lives in the flat state buffers, and its address.

    Attributes
    ----------
    size, offset, tasks, n
        As :class:`rmsopt._kernels.layout.Layout`.
    paddr : int64 array
        Addresses of the parameter arrays (the optimizer keeps them alive).
    parallel : bool
        Whether the CPU backend uses its threaded kernels.
    """

    def __init__(self, flat_params):
        super().__init__(flat_params)
        self.paddr = np.array([address(a) for a in flat_params], dtype=np.int64)
        self.parallel = self.n >= _config.PARALLEL_THRESHOLD

    def gaddr(self, flat_grads):
        return np.array([address(g) for g in flat_grads], dtype=np.int64)


# The "workqueue" threading layer aborts the process when two threads launch
# parallel kernels at once; under it, parallel launches take turns.
_workqueue_lock = threading.Lock()
_layer = None


def _launch(kernel, args, parallel):
    global _layer
    if not parallel or _layer not in (None, "workqueue"):
        return kernel(*args)
    with _workqueue_lock:
        result = kernel(*args)
        _layer = numba.threading_layer()
    return result


def _counter(count):
    """``(array, address)`` of an int64 step counter: ``count``, or a fresh one that no one
    reads (the caller keeps the array alive while a kernel may use the address)."""
    count = np.zeros(1, dtype=np.int64) if count is None else count
    # ctypes (~3 us), not the compiled address(): an int64 specialisation of it would cost
    # a first step in a new process about 0.08 s of compiling
    return count, count.ctypes.data


class Buffers:
    """Arrays shaped like an optimizer's flat parameters, for out-of-place steps.

    :func:`step_function`'s step reads the parameters from one ``Buffers`` and
    writes them into another (``minimize`` alternates two, so that the previous
    iterate survives a step without a copy). The caller keeps the arrays alive.
    """

    def __init__(self, flat):
        self.arrays = list(flat)
        self.addr = np.array([address(a) for a in self.arrays], dtype=np.int64)


class Variant(NamedTuple):
    """What selects a compiled kernel: the rule and its compile-time flags.

    Attributes
    ----------
    rule : rmsopt.rules.Rule
    flags : NamedTuple
        The rule's flags (``rule.Flags``).
    common : rmsopt.rules.Common
        The flags every rule shares (weight decay, clipping, maximize).
    active : tuple of 3 bool
        Which of the rule's state slots are in use.
    """

    rule: object
    flags: tuple
    common: tuple
    active: tuple


# ----------------------------------------------------------------- the backends

class Backend:
    """The interface of a backend object; see :class:`HostBackend`."""

    name = None

    def __repr__(self):
        return f"<rmsopt backend {self.name!r}>"


class HostBackend(Backend):
    """What the host backends share: parameters are C-contiguous NumPy arrays, updated in
    place, with flat state buffers in host memory.

    A backend object has one interface (:class:`NumpyBackend`, :class:`CpuBackend`,
    :class:`CudaBackend`): the arrays it takes (``param_arrays``, ``flat``), their
    :class:`Layout`, state buffers (``full``, ``from_host``, ``to_host``, ``write``), the
    gradient's global norm and finiteness, and the step: ``step_function`` for the whole
    parameters, ``apply_rows`` for rows of one array. Its capabilities are attributes:
    ``host`` (arrays in host memory: NumPy's checks apply), ``rows`` (``apply_rows`` exists),
    ``counts_steps`` (the kernel adds one to the step counter in the call that applies the
    step) and ``clips_on_device`` (the step computes the clip scale itself).
    """

    host, rows, counts_steps, clips_on_device = True, True, False, False

    param_arrays = staticmethod(host_param_arrays)

    @staticmethod
    def flat(arrays):
        return [a.reshape(-1) for a in arrays]

    @staticmethod
    def layout(flat_params):
        return Layout(flat_params)

    @staticmethod
    def full(n, value, dtype):
        """A new flat state buffer of ``n`` elements equal to ``value``."""
        return np.full(n, value, dtype=dtype)

    @staticmethod
    def to_host(a):
        """A host copy of a parameter or state array."""
        return a.copy()

    @staticmethod
    def from_host(a):
        """A state buffer made from the host array ``a`` (a copy)."""
        return np.array(a)

    @staticmethod
    def write(a, values):
        """Overwrite parameter array ``a`` in place with the host array ``values``."""
        a[...] = values

    def all_finite(self, layout, flat_grads):
        """Whether every gradient element is finite (and their norm within float64)."""
        return math.isfinite(self.global_norm(layout, flat_grads))

    @staticmethod
    def device_arrays():
        """The array strategy of minimize's loop for this backend (None: host arrays)."""
        return None


class NumpyBackend(HostBackend):
    """The vectorised NumPy reference (:mod:`rmsopt._kernels.reference`): an oracle and a
    fallback, computed independently of the kernels."""

    name = "numpy"

    @staticmethod
    def global_norm(layout, flat_grads):
        """Global L2 norm of the gradients (float64; NaN if any is NaN), in NumPy's order."""
        return reference.global_norm(flat_grads)

    @staticmethod
    def apply_step(variant, layout, params, grads, state, c, h, out=None):
        """One update of every parameter array: in place, or from ``params`` into ``out``
        (``params`` then only read); lists of 1-D views, ``state`` three flat buffers."""
        rule, flags, common, active = variant
        out = params if out is None else out
        fn = reference.STEPS[rule.name]
        for p, q, g, off in zip(params, out, grads, layout.offset.tolist()):
            views = [s[off:off + p.size] if used else None for s, used in zip(state, active)]
            p_old, g = reference.prepare_gradient(p, g, c, common)
            new = fn(p_old, g, *views, h, flags)
            q[...] = new[0]
            for view, value in zip(views, new[1:]):
                if view is not None:
                    view[...] = value

    def step_function(self, variant, layout, params, state, clip_norm=None, count=None):
        """See :meth:`CpuBackend.step_function` (no counting: the caller counts)."""
        def reference_step(grads, c, h, src=None, dst=None):
            self.apply_step(variant, layout, params if src is None else src.arrays, grads,
                            state, c, h, params if dst is None else dst.arrays)
        return reference_step

    @staticmethod
    def apply_rows(variant, layout, j, param, rows, grad, state, c, h, count=None):
        """See :meth:`CpuBackend.apply_rows` (no counting: the caller counts)."""
        rule, flags, common, active = variant
        width = param.shape[1]
        base = int(layout.offset[j])
        idx = (base + rows[:, None] * width + np.arange(width)).reshape(-1)
        views = [s[idx] if used else None for s, used in zip(state, active)]
        p_old, g = reference.prepare_gradient(param[rows].reshape(-1), grad.reshape(-1), c,
                                              common)
        new = reference.STEPS[rule.name](p_old, g, *views, h, flags)
        param[rows] = new[0].reshape(-1, width)
        for s, used, value in zip(state, active, new[1:]):
            if used:
                s[idx] = value


class CpuBackend(HostBackend):
    """The Numba kernels of :mod:`rmsopt._kernels.cpu`: threaded with ``prange`` from
    :data:`rmsopt._config.PARALLEL_THRESHOLD` elements, serial below (same bits)."""

    name = "cpu"
    counts_steps = True

    @staticmethod
    def global_norm(layout, flat_grads):
        """Global L2 norm of the gradients over all arrays (float64; NaN if any is NaN),
        the same bits for any thread count."""
        args = (layout.gaddr(flat_grads), layout.size, layout.tasks, flat_grads[0])
        return _launch(lambda *a: cpu.global_norm(*a, parallel=layout.parallel), args,
                       layout.parallel)

    @staticmethod
    def apply_step(variant, layout, params, grads, state, c, h, out=None):
        """As :meth:`NumpyBackend.apply_step`, with the kernel (no step counter is kept)."""
        in_place = out is None or out is params
        kernel = cpu.step_kernel(variant.rule.kernel, *variant[1:], layout.parallel, in_place)
        paddr = layout.gaddr(params)
        count, caddr = _counter(None)  # ``count`` stays referenced until the kernel has run
        args = (paddr, paddr if in_place else layout.gaddr(out),
                layout.gaddr(grads), layout.size, layout.offset, layout.tasks, *state, c, h,
                caddr)
        _launch(kernel, args, layout.parallel)
        del count

    @staticmethod
    def step_function(variant, layout, params, state, clip_norm=None, count=None):
        """``step(grads, c, h, src=None, dst=None)`` for fixed parameters, state and variant:
        the per-step fast path.

        The kernel is looked up once, and the gradients' addresses are written into a
        preallocated table, so a step costs little more than the kernel call itself.
        The table is the step's own: callers that share a step function between
        threads must take turns (:class:`rmsopt.Optimizer` holds a lock).
        ``src`` and ``dst`` are :class:`Buffers` to read the parameters from and to
        write them to, each instead of ``params`` (None): an out-of-place step.
        ``count``: a one-element int64 array that the kernel increments in the same
        native call as the update (kept alive by the step). ``clip_norm`` is the
        caller's (host backends get the clip scale in ``c``).
        """
        gaddr = np.zeros(len(params), dtype=np.int64)
        fixed = (gaddr, layout.size, layout.offset, layout.tasks, *state)
        count, caddr = _counter(count)
        paddr, parallel = layout.paddr, layout.parallel
        entries = {}  # in place (True) or not: each kernel compiled when first used
        store = None

        def step(grads, c, h, src=None, dst=None):
            nonlocal store
            if store is None:  # every step passes the same types: resolve the overloads once
                store = cpu.entry_point(cpu.store_address, (gaddr, 0, grads[0]))
            for j, g in enumerate(grads):
                store(gaddr, j, g)
            p = paddr if src is None else src.addr
            q = paddr if dst is None else dst.addr
            in_place = p is q
            args = (p, q, *fixed, c, h, caddr)
            entry = entries.get(in_place)
            if entry is None:
                kernel = cpu.step_kernel(variant.rule.kernel, *variant[1:], parallel, in_place)
                entry = entries[in_place] = cpu.entry_point(kernel, args)
            _launch(entry, args, parallel)

        return step

    @staticmethod
    def apply_rows(variant, layout, j, param, rows, grad, state, c, h, count=None):
        """Update rows ``rows`` of parameter array ``j`` and only their state, in place.

        ``param`` is a 2-D view ``(rows, width)`` of the array, ``rows`` distinct in-bounds
        int64 indices and ``grad`` a C-contiguous ``(len(rows), width)`` array of the dtype.
        ``count`` as for :meth:`step_function`.
        """
        width = param.shape[1]
        base = int(layout.offset[j])
        table = cpu.row_table(address(param), address(grad), rows, width, param.itemsize, base)
        parallel = rows.size * width >= _config.PARALLEL_THRESHOLD
        kernel = cpu.step_kernel(variant.rule.kernel, *variant[1:], parallel)
        count, caddr = _counter(count)
        _launch(kernel, (*table, *state, c, h, caddr), parallel)


class CudaBackend(Backend):
    """The kernels of :mod:`rmsopt._kernels.cuda` on device arrays (numba-cuda's, CuPy's,
    PyTorch's: anything with ``__cuda_array_interface__``), in place; that module is
    imported when this backend is first asked for. The clip scale is computed on the
    device. No ``apply_rows``: ``step_rows`` runs on the host backends only."""

    name = "cuda"
    host, rows, counts_steps, clips_on_device = False, False, False, True

    def __init__(self):
        self.kernels = cuda_kernels()

    def param_arrays(self, params):
        return self.kernels.param_arrays(params)

    @staticmethod
    def flat(arrays):
        return list(arrays)

    def layout(self, flat_params):
        return self.kernels.DeviceLayout(flat_params)

    def full(self, n, value, dtype):
        return self.kernels.full(n, value, dtype)

    def to_host(self, a):
        return self.kernels.to_host(a)

    def from_host(self, a):
        return self.kernels.cuda.to_device(a)

    def write(self, a, values):
        self.kernels.as_device_view(a).copy_to_device(np.ascontiguousarray(values))

    def grad_arrays(self, grad, arrays, single):
        """Device gradients checked against the parameters (no conversion on the device)."""
        return self.kernels.grad_arrays(grad, arrays, single)

    def all_finite(self, layout, grads):
        return all(self.kernels.all_finite(g) for g in grads)

    def step_function(self, variant, layout, params, state, clip_norm=None, count=None):
        """``step(grads, c, h)``, in place; ``clip_norm`` (if not None) applied on the
        device; no counting (the caller counts)."""
        return self.kernels.step_function(*variant, layout, params[0].dtype, state, clip_norm)

    def device_arrays(self):
        return self.kernels.DeviceArrays()


_HOST_BACKENDS = {"numpy": NumpyBackend(), "cpu": CpuBackend()}
_cuda_backend = []


def get(name):
    """The backend object of a concrete backend name (see :func:`resolve`)."""
    if name == "cuda":
        if not _cuda_backend:
            _cuda_backend.append(CudaBackend())
        return _cuda_backend[0]
    return _HOST_BACKENDS[name]


def block_step(rule, flags, common, active, p, g, state, c, h):
    """One update of a single block, out of place: the building block of engines whose
    arrays are immutable (Dask), with the CPU kernel of :meth:`CpuBackend.apply_step`.

    Parameters
    ----------
    rule, flags, common, active, c, h
        As for :meth:`CpuBackend.apply_step` (``variant`` unpacked).
    p, g : ndarray
        The block's parameters and gradient (same shape; ``g`` is cast to ``p``'s dtype).
    state : sequence of 3
        The block of each slot, None where ``active`` says unused.

    Returns
    -------
    p, state
        New arrays of ``p``'s shape (None for unused slots); the arrays given are not
        modified. The serial kernel runs: the engine parallelises over blocks.
    """
    shape = p.shape
    p = np.array(p, order="C").reshape(-1)  # a copy, updated in place by the kernel
    g = np.ascontiguousarray(g, dtype=p.dtype).reshape(-1)
    state = [np.array(s, dtype=p.dtype, order="C").reshape(-1) if used
             else np.empty(0, p.dtype) for s, used in zip(state, active)]
    layout = Layout([p])
    layout.parallel = False
    CpuBackend.apply_step(Variant(rule, flags, common, active), layout, [p], [g], state, c, h)
    return p.reshape(shape), [s.reshape(shape) if used else None
                              for s, used in zip(state, active)]
