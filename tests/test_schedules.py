"""rmsopt.schedules: each schedule's values against its formula, its arguments checked, and the
checkpoint spec round trip."""

import math

import numpy as np
import pytest

from rmsopt import schedules as S


def test_constant_and_exponential():
    assert [S.constant(0.3)(k) for k in (0, 1, 1000)] == [0.3, 0.3, 0.3]
    e = S.exponential(0.2, 0.5)
    assert [e(k) for k in range(4)] == [0.2, 0.1, 0.05, 0.025]
    assert S.exponential(0.2, 1.0)(10 ** 6) == 0.2  # gamma = 1 is allowed: no decay


def test_step_decays_every_step_size_iterations():
    s = S.step(1.0, 3, gamma=0.5)
    assert [s(k) for k in range(8)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert S.step(1.0, 2)(2) == 0.1  # gamma defaults to 0.1


def test_cosine_from_lr_to_lr_min_then_flat():
    c = S.cosine(1.0, 4, lr_min=0.2)
    want = [0.2 + 0.4 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]
    assert [c(k) for k in range(5)] == want
    assert c(0) == 1.0 and c(2) == pytest.approx(0.6, abs=1e-15) and c(4) == 0.2
    assert c(5) == c(100) == 0.2  # after the period: lr_min
    assert S.cosine(0.1, 10)(10) == 0.0  # lr_min defaults to 0, a valid rate


def test_warmup_ramps_linearly_then_starts_the_wrapped_schedule():
    w = S.warmup(S.exponential(1.0, 0.5), 4)
    assert [w(k) for k in range(7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.25]
    n = S.warmup(0.4, 2)  # a number is a constant schedule
    assert [n(k) for k in range(4)] == [0.2, 0.4, 0.4, 0.4]


@pytest.mark.parametrize("make,match", [
    (lambda: S.constant(-1.0), "lr"),
    (lambda: S.constant(float("nan")), "lr"),
    (lambda: S.exponential(0.1, 0.0), "gamma"),
    (lambda: S.exponential(0.1, 1.5), "gamma"),
    (lambda: S.exponential(0.1, -0.5), "gamma"),
    (lambda: S.step(0.1, 0), "step_size"),
    (lambda: S.step(0.1, -2), "step_size"),
    (lambda: S.step(0.1, 2, gamma=0.0), "gamma"),
    (lambda: S.step(0.1, 2, gamma=1.01), "gamma"),
    (lambda: S.cosine(0.1, 0), "period"),
    (lambda: S.cosine(0.1, 10, lr_min=0.2), "lr_min"),
    (lambda: S.cosine(0.1, 10, lr_min=-0.1), "lr_min"),
    (lambda: S.warmup(0.1, 0), "steps"),
])
def test_invalid_arguments_name_themselves(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_edges_of_the_valid_ranges_are_accepted():
    assert S.cosine(0.1, 10, lr_min=0.1)(5) == pytest.approx(0.1)  # lr_min = lr
    assert S.cosine(0.1, 1)(1) == 0.0
    assert S.step(0.1, 1, gamma=1.0)(50) == 0.1
    assert S.constant(0.0)(3) == 0.0


def test_spec_round_trip_and_refusals():
    sched = S.warmup(S.cosine(1e-2, 50, lr_min=1e-4), 5)
    spec = S.to_spec(sched)
    assert spec == {"name": "warmup", "params": {
        "schedule": {"name": "cosine", "params": {"lr": 1e-2, "period": 50, "lr_min": 1e-4}},
        "steps": 5}}
    back = S.from_spec(spec)
    assert [back(k) for k in range(60)] == [sched(k) for k in range(60)]
    assert repr(back) == repr(sched)
    class halving(S.exponential):  # a user's subclass: not one of the module's kinds
        pass

    for other in (lambda k: 0.1, halving(0.1, 0.5)):
        with pytest.raises(TypeError, match="not one of rmsopt.schedules"):
            S.to_spec(other)
    for bad in ({"name": "linear", "params": {}}, {"name": "cosine"}, [1],
                {"name": "cosine", "params": {"lr": 0.1}},  # period missing
                {"name": "cosine", "params": {"lr": 0.1, "period": 0}},
                {"name": "cosine", "params": []}, {"name": "constant", "params": {}, "x": 1}):
        with pytest.raises(ValueError, match="invalid lr schedule|period"):
            S.from_spec(bad)


def test_values_are_python_floats_that_minimize_accepts():
    for s in (S.constant(0.1), S.exponential(0.1, 0.9), S.step(0.1, 2), S.cosine(0.1, 5),
              S.warmup(S.cosine(0.1, 5), 2)):
        assert all(isinstance(s(k), float) and np.isfinite(s(k)) for k in range(12))
