r"""Test functions and model problems: what the demo, the examples and the tests optimise.

Every objective returns ``(f, gradient)``, for ``rmsopt.minimize(..., jac=True)``:

* :func:`rosenbrock` and :func:`ravine`: 2-D, for trajectories on contour plots;
* :class:`Quadratic`: an ill-conditioned diagonal quadratic in any dimension;
* :func:`linear_data`, :func:`mse`, :func:`least_squares`: linear regression;
* :class:`MLP`, :func:`digits`: a one-hidden-layer network (NumPy forward and backward
  pass) on scikit-learn's bundled 8x8 digits;
* :func:`ratings`, :func:`factor_loss`, :func:`factor_grad_rows`: matrix factorisation
  of sparse ratings, with gradients for the rows a mini-batch touches.

For PyTorch training loops (these two import torch when called; their gradients come from
autograd): :func:`digits_cnn`, a small convolutional network for :func:`digits`, and
:func:`adding_rnn`, a GRU for :func:`adding_problem`'s sequences.
"""

import numpy as np
from numba import njit

#: Where the 2-D runs start: a classic start on the far side of Rosenbrock's valley.
ROSENBROCK_START = (-1.5, 2.0)
#: Start in the ravine: far along the flat axis, off-centre across the steep one.
RAVINE_START = (-9.0, 1.5)


def rosenbrock(x):
    r"""Rosenbrock's function and gradient; minimum 0 at (1, 1).

    .. math:: f(a, b) = (1 - a)^2 + 100\,(b - a^2)^2

    ``x`` may be an array of shape ``(2, ...)``: every point is evaluated (for contours).
    """
    a, b = x[0], x[1]
    r = b - a * a
    f = (1 - a) ** 2 + 100 * r * r
    return f, np.array([-2 * (1 - a) - 400 * a * r, 200 * r])


def ravine(x, flat=0.02, steep=4.0):
    r"""An axis-aligned ravine: :math:`f = \tfrac12(\lambda_1 a^2 + \lambda_2 b^2)`.

    Condition number ``steep / flat`` (200 by default): gradient descent must keep its
    step below ``2 / steep`` and then crawls along the flat axis; a per-coordinate step
    (RMSprop) is not limited that way. Minimum 0 at the origin. ``x`` may have shape
    ``(2, ...)``.
    """
    a, b = x[0], x[1]
    return 0.5 * (flat * a * a + steep * b * b), np.array([flat * a, steep * b])


class Quadratic:
    r"""An ill-conditioned quadratic in ``n`` dimensions, minimum 0 at ``c``.

    .. math:: f(x) = \tfrac12 \sum_i d_i (x_i - c_i)^2,
        \qquad d_i \in [1, \kappa] \text{ log-spaced, in random order}

    Axis-aligned, so a diagonal preconditioner such as RMSprop's fits it exactly; a
    rotated problem would show less difference between the methods.

    Parameters
    ----------
    n : int
        Dimension.
    cond : float
        Condition number :math:`\kappa`.
    seed : int
        Seed of the order of the curvatures and of ``c``.
    """

    def __init__(self, n, cond=1e4, seed=0):
        rng = np.random.default_rng(seed)
        self.d = rng.permutation(np.logspace(0.0, np.log10(cond), n))
        self.c = rng.standard_normal(n)
        self.n, self.cond = n, cond

    def __call__(self, x):
        return _quadratic(x, self.d, self.c)

    def start(self):
        """The starting point used by the demo: the origin."""
        return np.zeros(self.n)


@njit(nogil=True)
def _quadratic(x, d, c):
    """One pass, no BLAS: value and gradient of the diagonal quadratic."""
    g = np.empty_like(x)
    f = 0.0
    for i in range(x.size):
        r = x[i] - c[i]
        g[i] = d[i] * r
        f += g[i] * r
    return 0.5 * f, g


def linear_data(n=1000, seed=0):
    """Samples of ``y = 4 + 3 x + noise``, ``x`` uniform on [0, 2], noise standard normal.

    Returns ``X`` of shape ``(n, 2)`` (a column of ones, then ``x``) and ``y``.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 2.0, n)
    return np.column_stack([np.ones(n), x]), 4.0 + 3.0 * x + rng.standard_normal(n)


def mse(w, X, y):
    r"""Half the mean squared error :math:`\tfrac{1}{2m}\lVert Xw - y\rVert^2` and its gradient."""
    r = X @ w - y
    return 0.5 * float(r @ r) / y.size, X.T @ r / y.size


def least_squares(X, y):
    """The closed-form minimiser of :func:`mse` (``numpy.linalg.lstsq``)."""
    return np.linalg.lstsq(X, y, rcond=None)[0]


def digits(test_fraction=0.25, seed=0):
    """scikit-learn's 8x8 handwritten digits (1797 images, bundled: nothing is downloaded).

    Pixels are scaled to [0, 1] and centred with the training mean. Returns
    ``(X_train, y_train, X_test, y_test)`` with integer labels 0-9.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("the digits data set ships with scikit-learn: "
                          "pip install scikit-learn") from e
    data = load_digits()
    X, y = data.data / 16.0, data.target
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    mean = X[train].mean(axis=0)
    return X[train] - mean, y[train], X[test] - mean, y[test]


class MLP:
    r"""A one-hidden-layer network for classification, parameters in one flat vector.

    .. math::

        h = \tanh(X W_1 + b_1), \qquad p = \operatorname{softmax}(h W_2 + b_2), \qquad
        L = -\frac1m \sum_k \log p_{k, y_k} + \frac{\lambda}{2}
            (\lVert W_1\rVert^2 + \lVert W_2\rVert^2)

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Layer sizes.
    l2 : float
        Weight decay :math:`\lambda` on the weight matrices (not the biases).
    """

    def __init__(self, n_in=64, n_hidden=32, n_out=10, l2=1e-4):
        self.shapes = [(n_in, n_hidden), (n_hidden,), (n_hidden, n_out), (n_out,)]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.n = sum(self.sizes)
        self.l2 = l2

    def init(self, seed=0):
        """Glorot-scaled random weights and zero biases, as one flat float64 vector."""
        rng = np.random.default_rng(seed)
        parts = []
        for shape in self.shapes:
            if len(shape) == 2:
                parts.append(rng.standard_normal(shape).ravel() * np.sqrt(2.0 / sum(shape)))
            else:
                parts.append(np.zeros(shape))
        return np.concatenate(parts)

    def unpack(self, w):
        """Views ``W1, b1, W2, b2`` into the flat vector ``w``."""
        out, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(w[start:start + size].reshape(shape))
            start += size
        return out

    def _forward(self, w, X):
        W1, b1, W2, b2 = self.unpack(w)
        h = np.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        z -= z.max(axis=1, keepdims=True)
        return h, z

    def loss(self, w, X, y):
        """Mean cross-entropy plus weight decay, and its gradient (backpropagation)."""
        W1, _, W2, _ = self.unpack(w)
        h, z = self._forward(w, X)
        logsum = np.log(np.exp(z).sum(axis=1))
        m = y.size
        f = float(np.mean(logsum - z[np.arange(m), y]))
        f += 0.5 * self.l2 * (float(np.sum(W1 * W1)) + float(np.sum(W2 * W2)))
        dz = np.exp(z - logsum[:, None])  # softmax
        dz[np.arange(m), y] -= 1.0
        dz /= m
        dh = (dz @ W2.T) * (1.0 - h * h)
        grad = np.empty_like(w)
        gW1, gb1, gW2, gb2 = self.unpack(grad)
        gW1[...] = X.T @ dh + self.l2 * W1
        gb1[...] = dh.sum(axis=0)
        gW2[...] = h.T @ dz + self.l2 * W2
        gb2[...] = dz.sum(axis=0)
        return f, grad

    def predict(self, w, X):
        """The most probable class of each row of ``X``."""
        return np.argmax(self._forward(w, X)[1], axis=1)

    def accuracy(self, w, X, y):
        """Fraction of rows of ``X`` classified as ``y``."""
        return float(np.mean(self.predict(w, X) == y))


def ratings(n_users=2000, n_items=1000, rank=5, density=0.05, noise=0.1, test_fraction=0.1,
            seed=0):
    r"""Synthetic ratings :math:`r_{ij} = u_i \cdot v_j + \text{noise}` of a low-rank matrix.

    Only a fraction ``density`` of the (user, item) pairs is observed (with replacement
    on collisions, so a pair may appear twice). Returns ``(train, test)``, each a tuple
    ``(users, items, values)`` of 1-D arrays.
    """
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((n_users, rank)) / rank**0.25
    V = rng.standard_normal((n_items, rank)) / rank**0.25
    m = int(density * n_users * n_items)
    users = rng.integers(0, n_users, m)
    items = rng.integers(0, n_items, m)
    values = np.einsum("ij,ij->i", U[users], V[items]) + noise * rng.standard_normal(m)
    n_test = int(test_fraction * m)
    return ((users[n_test:], items[n_test:], values[n_test:]),
            (users[:n_test], items[:n_test], values[:n_test]))


def factor_loss(U, V, users, items, values, l2=0.0):
    r"""Mean over the observed ratings of :math:`\tfrac12 (u_i\cdot v_j - r_{ij})^2 +
    \tfrac\lambda2 (\lVert u_i\rVert^2 + \lVert v_j\rVert^2)`."""
    Ui, Vj = U[users], V[items]
    e = np.einsum("ij,ij->i", Ui, Vj) - values
    reg = np.einsum("ij,ij->i", Ui, Ui) + np.einsum("ij,ij->i", Vj, Vj)
    return float(np.mean(0.5 * e * e + 0.5 * l2 * reg))


def rmse(U, V, users, items, values):
    """Root mean squared prediction error on the given ratings."""
    e = np.einsum("ij,ij->i", U[users], V[items]) - values
    return float(np.sqrt(np.mean(e * e)))


def factor_grad_rows(U, V, users, items, values, l2=0.0):
    """Gradient of :func:`factor_loss` on a batch, as rows: one per rating.

    Returns ``(gU, gV)``: ``gU[k]`` belongs to row ``users[k]`` of ``U`` and ``gV[k]`` to
    row ``items[k]`` of ``V``. A user rated twice in the batch has two rows, which
    :meth:`rmsopt.Optimizer.step_rows` adds up.
    """
    Ui, Vj = U[users], V[items]
    e = (np.einsum("ij,ij->i", Ui, Vj) - values)[:, None] / values.size
    return e * Vj + (l2 / values.size) * Ui, e * Ui + (l2 / values.size) * Vj


def dense_rows(shape, rows, grad_rows):
    """The dense gradient of shape ``shape`` with ``grad_rows`` added into ``rows``."""
    g = np.zeros(shape)
    np.add.at(g, rows, grad_rows)
    return g


def adding_problem(n, length=10, seed=0):
    """The adding problem (Hochreiter and Schmidhuber, 1997): sequences whose target is the
    sum of two marked values.

    Each of the ``n`` sequences has ``length`` steps of two features: a value uniform on
    [0, 1) and a marker, 1 at one step of the first half and one step of the second half,
    0 elsewhere. The target is the sum of the two marked values (mean 1, variance 1/6: the
    mean squared error of always predicting 1).

    Returns
    -------
    X : ndarray, shape (n, length, 2)
    y : ndarray, shape (n,)
    """
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n, length))
    marks = np.zeros((n, length))
    rows = np.arange(n)
    marks[rows, rng.integers(0, length // 2, n)] = 1.0
    marks[rows, rng.integers(length // 2, length, n)] = 1.0
    return np.stack([values, marks], axis=2), (values * marks).sum(axis=1)


def _seeded(seed, build):
    """``build()`` with torch's global generator seeded by ``seed`` and then restored."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def digits_cnn(seed=0, dtype=None):
    """A small convolutional network for :func:`digits`' flat 64-pixel rows (a
    ``torch.nn.Sequential``; needs torch).

    ``Unflatten`` to 1x8x8, two 3x3 convolutions of stride 2 (8 then 16 channels, ReLU:
    8x8 -> 4x4 -> 2x2) and a linear layer to the 10 class scores (logits for
    ``torch.nn.functional.cross_entropy``); 1,898 parameters.

    Parameters
    ----------
    seed : int
        Seed of torch's default initialisation (the global generator is left as it was).
    dtype : torch.dtype, optional
        Default ``torch.float64``.
    """
    import torch
    from torch import nn

    model = _seeded(seed, lambda: nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64, 10)))
    return model.to(torch.float64 if dtype is None else dtype)


def adding_rnn(hidden=16, seed=0, dtype=None):
    """A GRU for :func:`adding_problem`: the last hidden state, then a linear read-out
    (a ``torch.nn.Module`` mapping ``(n, length, 2)`` to ``(n,)``; needs torch).

    Parameters
    ----------
    hidden : int
        Size of the GRU's hidden state (16: 977 parameters).
    seed : int
        Seed of torch's default initialisation (the global generator is left as it was).
    dtype : torch.dtype, optional
        Default ``torch.float64``.
    """
    import torch
    from torch import nn

    class AddingGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(2, hidden, batch_first=True)
            self.readout = nn.Linear(hidden, 1)

        def forward(self, x):
            return self.readout(self.gru(x)[0][:, -1]).squeeze(1)

    return _seeded(seed, AddingGRU).to(torch.float64 if dtype is None else dtype)
