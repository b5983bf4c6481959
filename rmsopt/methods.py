"""The minimize workers as scipy custom methods, one per method of ``rmsopt.METHODS``.

>>> import scipy.optimize, rmsopt
>>> res = scipy.optimize.minimize(lambda x: (x**2).sum(), [1.0, 2.0], jac=lambda x: 2 * x,
...                               method=rmsopt.methods.adam, options={"lr": 0.1})
>>> bool(res.success)
True
"""

from .minimize import WORKERS

globals().update(WORKERS)  # one per registered optimizer: rmsprop, sgd, adagrad, ...

__all__ = list(WORKERS)
