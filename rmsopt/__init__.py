"""rmsopt: the RMSprop family of optimizers, Numba-accelerated.

scipy-style minimisation::

    res = rmsopt.minimize(fun, x0, method="rmsprop", jac=grad, options={"lr": 1e-2})

Stateful optimizers for training loops (update arrays in place)::

    opt = rmsopt.RMSprop(w, lr=1e-3)
    opt.step(grad)

with torch's param groups (per-group hyperparameters, :mod:`rmsopt.groups`)::

    opt = rmsopt.RMSprop([{"params": [W], "lr": 1e-2}, {"params": [b]}], lr=1e-3)
    opt.step([gW, gb])

See :mod:`rmsopt.rules` for the math and :mod:`rmsopt.hyper` for the
conventions that reproduce PyTorch, Keras, optax and TF1.
"""

from . import groups, methods, optimizer, schedules
from .minimize import METHODS, minimize, show_options
from .optimizer import Optimizer, precompile
from .optimizer import *  # noqa: F403 - every registered optimizer class (RMSprop, Adam, ...)

__version__ = "0.1.0"

__all__ = ["minimize", "show_options", "METHODS", "groups", "methods", "schedules", "Optimizer",
           "precompile", "__version__",
           *(cls.__name__ for cls in optimizer.OPTIMIZERS.values())]
