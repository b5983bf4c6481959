"""Tunables read by every kernel decorator, in one place.

FASTMATH
    Off. LLVM's ``nnan``/``ninf`` flags would let a NaN gradient be optimised
    away, and ``contract`` (FMA) would break the bitwise agreement with the
    NumPy reference. The kernels are memory-bound, so fast-math buys nothing.
ERROR_MODEL
    ``"numpy"``: a zero or NaN denominator gives inf/NaN as NumPy does, never
    an exception halfway through an array.
PARALLEL_THRESHOLD
    Arrays with fewer elements than this use the serial loop; thread start-up
    costs more than it saves below it (measured by ``python -m rmsopt bench``).
NORM_THRESHOLD
    ``minimize``'s Python loop takes the gradient's max-norm (its ``gtol`` test) with
    threads from this many elements: a reduction that only reads needs more elements
    than a step to repay the threads (measured: 0.11 against 0.03 ms serial at 3.3e4
    float32, 0.08 against 0.11 ms at 1e5, 5.3 against 10.5 ms at 1e7).
TASK_SIZE
    Elements per task of the kernels' task table (the unit of work a thread
    takes). The gradient-norm reduction forms one partial sum per task and adds
    them in task order, so its result has the same bits for any thread count.
REDUCE_LANES
    Lanes of the gradient-norm reduction inside a task (a power of two): part
    of its fixed summation order, shared by the CPU kernel (a vectorisable
    array of partial sums) and the CUDA kernel (one thread per lane). Read when
    a reduction runs (CPU) or an optimizer is built (CUDA); the simulator tests
    shrink it, since the simulator starts a Python thread per GPU thread.
COMPILED_LOOP_SIZE
    ``minimize`` runs its compiled loop (``compiled=None``, Numba objectives) only
    for fewer elements than this. The compiled loop removes Python's overhead per
    iteration (~20 us), which matters for small problems; above this size the
    Python loop, whose steps are threaded and copy nothing, is faster (measured
    with a threaded @njit quadratic, float64: 0.3-0.6x the compiled loop's time
    per iteration at 3e4-1e6 elements).
CUDA_THREADS_PER_BLOCK, CUDA_TASK_SIZE, CUDA_MAX_BLOCKS
    Launch shape of the CUDA step kernels: a block takes ``CUDA_TASK_SIZE``
    elements of one array at a time (its threads stride over them, so loads
    coalesce), and at most ``CUDA_MAX_BLOCKS`` blocks stride over the tasks.
    Elementwise, so results do not depend on them; the tests shrink them to
    run the grid-stride loops in the simulator.
OMP_WAIT_POLICY
    ``PASSIVE`` unless the environment sets it (``os.environ.setdefault`` at
    ``import rmsopt``, before Numba's OpenMP threading layer loads libgomp, which
    reads it then). OpenMP's default lets idle worker threads spin after a
    parallel kernel; when Python/NumPy code runs between steps (``minimize``, a
    training loop) a spinning worker can hold the core the main thread needs.
    Measured on a 2-core machine, a threaded step of 3e4-5e5 float64 elements
    followed by a NumPy gradient: 8.0-8.3 ms per iteration with spinning workers
    against 0.18-3.7 ms passive (the step alone: 75-1030 us against 120-1080 us).
    It applies to every libgomp loaded later in the process; set
    ``OMP_WAIT_POLICY=ACTIVE`` to keep spinning.
CACHE
    Keep compiled CPU kernels on disk between processes
    (:mod:`rmsopt._kernels.cache`, keyed so that it never serves stale code).
    On unless the environment sets ``RMSOPT_CACHE=0`` before ``import rmsopt``.
"""

import os

FASTMATH = False
ERROR_MODEL = "numpy"
PARALLEL_THRESHOLD = 1 << 15
COMPILED_LOOP_SIZE = PARALLEL_THRESHOLD
NORM_THRESHOLD = 1 << 17
TASK_SIZE = 1 << 14
REDUCE_LANES = 256
CUDA_THREADS_PER_BLOCK = 256
CUDA_TASK_SIZE = 1024
CUDA_MAX_BLOCKS = 4096
CACHE = os.environ.get("RMSOPT_CACHE", "1") != "0"
OMP_WAIT_POLICY = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
