"""The PyTorch adapter's step: ``rmsopt.torch.RMSprop`` against ``torch.optim.RMSprop``.

One optimizer step over ``TOTAL`` float32 parameters in ``TENSORS`` tensors (the table of
``python -m rmsopt bench``, :func:`rmsopt.bench.torch_table`, across commits):

* ``TorchStep.time_step``: one step of each contender, ``rmsopt.torch`` and
  ``torch.optim.RMSprop`` with ``foreach=True`` and ``foreach=False`` (torch's defaults
  otherwise, CPU tensors);
* ``TorchRatios.track_rmsopt_torch_over_torch``: rmsopt.torch's step over the better of
  torch's two, timed side by side in interleaved rounds (below 1: rmsopt.torch is faster);
* ``TorchRatios.track_small_tensors_over_one``: rmsopt.torch over ``SMALL`` tensors against
  one tensor of the same total, the adapter's cost per tensor (1.0: none).

Both ratios are "rmsopt over a reference", higher is worse, as in :mod:`bench_ratios`. Every
benchmark skips (``NotImplementedError`` in ``setup``) where torch is not installed, which
includes asv's per-commit environments (torch is not a dependency; ``asv run
--python=same`` in a venv with torch records them), and where this commit's
:mod:`rmsopt.bench` lacks :func:`~rmsopt.bench.torch_rmsprop_steps`.
"""

import importlib.util

from rmsopt import bench

TOTAL = 5_000_000
TENSORS = 20
SMALL = 200
REPEATS = 20
BUDGET = 5.0
CONTENDERS = ["rmsopt.torch", "torch foreach", "torch for-loop"]


def steps(tensors):
    """One-step callables of the three contenders at ``TOTAL`` float32 elements.

    Parameters
    ----------
    tensors : int
        How many tensors the ``TOTAL`` elements are split into.

    Returns
    -------
    dict
        :func:`rmsopt.bench.torch_rmsprop_steps`'s ``{contender: step}``.

    Raises
    ------
    NotImplementedError
        asv's skip: torch is not installed, or this commit's :mod:`rmsopt.bench` lacks
        ``torch_rmsprop_steps``.
    """
    if importlib.util.find_spec("torch") is None:
        raise NotImplementedError("torch is not installed")
    try:
        make = bench.torch_rmsprop_steps
    except AttributeError as e:
        raise NotImplementedError("rmsopt.bench.torch_rmsprop_steps is missing at this "
                                  "commit") from e
    return make(TOTAL, tensors, "float32")  # the name: torch is imported there, after
    # OMP_WAIT_POLICY=PASSIVE is set (its threads would otherwise spin after each step)


class TorchStep:
    """One step of each contender at ``TOTAL`` float32 parameters in ``TENSORS`` tensors."""

    params = (CONTENDERS,)
    param_names = ["contender"]
    timeout = 120

    def setup(self, contender):
        self.step = steps(TENSORS)[contender]
        self.step()  # compiles (rmsopt.torch) and creates the optimizer state

    def time_step(self, contender):
        self.step()


class TorchRatios:
    """rmsopt.torch over torch.optim, and ``SMALL`` tensors over one, timed side by side
    (:func:`rmsopt.bench.best_interleaved`: each round times every contender once)."""

    timeout = 180

    def setup(self):
        self.contenders = steps(TENSORS)
        self.spread = {"small": steps(SMALL)["rmsopt.torch"], "one": steps(1)["rmsopt.torch"]}
        for fn in (*self.contenders.values(), *self.spread.values()):
            fn()

    def track_rmsopt_torch_over_torch(self):
        best = bench.best_interleaved(self.contenders, REPEATS, BUDGET)
        return best["rmsopt.torch"] / min(best["torch foreach"], best["torch for-loop"])

    def track_small_tensors_over_one(self):
        best = bench.best_interleaved(self.spread, REPEATS, BUDGET)
        return best["small"] / best["one"]

    track_rmsopt_torch_over_torch.unit = "ratio"
    track_small_tensors_over_one.unit = "ratio"
