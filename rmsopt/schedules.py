r"""Learning-rate schedules: callables of the iteration ``k`` (from 0) returning the rate.

Any callable ``lr(k) -> float`` works as minimize's ``lr`` option (and as the
``lr`` argument of ``Optimizer.step``); these are the common ones.

>>> from rmsopt import schedules
>>> s = schedules.warmup(schedules.cosine(0.1, 1000), 100)
>>> round(s(0), 4), round(s(100), 4), round(s(1100), 4)
(0.001, 0.1, 0.0)
"""

import math

from .hyper import count, learning_rate, real


class Schedule:
    """Base class; subclasses implement ``__call__(k)`` and keep a readable ``repr``."""

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class constant(Schedule):
    """:math:`\\eta_k = \\eta_0`."""

    def __init__(self, lr):
        self.lr = learning_rate(lr)

    def __call__(self, k):
        return self.lr


class exponential(Schedule):
    """:math:`\\eta_k = \\eta_0 \\gamma^k`."""

    def __init__(self, lr, gamma):
        self.lr = learning_rate(lr)
        self.gamma = real("gamma", gamma, low=0.0, high=1.0, low_open=True)

    def __call__(self, k):
        return self.lr * self.gamma**k


class step(Schedule):
    """:math:`\\eta_k = \\eta_0 \\gamma^{\\lfloor k / s \\rfloor}` (``s = step_size``)."""

    def __init__(self, lr, step_size, gamma=0.1):
        self.lr = learning_rate(lr)
        self.step_size = count("step_size", step_size)
        self.gamma = real("gamma", gamma, low=0.0, high=1.0, low_open=True)

    def __call__(self, k):
        return self.lr * self.gamma ** (k // self.step_size)


class cosine(Schedule):
    """Cosine annealing from ``lr`` to ``lr_min`` over ``period`` iterations, then ``lr_min``.

    :math:`\\eta_k = \\eta_{min} + \\tfrac12 (\\eta_0 - \\eta_{min})(1 + \\cos(\\pi k / T))`.
    """

    def __init__(self, lr, period, lr_min=0.0):
        self.lr = learning_rate(lr)
        self.period = count("period", period)
        self.lr_min = real("lr_min", lr_min, low=0.0, high=self.lr)

    def __call__(self, k):
        k = min(k, self.period)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * k / self.period))


class warmup(Schedule):
    """Linear warm-up over ``steps`` iterations into ``schedule`` (a number or a schedule).

    :math:`\\eta_k = \\eta(k - w) \\cdot \\min(1, (k+1)/w)` for ``k < w``, then
    :math:`\\eta(k - w)`: the wrapped schedule starts when the warm-up ends.
    """

    def __init__(self, schedule, steps):
        if callable(schedule):
            self.schedule = schedule
        else:
            try:
                self.schedule = constant(schedule)
            except (TypeError, ValueError) as e:
                raise type(e)(f"schedule must be a schedule or a learning rate: {e}") from None
        self.steps = count("steps", steps)

    def __call__(self, k):
        if k < self.steps:
            return self.schedule(0) * (k + 1) / self.steps
        return self.schedule(k - self.steps)


KINDS = {c.__name__: c for c in (constant, exponential, step, cosine, warmup)}


def to_spec(schedule):
    """A schedule of this module as JSON-ready data ``{"name": ..., "params": {...}}``, for
    checkpoints; a TypeError for any other callable (it cannot be saved faithfully)."""
    if not isinstance(schedule, Schedule) or type(schedule) not in KINDS.values():
        raise TypeError(f"the lr schedule {schedule!r} is not one of rmsopt.schedules "
                        f"({', '.join(KINDS)}), so a checkpoint cannot record it; use one of "
                        "those, or pass lr=... for each step instead")
    params = {k: to_spec(v) if isinstance(v, Schedule) else v for k, v in vars(schedule).items()}
    return {"name": type(schedule).__name__, "params": params}


def from_spec(spec):
    """The schedule that :func:`to_spec` described, validated as its constructor validates."""
    if not isinstance(spec, dict) or set(spec) != {"name", "params"} \
            or not isinstance(spec["name"], str) or spec["name"] not in KINDS \
            or not isinstance(spec["params"], dict):
        raise ValueError(f"invalid lr schedule in checkpoint: {spec!r}")
    params = {k: from_spec(v) if isinstance(v, dict) else v for k, v in spec["params"].items()}
    try:
        return KINDS[spec["name"]](**params)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid lr schedule in checkpoint: {spec!r} ({e})") from None
