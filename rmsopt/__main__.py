"""Command line: ``python -m rmsopt demo | bench | info``."""

import argparse
import platform
import sys
import time

import numpy as np


def rosenbrock(x):
    """Value and gradient of the 2-D Rosenbrock function (minimum 0 at (1, 1))."""
    a, b = x
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    return f, g


def demo(args):
    """Minimise Rosenbrock from (-1.5, 2) with each optimizer and print a table."""
    import rmsopt

    runs = [
        ("SGD", rmsopt.SGD, dict(lr=1e-4)),
        ("SGD momentum", rmsopt.SGD, dict(lr=1e-4, momentum=0.9)),
        ("AdaGrad", rmsopt.AdaGrad, dict(lr=0.5)),
        ("AdaDelta", rmsopt.AdaDelta, dict(lr=1.0)),
        ("RMSprop", rmsopt.RMSprop, dict(lr=1e-3)),
        ("RMSprop centered", rmsopt.RMSprop, dict(lr=1e-3, centered=True)),
        ("RMSprop momentum", rmsopt.RMSprop, dict(lr=1e-4, momentum=0.9)),
        ("Adam", rmsopt.Adam, dict(lr=1e-2)),
    ]
    steps = 2000 if args.quick else 20000
    print(f"Rosenbrock from (-1.5, 2), {steps} steps (minimum 0 at (1, 1))\n")
    print(f"{'method':<18} {'f(x)':>11} {'x':>24} {'time [ms]':>10}")
    for name, cls, kw in runs:
        x = np.array([-1.5, 2.0])
        opt = cls(x, **kw)
        t0 = time.perf_counter()
        for _ in range(steps):
            opt.step(rosenbrock(x)[1])
        ms = 1e3 * (time.perf_counter() - t0)
        print(f"{name:<18} {rosenbrock(x)[0]:11.3e} {np.array2string(x, precision=5):>24} "
              f"{ms:10.1f}")
    return 0


def bench(args):
    """Time one RMSprop step against in-place NumPy, torch and the bandwidth floor."""
    from .bench import table

    sizes = (1e3, 1e6) if args.quick else (1e3, 1e6, 2e7)
    table(sizes)
    return 0


def info(args):
    import numba

    import rmsopt

    print(f"rmsopt {rmsopt.__version__}, numba {numba.__version__}, numpy {np.__version__}")
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{numba.config.NUMBA_NUM_THREADS} threads")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rmsopt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="minimise Rosenbrock with every optimizer, print a table")
    p.add_argument("--quick", action="store_true", help="fewer steps")
    p.set_defaults(func=demo)
    p = sub.add_parser("bench", help="time one step side by side with NumPy, torch, the floor")
    p.add_argument("--quick", action="store_true", help="small sizes only (under a minute)")
    p.set_defaults(func=bench)
    sub.add_parser("info", help="versions and threads").set_defaults(func=info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
