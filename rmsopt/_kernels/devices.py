"""Telling device arrays from host arrays, without importing CUDA."""


def is_device_array(a):
    """Whether ``a`` is a CUDA device array (or the simulator's); imports nothing."""
    return hasattr(a, "__cuda_array_interface__") or \
        type(a).__module__.startswith("numba.cuda.simulator")
