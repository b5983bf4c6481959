"""rmsopt: the RMSprop family of optimizers, Numba-accelerated.

Stateful optimizers for training loops (update arrays in place)::

    opt = rmsopt.RMSprop(w, lr=1e-3)
    opt.step(grad)

See :mod:`rmsopt.rules` for the math and :mod:`rmsopt.hyper` for the
conventions that reproduce PyTorch, Keras, optax and TF1.
"""

from .optimizer import SGD, AdaDelta, AdaGrad, Adam, AdamW, Optimizer, RMSprop

__version__ = "0.1.0"

__all__ = ["Optimizer", "RMSprop", "SGD", "AdaGrad", "AdaDelta", "Adam", "AdamW", "__version__"]
