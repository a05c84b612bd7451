"""Command line: ``python -m skpid demo``, ``python -m skpid score``."""

import argparse
import sys

from ._cli_score import add_score_command
from ._demo import run_demo


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skpid", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="print the PID of canonical gates and of a "
                                            "sampled teacher/student pair")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the sample")
    add_score_command(commands)
    args = parser.parse_args(argv)
    if args.command == "score":
        return args.handler(args)
    if args.command == "demo":
        run_demo(seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
