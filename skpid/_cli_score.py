"""``python -m skpid score``: PID of saved teacher/student activations."""

import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from ._estimator import DISCRETIZERS, score_representations
from ._sampling import QUANTITIES

_UNITS = {2.0: "bits", float(np.e): "nats"}


class InputError(Exception):
    """A problem with the files or options given on the command line."""


def add_score_command(commands) -> None:
    """Register the ``score`` subcommand on an argparse subparsers object."""
    score = commands.add_parser(
        "score", help="PID of saved teacher/student activations (.npy/.npz) and labels",
        description="Decompose the task information of labels into what a teacher "
                    "representation and a student representation hold (PID). Arrays of "
                    "any trailing shape are flattened per sample. For .npz files name the "
                    "array as FILE.npz:KEY unless the file holds a single array.")
    score.add_argument("--teacher", required=True, help="teacher activations, (N, ...)")
    score.add_argument("--student", required=True, help="student activations, (N, ...)")
    score.add_argument("--labels", required=True, help="integer class labels, (N,)")
    score.add_argument("--n-clusters", type=int, default=10)
    score.add_argument("--n-components", type=int, default=5)
    score.add_argument("--measure", choices=("broja", "mmi", "gaussian"), default="broja")
    score.add_argument("--discretizer", choices=DISCRETIZERS, default="kmeans")
    score.add_argument("--base", type=float, default=2.0, help="log base (2: bits)")
    score.add_argument("--bias-correction", choices=("none", "permutation"), default="none")
    score.add_argument("--n-permutations", type=int, default=20)
    score.add_argument("--n-bootstrap", type=int, default=0,
                       help="bootstrap resamples for confidence intervals (0: none)")
    score.add_argument("--confidence", type=float, default=0.95)
    score.add_argument("--n-jobs", type=int, default=None)
    score.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    score.add_argument("--progress", action="store_true",
                       help="report progress of the resamples on stderr")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.set_defaults(handler=run_score)


def load_array(spec: str, option: str) -> np.ndarray:
    """Load ``FILE.npy``, ``FILE.npz`` (single array) or ``FILE.npz:KEY``."""
    path, _, key = spec.partition(":") if ".npz:" in spec else (spec, "", "")
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{option}: file not found: {path}")
    if file.suffix not in (".npy", ".npz"):
        raise InputError(f"{option}: expected a .npy or .npz file; got {path}")
    try:
        loaded = np.load(file, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle, which we refuse for safety
        raise InputError(f"{option}: cannot read {path} as a numeric array ({exc})") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{option}: cannot read {path}: {exc}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            if not key:
                if len(keys) != 1:
                    raise InputError(f"{option}: {path} holds {len(keys)} arrays {keys}; "
                                     f"name one as {path}:KEY")
                key = keys[0]
            if key not in keys:
                raise InputError(f"{option}: {path} has no array {key!r}; it has {keys}")
            return loaded[key]
    return loaded


def _check_inputs(teacher, student, labels) -> np.ndarray:
    for option, arr in (("--teacher", teacher), ("--student", student)):
        if arr.dtype.kind not in "biuf":
            raise InputError(f"{option}: activations must be numeric; got dtype {arr.dtype}")
        if arr.ndim < 2:
            raise InputError(f"{option}: activations must have shape (N, ...) with one row "
                             f"per sample; got shape {arr.shape}")
    if labels.ndim != 1:
        raise InputError(f"--labels: must be 1-D (one label per sample); got shape "
                         f"{labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise InputError("--labels: class labels must be integers (or strings); got "
                             "non-integer floats")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind not in "biuUS":
        raise InputError(f"--labels: class labels must be integers or strings; got dtype "
                         f"{labels.dtype}")
    lengths = {"--teacher": len(teacher), "--student": len(student), "--labels": len(labels)}
    if len(set(lengths.values())) != 1:
        raise InputError(f"teacher, student and labels must have the same number of "
                         f"samples (first dimension); got {lengths}")
    return labels


def run_score(args, out=None) -> int:
    """Run the ``score`` subcommand; returns the exit status."""
    out = out or sys.stdout
    try:
        teacher = load_array(args.teacher, "--teacher")
        student = load_array(args.student, "--student")
        labels = _check_inputs(teacher, student, load_array(args.labels, "--labels"))
        result = score_representations(
            teacher, student, labels, n_clusters=args.n_clusters,
            n_components=args.n_components, measure=args.measure, random_state=args.seed,
            discretizer=args.discretizer, base=args.base,
            bias_correction=None if args.bias_correction == "none" else "permutation",
            n_permutations=args.n_permutations, n_bootstrap=args.n_bootstrap,
            confidence=args.confidence, n_jobs=args.n_jobs,
            verbose=10 if args.progress else 0)
    except (InputError, ValueError, TypeError) as exc:
        print(f"python -m skpid score: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        payload = {name: getattr(result, name) for name in QUANTITIES}
        payload.update(entropy_y=result.entropy_y, base=result.base, measure=result.measure,
                       n_samples=result.n_samples, ci=result.ci, confidence=result.confidence,
                       bias=result.bias, gap=result.gap)
        # JSON has no NaN (H(Y) of the Gaussian measure): write null.
        text = json.dumps(payload, indent=2, default=float)
        print(text.replace("NaN", "null"), file=out)
        return 0
    unit = _UNITS.get(result.base, f"log{result.base:g}")
    print(f"PID of the labels into teacher (T) and student (S): {result.measure}, {unit}, "
          f"n = {result.n_samples}", file=out)
    ci_head = f"  {100 * result.confidence:g}% CI" if result.ci else ""
    print(f"{'quantity':<16}{'estimate':>10}{ci_head}", file=out)
    labels_ = {"redundancy": "Red(Y:T,S)", "unique_teacher": "Uni(Y:T\\S)",
               "unique_student": "Uni(Y:S\\T)", "synergy": "Syn(Y:T,S)",
               "mi_teacher": "I(Y;T)", "mi_student": "I(Y;S)", "mi_joint": "I(Y;T,S)"}
    for name in QUANTITIES:
        row = f"{labels_[name]:<16}{getattr(result, name):>10.4f}"
        if result.ci:
            lo, hi = result.ci[name]
            row += f"  [{lo:.4f}, {hi:.4f}]"
        print(row, file=out)
    print("Uni(Y:T\\S) is the knowledge left to distill; Red(Y:T,S) the transferred "
          "knowledge.", file=out)
    return 0

