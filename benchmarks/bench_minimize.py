"""minimize: per-iteration cost and iteration counts (track_* catch algorithmic regressions).

``objective``: ``python`` (scipy's rosen and rosen_der: the Python loop) or ``compiled``
(the same functions under ``@njit``: the nopython loop of :mod:`rmsopt.compiled`).
"""

import numpy as np
from scipy.optimize import rosen, rosen_der

import rmsopt
from rmsopt.bench import rosen_der_jit, rosen_jit

METHOD_OPTIONS = {
    "rmsprop": dict(lr=1e-3),
    "sgd": dict(lr=1e-4, momentum=0.9),
    "adagrad": dict(lr=0.5),
    "adam": dict(lr=1e-2),
}
OBJECTIVES = {"python": (rosen, rosen_der), "compiled": (rosen_jit, rosen_der_jit)}


class Rosenbrock:
    params = (list(METHOD_OPTIONS), list(OBJECTIVES))
    param_names = ["method", "objective"]

    def setup(self, method, objective):
        self.method = method
        self.fun, self.jac = OBJECTIVES[objective]
        self.options = dict(METHOD_OPTIONS[method], maxiter=2000, gtol=0)
        self.x0 = np.array([-1.5, 2.0])
        self.run(self.options)  # compiles

    def run(self, options):
        return rmsopt.minimize(self.fun, self.x0, method=self.method, jac=self.jac,
                               options=options)

    def time_2000_iterations(self, method, objective):
        self.run(self.options)

    def track_nit_to_gtol(self, method, objective):
        return self.run(dict(METHOD_OPTIONS[method], maxiter=50000, gtol=1e-3)).nit

    def track_nfev_to_gtol(self, method, objective):
        return self.run(dict(METHOD_OPTIONS[method], maxiter=50000, gtol=1e-3)).nfev

    def track_final_f(self, method, objective):
        return self.run(self.options).fun


class Scale:
    """minimize at 1e6 and 1e7 variables next to the hand-written ``fun`` + ``opt.step`` loop
    with the same objective, and the naive NumPy loop (a quadratic, ``jac=True``).

    ``track_*_ratio`` are measured side by side in one process, so they survive a noisy
    machine better than the times; ``peakmem_*`` is the whole process's peak.
    """

    params = ([int(1e6), int(1e7)], ["float32", "float64"])
    param_names = ["n", "dtype"]
    timeout = 600

    def setup(self, n, dtype):
        from rmsopt.bench import scale_contenders

        self.iterations = 5
        self.runs = scale_contenders(n, np.dtype(dtype), self.iterations)
        self.runs["minimize"]()  # compiles

    def time_minimize_5_iterations(self, n, dtype):
        self.runs["minimize"]()

    def time_minimize_njit_5_iterations(self, n, dtype):
        self.runs["minimize @njit"]()

    def peakmem_minimize(self, n, dtype):
        self.runs["minimize"]()

    def peakmem_handwritten(self, n, dtype):
        self.runs["hand-written"]()

    def track_minimize_over_handwritten_ratio(self, n, dtype):
        from rmsopt.bench import scale_costs

        c = scale_costs(n, np.dtype(dtype), self.iterations, repeats=3, memory=False)
        return c["minimize"]["seconds"] / c["hand-written"]["seconds"]

    def track_minimize_peak_over_handwritten_buffers(self, n, dtype):
        """Peak bytes of minimize minus the hand-written loop's, in parameter-sized buffers."""
        from rmsopt.bench import peak_bytes

        extra = peak_bytes(self.runs["minimize"]) - peak_bytes(self.runs["hand-written"])
        return extra / (n * np.dtype(dtype).itemsize)
