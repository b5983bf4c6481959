"""The part of a parameter layout that every backend shares."""

import numpy as np

from .. import _config
from .cpu import task_table


class Layout:
    """Where each parameter array lives in the flat state buffers.

    The host backends extend it with the arrays' addresses (:class:`rmsopt.backend.Layout`),
    the CUDA backend with its device tables (:class:`rmsopt._kernels.cuda.DeviceLayout`).

    Attributes
    ----------
    size, offset : int64 arrays
        Element count of each array and its start in the flat state.
    tasks : (T, 3) int64 array
        The kernels' work table (and the reductions' order), see
        :func:`rmsopt._kernels.cpu.task_table`.
    n : int
        Total number of elements.
    """

    def __init__(self, arrays):
        self.size = np.array([a.size for a in arrays], dtype=np.int64)
        self.offset = np.concatenate(([0], np.cumsum(self.size)[:-1])).astype(np.int64)
        self.n = int(self.size.sum())
        self.tasks = task_table(self.size.tolist(), _config.TASK_SIZE)
