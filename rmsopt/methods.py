"""The minimize workers as scipy custom methods.

>>> import scipy.optimize, rmsopt
>>> res = scipy.optimize.minimize(lambda x: (x**2).sum(), [1.0, 2.0], jac=lambda x: 2 * x,
...                               method=rmsopt.methods.adam, options={"lr": 0.1})
>>> bool(res.success)
True
"""

from .minimize import WORKERS

rmsprop, sgd, adagrad, adadelta, adam, adamw = (
    WORKERS[name] for name in ("rmsprop", "sgd", "adagrad", "adadelta", "adam", "adamw"))

__all__ = ["rmsprop", "sgd", "adagrad", "adadelta", "adam", "adamw"]
