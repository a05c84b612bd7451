"""``python -m skpid score``: PID of saved teacher/student activations."""

import argparse
import json
import math
import os
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np

from ._estimator import DISCRETIZERS, MEASURES, score_representations
from ._labels import check_label_array
from ._sampling import BIAS_CORRECTIONS, QUANTITIES

_UNITS = {2.0: "bits", float(np.e): "nats"}
# What a file of each suffix starts with: numpy's .npy header, a zip archive for .npz.
_MAGIC = {".npy": (b"\x93NUMPY",), ".npz": (b"PK\x03\x04", b"PK\x05\x06")}
# numpy's RandomState accepts seeds in [0, 2**32 - 1].
MAX_SEED = 2 ** 32 - 1


class InputError(Exception):
    """A problem with the files or options given on the command line."""


# -- option types: argparse reports their errors as "argument --name: message", exit 2 ---
def int_at_least(minimum: int, maximum: int | None = None):
    """An argparse ``type`` accepting integers in ``[minimum, maximum]``."""
    bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}; got {text!r}")
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}; got {value}")
        return value

    parse.__name__ = "integer"  # named in argparse's own messages
    return parse


def n_jobs_type(text: str) -> int:
    """joblib's ``n_jobs``: a non-zero integer (-1: all cores)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-zero integer (-1: all cores); got "
                                         f"{text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be a non-zero integer (-1: all cores); got 0")
    return value


def _finite_float(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {expected}; got {text}")
    return value


def base_type(text: str) -> float:
    """A logarithm base: finite, > 0 and != 1."""
    expected = "a finite number > 0 and != 1 (2: bits, 2.718281828459045: nats)"
    value = _finite_float(text, expected)
    if value <= 0 or value == 1:
        raise argparse.ArgumentTypeError(f"must be {expected}; got {text}")
    return value


def confidence_type(text: str) -> float:
    """A confidence level in (0, 1)."""
    expected = "a number in (0, 1), e.g. 0.95"
    value = _finite_float(text, expected)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be {expected}; got {text}")
    return value


seed_type = int_at_least(0, MAX_SEED)


def add_score_command(commands) -> None:
    """Register the ``score`` subcommand on an argparse subparsers object."""
    score = commands.add_parser(
        "score", help="PID of saved teacher/student activations (.npy/.npz) and labels",
        description="Decompose the task information of labels into what a teacher "
                    "representation and a student representation hold (PID). Arrays of "
                    "any trailing shape are flattened per sample. For .npz files name the "
                    "array as FILE.npz:KEY unless the file holds a single array. Usage "
                    "errors exit with status 2.")
    score.add_argument("--teacher", required=True, help="teacher activations, (N, ...)")
    score.add_argument("--student", required=True, help="student activations, (N, ...)")
    score.add_argument("--labels", required=True,
                       help="class labels, (N,): integers, booleans or strings")
    score.add_argument("--n-clusters", type=int_at_least(1), default=10,
                       help="codes per representation: KMeans clusters, or quantile bins "
                            "per component (default 10)")
    score.add_argument("--n-components", type=int_at_least(1), default=5,
                       help="principal components per representation (default 5)")
    score.add_argument("--measure", choices=MEASURES, default="broja",
                       help="the PID measure; gaussian skips the discretization "
                            "(default broja)")
    score.add_argument("--discretizer", choices=DISCRETIZERS, default="kmeans",
                       help="how activations become discrete codes (default kmeans)")
    score.add_argument("--base", type=base_type, default=2.0, help="log base (2: bits)")
    score.add_argument("--bias-correction", default="none",
                       choices=[str(c).lower() for c in BIAS_CORRECTIONS],  # None: "none"
                       help="subtract the plug-in bias estimated on label permutations "
                            "(default none)")
    score.add_argument("--n-permutations", type=int_at_least(1), default=20,
                       help="permutations of the bias correction (default 20)")
    score.add_argument("--n-bootstrap", type=int_at_least(0), default=0,
                       help="bootstrap resamples for confidence intervals (0: none)")
    score.add_argument("--confidence", type=confidence_type, default=0.95,
                       help="level of the bootstrap intervals (default 0.95)")
    score.add_argument("--n-jobs", type=n_jobs_type, default=None,
                       help="parallel jobs of the resamples (-1: all cores; default 1)")
    score.add_argument("--seed", type=seed_type, default=0,
                       help=f"random seed in [0, {MAX_SEED}] (default 0)")
    score.add_argument("--progress", action="store_true",
                       help="report progress of the resamples on stderr")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")
    score.set_defaults(handler=run_score)


# -- files -----------------------------------------------------------------------------------
def _check_file(file: Path, path: str, option: str) -> None:
    """A readable, non-empty regular file whose first bytes match its suffix."""
    try:
        info = file.stat()
    except FileNotFoundError:
        if file.is_symlink():
            raise InputError(f"{option}: file not found: {path} is a symbolic link to "
                             f"{os.readlink(file)}, which does not exist") from None
        raise InputError(f"{option}: file not found: {path}") from None
    except NotADirectoryError:
        raise InputError(f"{option}: file not found: {path} (a part of the path is not a "
                         "directory)") from None
    except OSError as exc:
        raise InputError(f"{option}: cannot access {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{option}: {path} is a directory; expected a .npy or .npz file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{option}: {path} is not a regular file (a device, pipe or "
                         "socket); expected a .npy or .npz file")
    if file.suffix not in _MAGIC:
        raise InputError(f"{option}: expected a .npy or .npz file; got {path}")
    if info.st_size == 0:
        raise InputError(f"{option}: {path} is empty (0 bytes)")
    try:
        with open(file, "rb") as handle:
            head = handle.read(8)
    except PermissionError:
        raise InputError(f"{option}: {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise InputError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    if not head.startswith(_MAGIC[file.suffix]):
        what = "numpy's .npy header" if file.suffix == ".npy" else "a zip archive"
        raise InputError(f"{option}: {path} is not a {file.suffix} file (it does not start "
                         f"with {what}); save arrays with np.save or np.savez")


def load_array(spec: str, option: str) -> np.ndarray:
    """Load ``FILE.npy``, ``FILE.npz`` (single array) or ``FILE.npz:KEY``."""
    path, _, key = spec.partition(":") if ".npz:" in spec else (spec, "", "")
    file = Path(path)
    _check_file(file, path, option)
    try:
        loaded = np.load(file, allow_pickle=False)
    except ValueError as exc:
        if "Object arrays" in str(exc) or "pickled" in str(exc):
            # Object arrays need pickle, which is refused: loading it runs code.
            raise InputError(f"{option}: {path} holds Python objects (dtype object), which "
                             "are not loaded for safety; save numbers or strings") from None
        raise InputError(f"{option}: cannot read {path} as an array ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
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
            try:
                return loaded[key]
            except ValueError as exc:  # an object array inside the archive
                raise InputError(f"{option}: cannot read array {key!r} of {path} ({exc})"
                                 ) from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise InputError(f"{option}: cannot read array {key!r} of {path}: {exc}"
                                 ) from None
    return loaded


def _check_inputs(teacher, student, labels) -> np.ndarray:
    for option, arr in (("--teacher", teacher), ("--student", student)):
        if arr.dtype.kind not in "biuf":
            raise InputError(f"{option}: activations must be numeric; got dtype {arr.dtype}")
        if arr.ndim < 2:
            raise InputError(f"{option}: activations must have shape (N, ...) with one row "
                             f"per sample; got shape {arr.shape}")
        if arr.shape[0] == 0 or arr.size == 0:
            raise InputError(f"{option}: the array is empty (shape {arr.shape}); expected "
                             "one row of activations per sample")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            rows = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
            raise InputError(f"{option}: activations contain NaN or infinity in "
                             f"{len(rows)} sample(s), e.g. rows {rows[:5].tolist()}; remove "
                             "or impute those samples")
    if labels.ndim != 1:
        raise InputError(f"--labels: must be 1-D (one label per sample); got shape "
                         f"{labels.shape}")
    # The library's label checks (missing, infinite, mixed), with the option named.
    labels = check_label_array(labels, "--labels")
    if labels.dtype.kind == "f":
        if np.any(labels != np.round(labels)):
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
            bias_correction=None if args.bias_correction == "none" else args.bias_correction,
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

