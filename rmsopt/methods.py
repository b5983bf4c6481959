"""The minimize workers as scipy custom methods.

>>> import scipy.optimize, rmsopt
>>> res = scipy.optimize.minimize(lambda x: (x**2).sum(), [1.0, 2.0], jac=lambda x: 2 * x,
...                               method=rmsopt.methods.adam, options={"lr": 0.1})
>>> bool(res.success)
True
"""

from .minimize import _minimize_adadelta as adadelta
from .minimize import _minimize_adagrad as adagrad
from .minimize import _minimize_adam as adam
from .minimize import _minimize_rmsprop as rmsprop
from .minimize import _minimize_sgd as sgd

__all__ = ["rmsprop", "sgd", "adagrad", "adadelta", "adam"]
