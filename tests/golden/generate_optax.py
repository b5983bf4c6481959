"""Generate ``optax_runs.json``: optax itself, run for the rules that optax defines.

Like ``generate.py`` (whose problem, steps and schedule it uses), it never imports rmsopt.
It needs optax and JAX (64-bit, on the CPU), best in an environment of their own::

    python3 -m venv /tmp/optaxenv && /tmp/optaxenv/bin/pip install optax jax numpy
    /tmp/optaxenv/bin/python tests/golden/generate_optax.py

Each case runs ``optax.<alias>(**kwargs)`` for 25 steps on the problem of ``generate.py``:
``updates, state = tx.update(g, state, p)``, ``p = optax.apply_updates(p, updates)``. A
changing learning rate goes through ``optax.inject_hyperparams``.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import generate  # noqa: E402  (this folder's generate.py)

OUT = Path(__file__).with_name("optax_runs.json")

# (id, optax alias, its kwargs, rmsopt optimizer, rmsopt kwargs, schedule base or None)
CASES = [
    ("optax-lion", "lion", dict(learning_rate=0.03, weight_decay=0.0), "Lion",
     dict(lr=0.03), None),
    ("optax-lion-betas", "lion", dict(learning_rate=0.02, b1=0.8, b2=0.9, weight_decay=0.0),
     "Lion", dict(lr=0.02, beta1=0.8, beta2=0.9), None),
    ("optax-lion-weight-decay", "lion", dict(learning_rate=0.03, weight_decay=0.3), "Lion",
     dict(lr=0.03, weight_decay=0.3), None),
    ("optax-lion-lr-schedule", "lion", dict(weight_decay=0.1), "Lion",
     dict(weight_decay=0.1), 0.03),
    ("optax-adabelief", "adabelief", dict(learning_rate=0.05), "AdaBelief", dict(lr=0.05), None),
    ("optax-adabelief-betas-eps", "adabelief",
     dict(learning_rate=0.05, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-12), "AdaBelief",
     dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-8, eps_root=1e-12), None),
    ("optax-adabelief-weight-decay", "adabelief_decayed", dict(learning_rate=0.05,
                                                                weight_decay=0.2),
     "AdaBelief", dict(lr=0.05, weight_decay=0.2), None),
    ("optax-adabelief-lr-schedule", "adabelief", dict(), "AdaBelief", dict(), 0.05),
]


def adabelief_decayed(learning_rate, weight_decay, **kwargs):
    """optax's ``adabelief`` with weight decay, as its main branch chains it (0.2.8, the
    release here, has no weight_decay): ``chain(scale_by_belief, add_decayed_weights,
    scale_by_learning_rate)``."""
    import optax

    return optax.chain(optax.scale_by_belief(**kwargs), optax.add_decayed_weights(weight_decay),
                       optax.scale_by_learning_rate(learning_rate))


def run(alias, kwargs, p0, grad, lrs):
    import jax
    import optax

    jax.config.update("jax_enable_x64", True)
    make = globals()[alias] if alias in globals() else getattr(optax, alias)
    if lrs is None:
        tx = make(**kwargs)
    else:
        tx = optax.inject_hyperparams(make)(learning_rate=lrs[0], **kwargs)
    p = jax.numpy.asarray(p0, dtype=jax.numpy.float64)
    state = tx.init(p)
    out = []
    for t in range(generate.STEPS):
        if lrs is not None:
            state.hyperparams["learning_rate"] = jax.numpy.asarray(lrs[t])
        g = jax.numpy.asarray(grad(np.asarray(p)))
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
        out.append(np.asarray(p, dtype=np.float64))
    return np.array(out)


def main():
    import jax
    import optax

    a, b, p0 = generate.problem()
    grad = generate.gradient(a, b)
    cases = []
    for case_id, alias, kwargs, cls, rmsopt_kwargs, base in CASES:
        lrs = None if base is None else generate.schedule(base)
        cases.append(dict(id=case_id, source=f"optax.{alias.split('_')[0]} "
                                             f"({'main-branch chain, ' if '_' in alias else ''}"
                                             f"optax {optax.__version__}, "
                                             f"jax {jax.__version__}, float64)",
                          optimizer=cls, kwargs=rmsopt_kwargs, lrs=lrs,
                          trajectory=run(alias, kwargs, p0, grad, lrs)))
    data = dict(about="Golden trajectories for tests/test_golden.py from optax itself; "
                      "regenerate with tests/golden/generate_optax.py.",
                optax_version=optax.__version__, steps=generate.STEPS,
                gradient="A @ p - b + 0.1 * sin(3 * p)", A=a, b=b, p0=p0, cases=cases)
    OUT.write_text(generate.dumps(data) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
