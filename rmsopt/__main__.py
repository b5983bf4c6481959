"""Command line: ``python -m rmsopt demo | bench | info``."""

import argparse
import platform
import sys

import numpy as np


def demo(args):
    """The demo's scenarios (see :mod:`rmsopt.demo`): tables, and figures in ``--out``."""
    from .demo import run

    run(out=args.out, quick=args.quick, only=args.only, plots=not args.no_plots)
    return 0


def bench(args):
    """Time one RMSprop step against in-place NumPy, torch and the bandwidth floor, at 1 and
    2 threads, over many arrays against one, rmsopt.torch against torch.optim; then the
    per-iteration costs of minimize, on 2-D Rosenbrock and at 1e6-1e7 variables (time and peak
    memory); last, the time to the first result in fresh interpreters, with an empty and with
    a filled kernel cache."""
    from .bench import (
        arrays_table,
        first_call_table,
        minimize_table,
        scale_table,
        table,
        threads_table,
        torch_table,
    )

    if args.quick:
        sizes, large = (1e3, 1e6), 1e6
    else:  # the targets: float64 at 2e7, float32 at 4e7 (the same bytes)
        sizes, large = {np.float32: (1e3, 1e6, 4e7), np.float64: (1e3, 1e6, 2e7)}, 2e7
    table(sizes)
    threads_table(large)
    arrays_table()
    torch_table(repeats=5 if args.quick else 20)
    minimize_table(iterations=5000 if args.quick else 20000)
    scale_table(sizes=(1e6,) if args.quick else (1e6, 1e7), iterations=5 if args.quick else 10)
    first_call_table(repeats=1 if args.quick else 3)
    return 0


def scenario_names(text):
    """``--only``'s value: comma-separated scenario names, case-insensitive."""
    from .demo import SCENARIOS

    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or repr(text)}; choose from "
            f"{', '.join(SCENARIOS)}")
    return names


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
    p = sub.add_parser("demo", help="what RMSprop is for: eight scenarios, tables and figures")
    p.add_argument("--out", default="rmsopt-demo", help="directory for the PNG figures "
                   "(default ./rmsopt-demo)")
    p.add_argument("--quick", action="store_true", help="small problems (seconds)")
    p.add_argument("--only", metavar="NAMES", type=scenario_names,
                   help="comma-separated scenarios (any case): "
                   "2d,highdim,linreg,digits,factorisation,sensitivity,torch-cnn,torch-rnn")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=demo)
    p = sub.add_parser("bench", help="time one step side by side with NumPy, torch, the floor")
    p.add_argument("--quick", action="store_true", help="small sizes only (under a minute)")
    p.set_defaults(func=bench)
    sub.add_parser("info", help="versions and threads").set_defaults(func=info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
