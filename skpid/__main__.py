"""Command line: ``python -m skpid demo``, ``python -m skpid score``."""

import argparse
import sys

from ._cli_score import MAX_SEED, add_score_command, seed_type
from ._demo import run_demo


# argparse prints the description as it is: plain text, not the docstring's markup
DESCRIPTION = ("skpid: measure and perform knowledge distillation with partial "
               "information decomposition. 'demo' runs the package's demonstration; "
               "'score' decomposes saved activations. 'python -m skpid COMMAND --help' "
               "lists a command's options.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skpid", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="print the PID of canonical gates and of a "
                                            "sampled teacher/student pair, then distill "
                                            "a tabular MLP with none/KD/VID/RID from a "
                                            "trained and a nuisance teacher")
    demo.add_argument("--seed", type=seed_type, default=0,
                      help=f"random seed of the sample, in [0, {MAX_SEED}]")
    demo.add_argument("--no-distill", action="store_true",
                      help="skip the knowledge-distillation part (about 45 s)")
    add_score_command(commands)
    args = parser.parse_args(argv)
    if args.command == "score":
        return args.handler(args)
    if args.command == "demo":
        run_demo(seed=args.seed)
        if not args.no_distill:
            from ._distill_demo import run_distill_demo
            run_distill_demo(seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
