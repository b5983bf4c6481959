"""Backends: ``"auto" | "numpy" | "cpu" | "cuda"``, resolution and dispatch.

``"numpy"`` runs the vectorised reference of :mod:`rmsopt._kernels.reference`;
``"cpu"`` the Numba kernels of :mod:`rmsopt._kernels.cpu`, threaded with
``prange`` above :data:`rmsopt._config.PARALLEL_THRESHOLD` elements and serial
below; ``"cuda"`` the kernels of :mod:`rmsopt._kernels.cuda` on device arrays,
that module imported only when asked for (``import rmsopt`` never touches
CUDA); ``"auto"`` picks ``"cuda"`` when the parameters are device arrays
(``__cuda_array_interface__``) and ``"cpu"`` otherwise.
"""

import threading

import numba
import numpy as np

from . import _config
from ._kernels import cpu, reference
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


class Layout:
    """Where each parameter array lives in the flat state buffers.

    Attributes
    ----------
    size, offset : int64 arrays
        Element count of each array and its start in the flat state.
    tasks : (T, 3) int64 array
        The kernels' work table, see :func:`rmsopt._kernels.cpu.task_table`.
    paddr : int64 array
        Addresses of the parameter arrays (the optimizer keeps them alive).
    n : int
        Total number of elements.
    parallel : bool
        Whether the CPU backend uses its threaded kernels.
    """

    def __init__(self, flat_params):
        self.size = np.array([a.size for a in flat_params], dtype=np.int64)
        self.offset = np.concatenate(([0], np.cumsum(self.size)[:-1])).astype(np.int64)
        self.n = int(self.size.sum())
        self.tasks = cpu.task_table(self.size.tolist(), _config.TASK_SIZE)
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


def global_norm(backend, layout, flat_grads):
    """Global L2 norm of the gradients over all arrays (float64; NaN if any is NaN).

    The CPU kernel gives the same bits for any thread count; the NumPy reference
    computes the same quantity independently (other summation order).
    """
    if backend == "numpy":
        return reference.global_norm(flat_grads)
    args = (layout.gaddr(flat_grads), layout.size, layout.tasks, flat_grads[0])
    return _launch(lambda *a: cpu.global_norm(*a, parallel=layout.parallel), args,
                   layout.parallel)


def _counter(count):
    """``(array, address)`` of an int64 step counter: ``count``, or a fresh one that no one
    reads (the caller keeps the array alive while a kernel may use the address)."""
    count = np.zeros(1, dtype=np.int64) if count is None else count
    return count, int(address(count))


def apply_step(backend, rule, flags, common, slots, layout, params, grads, state, c, h,
               out=None):
    """One update of every parameter array: in place, or from ``params`` into ``out``.

    ``params`` and ``grads`` are lists of 1-D views of the same sizes;
    ``state`` holds three flat buffers (empty where ``slots`` says unused);
    ``out`` (optional) a list like ``params`` that receives the new parameters
    (``params`` is then only read). No step counter is kept.
    """
    out = params if out is None else out
    if backend == "numpy":
        fn = reference.STEPS[rule.name]
        for p, q, g, off in zip(params, out, grads, layout.offset.tolist()):
            views = [s[off:off + p.size] if used else None for s, used in zip(state, slots)]
            p_old, g = reference.prepare_gradient(p, g, c, common)
            new = fn(p_old, g, *views, h, flags)
            q[...] = new[0]
            for view, value in zip(views, new[1:]):
                if view is not None:
                    view[...] = value
        return
    kernel = cpu.step_kernel(rule.kernel, flags, common, slots, layout.parallel)
    paddr = layout.gaddr(params)
    count, caddr = _counter(None)  # ``count`` stays referenced until the kernel has run
    args = (paddr, paddr if out is params else layout.gaddr(out), layout.gaddr(grads),
            layout.size, layout.offset, layout.tasks, *state, c, h, caddr)
    _launch(kernel, args, layout.parallel)
    del count


class Buffers:
    """Arrays shaped like an optimizer's flat parameters, for out-of-place steps.

    :func:`step_function`'s step reads the parameters from one ``Buffers`` and
    writes them into another (``minimize`` alternates two, so that the previous
    iterate survives a step without a copy). The caller keeps the arrays alive.
    """

    def __init__(self, flat):
        self.arrays = list(flat)
        self.addr = np.array([address(a) for a in self.arrays], dtype=np.int64)


def layout(backend, flat_params):
    """The :class:`Layout` of ``flat_params`` (on CUDA, with its device tables)."""
    return cuda_kernels().Layout(flat_params) if backend == "cuda" else Layout(flat_params)


def full(backend, n, value, dtype):
    """A new flat state buffer of ``n`` elements equal to ``value``, where the backend keeps it."""
    if backend == "cuda":
        return cuda_kernels().full(n, value, dtype)
    return np.full(n, value, dtype=dtype)


def to_host(backend, a):
    """A host copy of a parameter or state array."""
    if backend == "cuda":
        return cuda_kernels().to_host(a)
    return a.copy()


def from_host(backend, a):
    """A state buffer made from the host array ``a`` (a copy)."""
    return cuda_kernels().cuda.to_device(a) if backend == "cuda" else np.array(a)


def write(backend, a, values):
    """Overwrite parameter array ``a`` in place with the host array ``values``."""
    if backend == "cuda":
        cuda_kernels().as_device_view(a).copy_to_device(np.ascontiguousarray(values))
    else:
        a[...] = values


def step_function(backend, rule, flags, common, slots, layout, params, state, clip_norm=None,
                  count=None):
    """``step(grads, c, h, src=None, dst=None)`` for fixed parameters, state and variant:
    the per-step fast path.

    The kernel is looked up once, and the gradients' addresses are written into a
    preallocated table, so a step costs little more than the kernel call itself.
    The table is the step's own: callers that share a step function between
    threads must take turns (:class:`rmsopt.Optimizer` holds a lock).
    ``src`` and ``dst`` (host backends) are :class:`Buffers` to read the parameters
    from and to write them to, each instead of ``params`` (None): an out-of-place step.
    On CUDA, ``clip_norm`` (if not None) is applied on the device, and steps are
    in place.

    ``count`` (CPU backend): a one-element int64 array that the kernel increments
    in the same native call as the update (kept alive by the step); the other
    backends leave counting to the caller.
    """
    if backend == "cuda":
        return cuda_kernels().step_function(rule, flags, common, slots, layout, params[0].dtype,
                                            state, clip_norm)
    if backend == "numpy":
        def reference_step(grads, c, h, src=None, dst=None):
            apply_step(backend, rule, flags, common, slots, layout,
                       params if src is None else src.arrays, grads, state, c, h,
                       params if dst is None else dst.arrays)
        return reference_step
    kernel = cpu.step_kernel(rule.kernel, flags, common, slots, layout.parallel)
    gaddr = np.zeros(len(params), dtype=np.int64)
    fixed = (gaddr, layout.size, layout.offset, layout.tasks, *state)
    count, caddr = _counter(count)
    paddr, parallel = layout.paddr, layout.parallel
    entry = store = None

    def step(grads, c, h, src=None, dst=None):
        nonlocal entry, store
        if store is None:  # every step passes the same types: resolve the overloads once
            store = cpu.entry_point(cpu.store_address, (gaddr, 0, grads[0]))
        for j, g in enumerate(grads):
            store(gaddr, j, g)
        args = (paddr if src is None else src.addr, paddr if dst is None else dst.addr,
                *fixed, c, h, caddr)
        if entry is None:
            entry = cpu.entry_point(kernel, args)
        _launch(entry, args, parallel)

    return step


def apply_rows(backend, rule, flags, common, slots, layout, j, param, rows, grad, state, c, h,
               count=None):
    """Update rows ``rows`` of parameter array ``j`` and only their state, in place.

    ``param`` is a 2-D view ``(rows, width)`` of the array, ``rows`` distinct in-bounds
    int64 indices and ``grad`` a C-contiguous ``(len(rows), width)`` array of the dtype.
    ``count`` as for :func:`step_function` (CPU: incremented by the kernel).
    """
    width = param.shape[1]
    base = int(layout.offset[j])
    if backend == "numpy":
        idx = (base + rows[:, None] * width + np.arange(width)).reshape(-1)
        views = [s[idx] if used else None for s, used in zip(state, slots)]
        p_old, g = reference.prepare_gradient(param[rows].reshape(-1), grad.reshape(-1), c, common)
        new = reference.STEPS[rule.name](p_old, g, *views, h, flags)
        param[rows] = new[0].reshape(-1, width)
        for s, used, value in zip(state, slots, new[1:]):
            if used:
                s[idx] = value
        return
    table = cpu.row_table(address(param), address(grad), rows, width, param.itemsize, base)
    parallel = rows.size * width >= _config.PARALLEL_THRESHOLD
    kernel = cpu.step_kernel(rule.kernel, flags, common, slots, parallel)
    count, caddr = _counter(count)
    _launch(kernel, (*table, *state, c, h, caddr), parallel)


def block_step(rule, flags, common, slots, p, g, state, c, h):
    """One update of a single block, out of place: the building block of engines whose
    arrays are immutable (Dask), with the CPU kernel of :func:`apply_step`.

    Parameters
    ----------
    rule, flags, common, slots, c, h
        As for :func:`apply_step`.
    p, g : ndarray
        The block's parameters and gradient (same shape; ``g`` is cast to ``p``'s dtype).
    state : sequence of 3
        The block of each slot, None where ``slots`` says unused.

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
             else np.empty(0, p.dtype) for s, used in zip(state, slots)]
    layout = Layout([p])
    layout.parallel = False
    apply_step("cpu", rule, flags, common, slots, layout, [p], [g], state, c, h)
    return p.reshape(shape), [s.reshape(shape) if used else None
                              for s, used in zip(state, slots)]
