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
TASK_SIZE
    Elements per task of the kernels' task table (the unit of work a thread
    takes). The gradient-norm reduction forms one partial sum per task and adds
    them in task order, so its result has the same bits for any thread count.
"""

FASTMATH = False
ERROR_MODEL = "numpy"
PARALLEL_THRESHOLD = 1 << 15
TASK_SIZE = 1 << 14
