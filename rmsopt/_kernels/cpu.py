"""CPU kernels: indexing plus one call of a rule from :mod:`rmsopt.rules`.

Parameters may be one array or many. Either way a step is a single kernel call
over a fixed *task table*: row ``t`` says "elements ``lo:hi`` of array ``j``".
Arrays are reached through their addresses (kept alive by the caller), and the
optimizer state is one flat buffer per slot, array ``j`` starting at
``offset[j]``. A step in place updates the parameters at ``paddr``; an
out-of-place step (``minimize``'s) reads them at ``paddr`` and writes them at
``qaddr``, a second buffer's table. Each row of the table is one call of a
compiled *task function* (:func:`task_kernel`); the step kernel runs the rows
with ``prange`` over threads or in a plain loop, so serial and threaded steps
give identical bits and share the compiled element loop.

Kernels are built per (rule, flags) by :func:`step_kernel`, with the flags as
compile-time constants, and compile once per dtype, each kind (serial or
threaded, in place or not) when first used. A step kernel also adds one to an
int64 step counter at address ``count``, in the same call as the update.

Compile time (a new process with an empty kernel cache pays it): each compiled
function costs Numba a fixed 0.1-0.3 s besides its size, and ``inline="always"``
copies the callee's IR at every call site, so a call site of the element loop
costs about 0.5 s. Hence one call site per kernel, views built by intrinsics,
the threaded kernel a thin ``prange`` over the task function (Numba's parfor
passes cost seconds on a large body), and rare paths in kernels of their own.
"""

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic
from numba.np import arrayobj

from .. import _config, rules
from .cache import cached

JIT = dict(error_model=_config.ERROR_MODEL, fastmath=_config.FASTMATH, nogil=True)
# For functions called only from other kernels: Numba then builds no wrapper that converts
# Python arguments (namedtuples of scalars, arrays), about half of a task function's LLVM
# time (measured 0.22 -> 0.06 s) and a quarter of its kernel's.
INNER = dict(JIT, no_cpython_wrapper=True, no_cfunc_wrapper=True)


# Views and counters are built by intrinsics, straight from the addresses: Numba's
# ``carray`` and slicing type and lower an overload per dtype and rank (about 0.05 s
# each, and the longest part of the compiled minimize loop's compile was its views).

def _intp(context, builder, value, ty):
    return context.cast(builder, value, ty, types.intp)


def _array_at(context, builder, dtype, pointer, n):
    """An array struct of ``n`` elements of ``dtype`` at ``pointer``, with no owner."""
    aryty = types.Array(dtype, 1, "C")
    itemsize = context.get_abi_sizeof(context.get_data_type(dtype))
    ary = arrayobj.make_array(aryty)(context, builder)
    arrayobj.populate_array(ary, data=pointer, shape=[n],
                            strides=[context.get_constant(types.intp, itemsize)],
                            itemsize=context.get_constant(types.intp, itemsize), meminfo=None)
    return ary._getvalue()


@intrinsic
def view(typingctx, address, lo, n, like):
    """Elements ``lo:lo + n`` of the 1-D array of ``like``'s dtype at ``address`` (an int).

    A C-contiguous view that holds no reference (the caller keeps the memory alive)
    and whose bounds are the caller's to check.
    """
    if not (isinstance(address, types.Integer) and isinstance(lo, types.Integer)
            and isinstance(n, types.Integer) and isinstance(like, types.Array)):
        return None

    def codegen(context, builder, signature, args):
        base = builder.inttoptr(_intp(context, builder, args[0], address),
                                context.get_data_type(like.dtype).as_pointer())
        pointer = builder.gep(base, [_intp(context, builder, args[1], lo)])
        return _array_at(context, builder, like.dtype, pointer,
                         _intp(context, builder, args[2], n))

    return types.Array(like.dtype, 1, "C")(address, lo, n, like), codegen


@intrinsic
def part(typingctx, a, lo, n):
    """``a[lo:lo + n]`` of a 1-D C-contiguous array, without bounds or reference count."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C"
            and isinstance(lo, types.Integer) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = arrayobj.make_array(a)(context, builder, value=args[0]).data
        pointer = builder.gep(data, [_intp(context, builder, args[1], lo)])
        return _array_at(context, builder, a.dtype, pointer, _intp(context, builder, args[2], n))

    return types.Array(a.dtype, 1, "C")(a, lo, n), codegen


@intrinsic
def increment(typingctx, address):
    """Add one to the int64 at ``address`` (an int)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i64 = context.get_value_type(types.int64)
        pointer = builder.inttoptr(_intp(context, builder, args[0], address), i64.as_pointer())
        builder.store(builder.add(builder.load(pointer), i64(1)), pointer)
        return context.get_dummy_value()

    return types.none(address), codegen


@intrinsic
def _unsigned(typingctx, n):
    """``n`` as uint64.

    Inner loops count with an unsigned index: a signed one could be negative as far as
    Numba knows, so every access would get a wrap-around select that stops LLVM from
    vectorising (measured: 3x slower at 2e7 elements).
    """
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], n, types.uint64)

    return types.uint64(n), codegen


@intrinsic
def borrow(typingctx, a):
    """A view of ``a`` that holds no reference; the caller keeps ``a`` alive.

    Numba counts references to an array with atomic increments and decrements
    that it cannot always prune inside a loop with calls and branches (measured:
    three quarters of the compiled minimize loop's time on 2-D Rosenbrock). A
    view without an owner has no reference count, so those become no-ops. The
    same shape, strides and layout as ``a``, writable.
    """
    if not isinstance(a, types.Array):
        return None
    result = types.Array(a.dtype, a.ndim, a.layout)

    def codegen(context, builder, signature, args):
        src = arrayobj.make_array(a)(context, builder, value=args[0])
        out = arrayobj.make_array(result)(context, builder)
        arrayobj.populate_array(out, data=src.data, shape=src.shape, strides=src.strides,
                                itemsize=src.itemsize, meminfo=None)
        return out._getvalue()

    return result(a), codegen


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
_task_kernels = {}


def step_kernel(rule, flags, common, active, parallel, in_place=True):
    """The compiled step for one rule variant (built once, then memoised).

    ``step(paddr, qaddr, gaddr, size, offset, tasks, s0, s1, s2, c, h, count)``
    runs :func:`task_kernel`'s function on every row of ``tasks`` and adds one to
    the int64 at address ``count``.

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
        ``prange`` over tasks with threads, or a plain loop. Both call the same
        compiled task function, so they give the same bits, and a process that
        uses both compiles the element loop once.
    in_place : bool
        Update the parameters at ``paddr`` (``qaddr`` is not read: pass ``paddr``),
        or read them at ``paddr`` and write them at ``qaddr``. Two kernels, each
        compiled when first used: ``Optimizer.step`` needs only the first,
        ``minimize``'s Python loop only the second.
    """
    key = (rule, flags, common, active, parallel, in_place)
    if key not in _step_kernels:
        _step_kernels[key] = _build_step(rule, flags, common, active, parallel, in_place)
    return _step_kernels[key]


def update_loop(rule, flags, common, active):
    """``update(p, q, g, v0, v1, v2, c, h)``: the element loop of one variant, inlined.

    Reads the parameters from ``p`` and writes the updated ones to ``q`` (``q`` is
    ``p`` for a step in place; another buffer for an out-of-place step, which moves
    the same bytes and keeps the previous iterate); the used state arrays are
    updated in place; all of one length. The task functions run it on each task's
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


def task_kernel(rule, flags, common, active, in_place=True):
    """``task(t, paddr, qaddr, gaddr, offset, tasks, s0, s1, s2, c, h)``: the step of row
    ``t`` of the task table, for one rule variant (built once, memoised, cached on disk).

    In place, the element loop reads and writes the parameters through one view, so
    that LLVM knows that ``p[k]`` is stored where it was loaded and vectorises; with
    two views of the same memory its run-time overlap check fails and the scalar loop
    runs (measured: 3.9x slower at 5e6 float32). Out of place, it reads ``paddr``'s
    arrays and writes ``qaddr``'s.
    """
    key = (rule, flags, common, active, in_place)
    if key not in _task_kernels:
        _task_kernels[key] = _build_task(rule, flags, common, active, in_place)
    return _task_kernels[key]


def _build_task(rule, flags, common, active, in_place):
    update = update_loop(rule, flags, common, active)
    use0, use1, use2 = active

    @njit(**INNER)
    def task(t, paddr, qaddr, gaddr, offset, tasks, s0, s1, s2, c, h):
        j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
        n = hi - lo
        p = view(paddr[j], lo, n, s0)
        q = p if in_place else view(qaddr[j], lo, n, s0)
        start = offset[j] + lo
        # unused active are empty arrays: their views are empty too, never read
        update(p, q, view(gaddr[j], lo, n, s0), part(s0, start, n if use0 else 0),
               part(s1, start, n if use1 else 0), part(s2, start, n if use2 else 0), c, h)

    return cached(task, (rule, flags, common, active, in_place))


def _build_step(rule, flags, common, active, parallel, in_place=True):
    task = task_kernel(rule, flags, common, active, in_place)

    @njit(parallel=parallel, **JIT)
    def step(paddr, qaddr, gaddr, size, offset, tasks, s0, s1, s2, c, h, count):
        """``count``: the address of an int64 step counter (an int converts faster than an
        array at the call)."""
        for t in prange(tasks.shape[0]):
            # unsigned: the type of prange's index in the threaded code (one specialisation)
            task(_unsigned(t), paddr, qaddr, gaddr, offset, tasks, s0, s1, s2, c, h)
        # Counted in the same native call as the update, so that no interrupt
        # (raised by Python when a call returns) can separate the two.
        increment(count)

    return cached(step, (rule, flags, common, active, in_place))


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


@cached
@njit(**INNER)
def _task_squares(t, gaddr, tasks, dtype_ref, lanes_n):
    """:func:`task_sum_squares` of row ``t`` of the task table."""
    j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
    return task_sum_squares(view(gaddr[j], lo, hi - lo, dtype_ref), lanes_n)


def _build_sum_squares(parallel):
    @njit(parallel=parallel, **JIT)
    def sum_squares(gaddr, size, tasks, dtype_ref, lanes_n):
        ntasks = tasks.shape[0]
        partial = np.empty(ntasks, dtype=np.float64)
        for t in prange(ntasks):
            partial[t] = _task_squares(_unsigned(t), gaddr, tasks, dtype_ref, lanes_n)
        total = 0.0
        for t in range(ntasks):  # fixed order: same bits for any thread count
            total += partial[t]
        return total

    return cached(sum_squares)


@cached
@njit(**JIT)
def scaled_norm(gaddr, size, tasks, dtype_ref):
    """:func:`global_norm` when the sum of squares overflowed: ``m * sqrt(sum((g / m)**2))``
    with ``m`` the largest magnitude, the sum in task order (serial: this is rare)."""
    scale = 0.0
    for t in range(tasks.shape[0]):  # a max is exact, so order-free
        j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
        g = view(gaddr[j], lo, hi - lo, dtype_ref)
        for k in range(_unsigned(hi - lo)):
            a = abs(np.float64(g[k]))
            if a > scale:
                scale = a
    if scale == np.inf:  # an infinite element: the norm is inf
        return scale
    total = 0.0
    for t in range(tasks.shape[0]):
        j, lo, hi = tasks[t, 0], tasks[t, 1], tasks[t, 2]
        g = view(gaddr[j], lo, hi - lo, dtype_ref)
        acc = 0.0
        for k in range(_unsigned(hi - lo)):
            x = np.float64(g[k]) / scale
            acc += x * x
        total += acc
    return scale * np.sqrt(total)


#: The first pass of :func:`global_norm` (the sum of squares), by ``parallel``.
_global_norm = {False: _build_sum_squares(False), True: _build_sum_squares(True)}


def _build_global_norm(parallel):
    sum_squares = _global_norm[parallel]

    @njit(inline="always")
    def norm(gaddr, size, tasks, dtype_ref, lanes_n):
        total = sum_squares(gaddr, size, tasks, dtype_ref, lanes_n)
        if total != np.inf:
            return np.sqrt(total)
        return scaled_norm(gaddr, size, tasks, dtype_ref)

    return norm


#: :func:`global_norm` by ``parallel``, for callers in nopython code.
global_norm_kernel = {False: _build_global_norm(False), True: _build_global_norm(True)}


def global_norm(gaddr, size, tasks, dtype_ref, parallel):
    """Global L2 norm of the gradients over all arrays, in float64, deterministic.

    The first pass sums the squares in float64 in a fixed order, so the result
    does not depend on the number of threads and the CUDA backend reproduces it
    (one thread per lane): in each task, lane ``l`` of
    :data:`rmsopt._config.REDUCE_LANES` sums the squares of elements
    ``lo + l, lo + l + L, ...`` in turn; the lanes are added by :func:`tree_sum`;
    the task partials are added in task order. Only if that sum overflows to
    inf (float64 elements above about 1.3e154) does a second pass, on the CPU
    only, divide by the largest magnitude first (:func:`scaled_norm`, compiled
    the first time it is needed). A NaN element gives NaN, an infinite one inf.
    ``dtype_ref`` is any array of the gradients' dtype.
    """
    total = _global_norm[parallel](gaddr, size, tasks, dtype_ref, _config.REDUCE_LANES)
    if total != np.inf:  # finite, or NaN (a NaN element): the usual case
        return float(np.sqrt(total))
    return scaled_norm(gaddr, size, tasks, dtype_ref)


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
