"""CPU kernels: indexing plus one call of a rule from :mod:`rmsopt.rules`.

Parameters may be one array or many. Either way a step is a single kernel call
over a fixed *task table*: row ``t`` says "elements ``lo:hi`` of array ``j``".
Arrays are reached through their addresses (kept alive by the caller), and the
optimizer state is one flat buffer per slot, array ``j`` starting at
``offset[j]``. A step reads the parameters at ``paddr`` and writes them at
``qaddr``: the same table for a step in place, a second buffer's for
``minimize``'s out-of-place steps. ``prange`` spreads the tasks over threads; the serial kernel is
the same code compiled with ``parallel=False``, so both give identical bits.

Kernels are built per (rule, flags) by :func:`step_kernel`, with the flags as
compile-time constants, and compile once per dtype. A step kernel also adds one
to an int64 step counter at address ``count``, in the same call as the update.
"""

import numba
import numpy as np
from numba import carray, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import _config, rules
from .cache import cached

JIT = dict(error_model=_config.ERROR_MODEL, fastmath=_config.FASTMATH, nogil=True)


@intrinsic
def _pointer(typingctx, address):
    """The ``int64`` address of an array's first element, as a pointer."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


# Inner loops count with an unsigned index: a signed one could be negative as far as Numba
# knows, so every access would get a wrap-around select that stops LLVM from vectorising
# (measured: 3x slower at 2e7 elements).
_unsigned = njit(inline="always")(lambda n: np.uint64(n))


@njit(inline="always")
def borrow(a):
    """A view of ``a`` that holds no reference; the caller keeps ``a`` alive.

    Numba counts references to an array with atomic increments and decrements
    that it cannot always prune inside a loop with calls and branches (measured:
    three quarters of the compiled minimize loop's time on 2-D Rosenbrock). A
    view made from the address has no reference count, so those become no-ops.
    """
    return carray(_pointer(a.ctypes.data), a.shape, a.dtype)


@cached
@njit
def address(a):
    """The address of ``a``'s first element (see :func:`byte_bounds`)."""
    return np.int64(a.ctypes.data)


@cached
@njit
def byte_bounds(a):
    """First and one-past-last byte address that array ``a`` can touch, as ints.

    ``a.__array_interface__`` costs microseconds (NumPy builds a dict); this is
    a few hundred nanoseconds from Python, which matters per array of a step.
    """
    lo = hi = np.int64(a.ctypes.data)
    for k in range(a.ndim):
        n, stride = a.shape[k], a.strides[k]
        if stride < 0:
            lo += (n - 1) * stride
        else:
            hi += (n - 1) * stride
    return lo, hi + a.itemsize


@cached
@njit
def store_address(table, j, a):
    """``table[j] = address of a``, faster from Python than ``a.__array_interface__``."""
    table[j] = a.ctypes.data


def entry_point(kernel, args):
    """The compiled overload of ``kernel`` for ``args``, callable without type dispatch.

    A dispatcher types every argument on every call (microseconds for the
    scalars namedtuples); a step loop whose argument types never change calls
    the overload's entry point directly. Compiles the overload if needed.
    """
    argtypes = tuple(numba.typeof(a) for a in args)
    if argtypes not in kernel.overloads:
        kernel.compile(argtypes)
    return kernel.overloads[argtypes].entry_point


def task_table(sizes, task_size):
    """Rows ``(array, lo, hi)`` covering every array in chunks of ``task_size``."""
    rows = [
        (j, lo, min(lo + task_size, n))
        for j, n in enumerate(sizes)
        for lo in range(0, n, task_size)
    ]
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


_step_kernels = {}


def step_kernel(rule, flags, common, active, parallel):
    """The compiled step for one rule variant (built once, then memoised).

    Parameters
    ----------
    rule : numba dispatcher
        A rule of :mod:`rmsopt.rules`.
    flags, common : namedtuple
        The rule's switches and the gradient preparation switches
        (:class:`rmsopt.rules.Common`), baked in as constants.
    active : tuple of 3 bool
        Which state slots the variant reads and writes; an unused slot is
        never touched, so it costs no memory traffic.
    parallel : bool
        ``prange`` over tasks with threads, or a plain loop.
    """
    key = (rule, flags, common, active, parallel)
    if key not in _step_kernels:
        _step_kernels[key] = _build_step(rule, flags, common, active, parallel)
    return _step_kernels[key]


def update_loop(rule, flags, common, active):
    """``update(p, q, g, v0, v1, v2, c, h)``: the element loop of one variant, inlined.

    Reads the parameters from ``p`` and writes the updated ones to ``q`` (``q`` is
    ``p`` for a step in place; another buffer for an out-of-place step, which moves
    the same bytes and keeps the previous iterate); the used state arrays are
    updated in place; all of one length. The step kernels run it on each task's
    slice; the compiled minimize loop calls it directly on small problems.
    """
    use0, use1, use2 = active

    @njit(inline="always")
    def update(p, q, g, v0, v1, v2, c, h):
        for k in range(_unsigned(p.size)):
            pk = p[k]
            gk = rules.prepare_gradient(pk, g[k], c, common)
            pk = rules.decay_parameter(pk, c, common)
            # An unused slot (an empty array) gets a placeholder that the rule ignores.
            a = v0[k] if use0 else gk
            b = v1[k] if use1 else gk
            d = v2[k] if use2 else gk
            pk, a, b, d = rule(pk, gk, a, b, d, h, flags)
            q[k] = pk
            if use0:
                v0[k] = a
            if use1:
                v1[k] = b
            if use2:
                v2[k] = d

    return update


def _build_step(rule, flags, common, active, parallel):
    update = update_loop(rule, flags, common, active)

    @njit(parallel=parallel, **JIT)
    def step(paddr, qaddr, gaddr, size, offset, tasks, s0, s1, s2, c, h, count):
        """``count``: the address of an int64 step counter (an int converts faster than an
        array at the call)."""
        for t in prange(tasks.shape[0]):
            j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
            p = carray(_pointer(paddr[j]), size[j], s0.dtype)[lo:hi]
            g = carray(_pointer(gaddr[j]), size[j], s0.dtype)[lo:hi]
            start, stop = offset[j] + lo, offset[j] + hi
            if qaddr[j] == paddr[j]:
                # In place: the same view read and written, so LLVM knows that p[k] is
                # stored where it was loaded and vectorises. With a second view of the same
                # memory its overlap check fails at run time and the scalar loop runs
                # (measured: 3.9x slower at 5e6 float32).
                update(p, p, g, s0[start:stop], s1[start:stop], s2[start:stop], c, h)
            else:
                q = carray(_pointer(qaddr[j]), size[j], s0.dtype)[lo:hi]
                update(p, q, g, s0[start:stop], s1[start:stop], s2[start:stop], c, h)
        # Counted in the same native call as the update, so that no interrupt
        # (raised by Python when a call returns) can separate the two.
        counter = carray(_pointer(count), 1, np.int64)
        counter[0] += 1

    return cached(step, (rule, flags, common, active))


@njit(inline="always")
def tree_sum(lanes):
    """Sum of ``lanes`` (a power-of-two count) by pairwise halving: lane ``l`` takes ``l + w``."""
    w = lanes.size // 2
    while w > 0:
        for k in range(w):
            lanes[k] += lanes[k + w]
        w //= 2
    return lanes[0]


@njit(inline="always")
def task_sum_squares(g, lanes_n):
    """Sum of squares of one task's elements in float64, in the lane order of :func:`global_norm`."""
    lanes = np.zeros(lanes_n, dtype=np.float64)
    for base in range(0, g.size, lanes_n):
        for k in range(_unsigned(min(lanes_n, g.size - base))):
            x = np.float64(g[base + k])
            lanes[k] += x * x
    return tree_sum(lanes)


def _build_global_norm(parallel):
    @njit(parallel=parallel, **JIT)
    def global_norm(gaddr, size, tasks, dtype_ref, lanes_n):
        ntasks = tasks.shape[0]
        partial = np.zeros(ntasks, dtype=np.float64)
        for t in prange(ntasks):
            j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
            partial[t] = task_sum_squares(carray(_pointer(gaddr[j]), size[j],
                                                 dtype_ref.dtype)[lo:hi], lanes_n)
        total = 0.0
        for t in range(ntasks):  # fixed order: same bits for any thread count
            total += partial[t]
        if total != np.inf:  # finite, or NaN (a NaN element): the usual case
            return np.sqrt(total)
        # The squares overflowed (float64 elements above ~1.3e154, no NaN): scale by the
        # largest magnitude (a max is exact, so order-free), then sum again in task order.
        for t in prange(ntasks):
            j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
            g = carray(_pointer(gaddr[j]), size[j], dtype_ref.dtype)[lo:hi]
            m = 0.0
            for k in range(_unsigned(hi - lo)):
                a = abs(np.float64(g[k]))
                if a > m:
                    m = a
            partial[t] = m
        scale = 0.0
        for t in range(ntasks):
            if partial[t] > scale:
                scale = partial[t]
        if scale == np.inf:  # an infinite element: the norm is inf
            return scale
        for t in prange(ntasks):
            j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
            g = carray(_pointer(gaddr[j]), size[j], dtype_ref.dtype)[lo:hi]
            acc = 0.0
            for k in range(_unsigned(hi - lo)):
                x = np.float64(g[k]) / scale
                acc += x * x
            partial[t] = acc
        total = 0.0
        for t in range(ntasks):
            total += partial[t]
        return scale * np.sqrt(total)

    return cached(global_norm)


_global_norm = {False: _build_global_norm(False), True: _build_global_norm(True)}
global_norm_kernel = _global_norm  # by ``parallel``, for callers in nopython code


def global_norm(gaddr, size, tasks, dtype_ref, parallel):
    """Global L2 norm of the gradients over all arrays, in float64, deterministic.

    The first pass sums the squares in float64 in a fixed order, so the result
    does not depend on the number of threads and the CUDA backend reproduces it
    (one thread per lane): in each task, lane ``l`` of
    :data:`rmsopt._config.REDUCE_LANES` sums the squares of elements
    ``lo + l, lo + l + L, ...`` in turn; the lanes are added by :func:`tree_sum`;
    the task partials are added in task order. Only if that sum overflows to
    inf (float64 elements above about 1.3e154) does a second pass, on the CPU
    only, divide by the largest magnitude first:
    ``norm = m * sqrt(sum((g / m)**2))``, in task order. A NaN element gives
    NaN, an infinite one inf. ``dtype_ref`` is any array of the gradients' dtype.
    """
    return _global_norm[parallel](gaddr, size, tasks, dtype_ref, _config.REDUCE_LANES)


def row_table(param_address, grad_address, rows, width, itemsize, state_offset):
    """Arguments that make a :func:`step_kernel` kernel update only some rows of one array.

    A sparse row update is the dense step over one "array" per touched row: row
    ``rows[i]`` of the parameter, row ``i`` of the gradient, and the state elements
    from ``state_offset + rows[i] * width``. The compiled step itself is reused, so
    rows run the very same code (no second kernel, no new specialisation).

    Parameters
    ----------
    param_address, grad_address : int
        Addresses of the C-contiguous parameter array (rows of ``width`` elements)
        and of the ``(len(rows), width)`` gradient.
    rows : int64 array
        Distinct row indices, already checked to be in bounds.
    width, itemsize : int
        Elements per row and bytes per element.
    state_offset : int
        Where the parameter array starts in the flat state buffers.

    Returns
    -------
    paddr, qaddr, gaddr, size, offset, tasks : int64 arrays
        The first six arguments of the step kernel (``qaddr`` is ``paddr``: in place).
    """
    m = rows.size
    stride = np.int64(width * itemsize)
    index = np.arange(m, dtype=np.int64)
    tasks = np.zeros((m, 3), dtype=np.int64)
    tasks[:, 0] = index
    tasks[:, 2] = width
    paddr = param_address + rows * stride
    return (paddr, paddr, grad_address + index * stride,
            np.full(m, width, dtype=np.int64), state_offset + rows * np.int64(width), tasks)


@cached
@njit(**JIT)
def task_sums_of_squares(g, task_size, lanes_n):
    """The per-task partial sums of :func:`global_norm`'s first pass for one 1-D block.

    Tasks are ``task_size`` elements from the block's start. Serial: it serves engines that
    parallelise over blocks (Dask). Added in order, the partials of consecutive blocks give
    the bits of that pass over their concatenation when every block but the last has a
    multiple of ``task_size`` elements.
    """
    n_tasks = (g.size + task_size - 1) // task_size
    partial = np.empty(n_tasks, dtype=np.float64)
    for t in range(n_tasks):
        partial[t] = task_sum_squares(g[t * task_size:min((t + 1) * task_size, g.size)], lanes_n)
    return partial
