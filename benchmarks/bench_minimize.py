"""minimize: per-iteration cost and iteration counts (track_* catch algorithmic regressions).

``objective``: ``python`` (scipy's rosen and rosen_der: the Python loop) or ``compiled``
(the same functions under ``@njit``: the nopython loop of :mod:`rmsopt.compiled`).
"""

import numpy as np
from scipy.optimize import rosen, rosen_der

import rmsopt
from rmsopt.bench import _rosen_der_jit, _rosen_jit

METHOD_OPTIONS = {
    "rmsprop": dict(lr=1e-3),
    "sgd": dict(lr=1e-4, momentum=0.9),
    "adagrad": dict(lr=0.5),
    "adam": dict(lr=1e-2),
}
OBJECTIVES = {"python": (rosen, rosen_der), "compiled": (_rosen_jit, _rosen_der_jit)}


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
