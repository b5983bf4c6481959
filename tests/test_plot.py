"""rmsopt.plot: figures from OptimizeResult histories, labelled, legended, log-scaled."""

import sys

import numpy as np
import pytest

import rmsopt
from rmsopt.problems import ROSENBROCK_START, rosenbrock

pytest.importorskip("matplotlib")
import rmsopt.plot as rp  # noqa: E402


@pytest.fixture(scope="module")
def runs():
    return {m: rmsopt.minimize(rosenbrock, ROSENBROCK_START, method=m, jac=True,
                               options={"lr": 1e-3, "maxiter": 50, "return_all": True})
            for m in ("sgd", "rmsprop")}


def test_convergence_against_iteration_and_time(runs):
    for against, xlabel in (("iteration", "iteration"), ("time", "time [s]")):
        fig = rp.convergence(runs, against=against, fun_min=0.0, title="t")
        loss, grad = fig.axes[:2]
        assert loss.get_xlabel() == xlabel and grad.get_xlabel() == xlabel
        assert loss.get_ylabel() == "f(x) - f*" and grad.get_ylabel() == "max |gradient|"
        assert loss.get_yscale() == "log" and grad.get_yscale() == "log"
        assert [t.get_text() for t in loss.get_legend().get_texts()] == ["sgd", "rmsprop"]
        assert len(loss.lines) == 2 and len(loss.lines[0].get_xdata()) == 51


def test_convergence_needs_a_history_and_a_valid_axis(runs):
    res = rmsopt.minimize(rosenbrock, ROSENBROCK_START, jac=True, options={"maxiter": 3})
    with pytest.raises(ValueError, match="history"):
        rp.convergence({"plain": res})
    with pytest.raises(ValueError, match="against"):
        rp.convergence(runs, against="epochs")


def test_trajectories_on_contours(runs):
    fig = rp.trajectories(rosenbrock, runs, xlim=(-2, 2), ylim=(-1, 3), minimum=(1, 1),
                          mark_every=10)
    ax = fig.axes[0]
    assert ax.get_xlim() == (-2, 2) and ax.get_xlabel() == "$x_1$"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["sgd", "rmsprop"] and "start" in labels and "minimum" in labels
    path = ax.lines[0]
    np.testing.assert_array_equal(path.get_xdata(), np.asarray(runs["sgd"].allvecs)[:, 0])


def test_trajectories_evaluate_scalar_functions_point_by_point(runs):
    def scalar_only(x):
        assert x.shape == (2,)
        return float(rosenbrock(x)[0])

    fig = rp.trajectories(scalar_only, runs, xlim=(-2, 2), ylim=(-1, 3))
    assert fig.axes[0].get_legend() is not None


def test_trajectories_need_allvecs():
    res = rmsopt.minimize(rosenbrock, ROSENBROCK_START, jac=True,
                          options={"maxiter": 3, "history": True})
    with pytest.raises(ValueError, match="allvecs"):
        rp.trajectories(rosenbrock, {"r": res}, xlim=(-2, 2), ylim=(-1, 3))


def test_heatmap_marks_diverged_cells_and_the_best():
    values = np.array([[1.0, 0.1, np.nan], [2.0, 0.01, np.inf]])
    fig = rp.heatmap(values, [1e-3, 1e-2, 1e-1], [0.9, 0.99], xlabel="lr", ylabel="rho")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("diverged") == 2 and "0.01" in texts
    best = ax.patches[-1]
    assert best.get_xy() == (0.5, 0.5)  # column 1, row 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.001", "0.01", "0.1"]
    assert fig.axes[1].get_ylabel() == "final loss"


def test_effective_lr_and_curves():
    nu = np.array([[1.0, 100.0], [0.25, 25.0]])
    fig = rp.effective_lr(nu, lr=0.1, eps=1e-8, labels=["a", "b"])
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.1, 0.2])
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.01, 0.02])
    assert ax.get_yscale() == "log" and "effective learning rate" in ax.get_ylabel()
    fig = rp.curves({"x": ([0, 1, 2], [1.0, 0.0, -1.0])}, xlabel="k", ylabel="v", logy=True)
    assert len(fig.axes[0].lines[0].get_xdata()) == 1  # non-positive values dropped on log axes


def test_draws_into_given_axes_and_saves_small_pngs(runs, tmp_path):
    from matplotlib.figure import Figure

    fig = Figure()
    axes = fig.subplots(1, 2)
    assert rp.convergence(runs, ax=axes) is fig
    path = rp.save(fig, tmp_path / "c.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150_000


def test_clear_error_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "rmsopt\[plot\]"'):
        rp.curves({"x": ([0, 1], [1, 2])}, xlabel="a", ylabel="b")


def test_distances_to_the_minimum_per_iteration(runs):
    fig = rp.distances(runs, minimum=(1, 1), mark_every=10, title="d")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "iteration"
    assert "distance" in ax.get_ylabel() and ax.get_title() == "d"
    lines = {line.get_label(): line for line in ax.lines}
    path = np.asarray(runs["rmsprop"].allvecs)
    np.testing.assert_allclose(lines["rmsprop"].get_ydata(),
                               np.hypot(path[:, 0] - 1, path[:, 1] - 1))
    np.testing.assert_array_equal(lines["sgd"].get_xdata(), np.arange(51))
    assert len(ax.lines) == 4  # two lines, two sets of markers
    res = rmsopt.minimize(rosenbrock, ROSENBROCK_START, jac=True, options={"maxiter": 3})
    with pytest.raises(ValueError, match="allvecs"):
        rp.distances({"r": res}, minimum=(1, 1))
