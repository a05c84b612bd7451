import json

import numpy as np
import pytest

from skpid.__main__ import main


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    teacher = np.eye(3)[y][:, :, None, None] + 0.1 * rng.normal(size=(300, 3, 2, 2))
    student = rng.normal(size=(300, 4))
    np.save(tmp_path / "T.npy", teacher)
    np.savez(tmp_path / "S.npz", student)
    np.savez(tmp_path / "both.npz", a=student, b=student)
    np.save(tmp_path / "y.npy", y)
    return tmp_path


def run(args, capsys):
    code = main(["score", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_with_ci(files, capsys):
    code, out, err = run(["--teacher", files / "T.npy", "--student", files / "S.npz",
                          "--labels", files / "y.npy", "--n-clusters", 3,
                          "--n-bootstrap", 20], capsys)
    assert code == 0, err
    assert "broja, bits, n = 300" in out and "95% CI" in out
    row = next(line for line in out.splitlines() if line.startswith("I(Y;T) "))
    assert float(row.split()[1]) > 1.4          # the teacher knows the 3 classes
    assert row.count("[") == 1


def test_json_matches_the_library(files, capsys):
    from skpid import score_representations
    code, out, _ = run(["--teacher", files / "T.npy", "--student", f"{files}/both.npz:b",
                        "--labels", files / "y.npy", "--n-clusters", 3, "--json",
                        "--bias-correction", "permutation", "--n-permutations", 5], capsys)
    assert code == 0
    payload = json.loads(out)
    expected = score_representations(np.load(files / "T.npy"), np.load(files / "both.npz")["b"],
                                      np.load(files / "y.npy"), n_clusters=3, random_state=0,
                                      bias_correction="permutation", n_permutations=5)
    assert payload["redundancy"] == pytest.approx(expected.redundancy)
    assert payload["bias"]["mi_teacher"] > 0 and payload["ci"] is None


@pytest.mark.parametrize("change, message", [
    ({"--teacher": "missing.npy"}, "--teacher: file not found"),
    ({"--student": "both.npz"}, "holds 2 arrays"),
    ({"--student": "both.npz:c"}, "has no array 'c'"),
    ({"--labels": "T.npy"}, "--labels: must be 1-D"),
    ({"--labels": "short.npy"}, "same number of samples"),
    ({"--labels": "floats.npy"}, "must be integers"),
    ({"--teacher": "strings.npy"}, "must be numeric"),
    ({"--teacher": "text.txt"}, "expected a .npy or .npz file"),
    ({"--teacher": "nan.npy"}, "--teacher: activations contain NaN or infinity in 1 sample(s), "
                               "e.g. rows [3]"),
])
def test_clear_errors(files, capsys, change, message):
    np.save(files / "short.npy", np.zeros(10, dtype=int))
    np.save(files / "floats.npy", np.linspace(0, 1, 300))
    np.save(files / "strings.npy", np.array([["a", "b"]] * 300))
    (files / "text.txt").write_text("1 2 3")
    nan = np.load(files / "T.npy")
    nan[3, 0, 0, 0] = np.nan
    np.save(files / "nan.npy", nan)
    paths = {"--teacher": "T.npy", "--student": "S.npz", "--labels": "y.npy", **change}
    args = [part for opt, name in paths.items() for part in (opt, files / name)]
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert message in err


# -- files and options (class 12 of issue 13) ------------------------------------------------
def score_args(files, **change):
    paths = {"--teacher": files / "T.npy", "--student": files / "S.npz",
             "--labels": files / "y.npy", **change}
    return [part for opt, path in paths.items() for part in (opt, path)]


def written(path, data):
    """``path`` after writing ``data`` (bytes, or an array saved with np.save) to it."""
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        np.save(path, data, allow_pickle=data.dtype == object)
    return path


def link(path, target):
    path.symlink_to(target)
    return path


def make_folder(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: make_folder(d / "folder.npy"),
     "--teacher: {path} is a directory; expected a .npy or .npz file"),
    (lambda d: d, "--teacher: {path} is a directory"),
    (lambda d: "/dev/null", "--teacher: /dev/null is not a regular file"),
    (lambda d: written(d / "empty.npy", b""), "--teacher: {path} is empty (0 bytes)"),
    (lambda d: written(d / "text.npy", b"1 2 3"),
     "--teacher: {path} is not a .npy file (it does not start with numpy's .npy header)"),
    (lambda d: written(d / "fake.npz", b"1 2 3"),
     "--teacher: {path} is not a .npz file (it does not start with a zip archive)"),
    (lambda d: written(d / "objects.npy", np.array([1, "a"], dtype=object)),
     "--teacher: {path} holds Python objects (dtype object), which are not loaded"),
    (lambda d: written(d / "cut.npy", (d / "T.npy").read_bytes()[:300]),
     "--teacher: cannot read {path} as an array"),
    (lambda d: d / "missing.npy", "--teacher: file not found: {path}"),
    (lambda d: d / "T.npy" / "inside.npy", "--teacher: file not found: {path} (a part of the "
                                           "path is not a directory)"),
    (lambda d: written(d / "none.npy", np.zeros((0, 3))),
     "--teacher: the array is empty (shape (0, 3))"),
    (lambda d: link(d / "gone.npy", d / "deleted.npy"),
     "--teacher: file not found: {path} is a symbolic link to"),
])
def test_each_kind_of_bad_file_is_named(files, capsys, make, message):
    path = make(files)
    code, out, err = run(score_args(files, **{"--teacher": path}), capsys)
    assert code == 2 and out == ""
    assert message.format(path=path) in err


def test_unreadable_file(files, capsys, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    # (Running as root, chmod cannot make a file unreadable: simulate the refusal.)
    monkeypatch.setattr("skpid._cli_score.open", denied, raising=False)
    code, _, err = run(score_args(files), capsys)
    assert code == 2 and f"--teacher: {files / 'T.npy'} is not readable (permission denied)" \
        in err


@pytest.mark.parametrize("option, value, message", [
    ("--seed", -1, "argument --seed: must be an integer in [0, 4294967295]; got -1"),
    ("--seed", 2 ** 32, "argument --seed: must be an integer in [0, 4294967295]; got 4294967296"),
    ("--seed", "x", "argument --seed: must be an integer in [0, 4294967295]; got 'x'"),
    ("--n-clusters", 0, "argument --n-clusters: must be an integer >= 1; got 0"),
    ("--n-clusters", 2.5, "argument --n-clusters: must be an integer >= 1; got '2.5'"),
    ("--n-components", -3, "argument --n-components: must be an integer >= 1; got -3"),
    ("--n-permutations", 0, "argument --n-permutations: must be an integer >= 1; got 0"),
    ("--n-bootstrap", -1, "argument --n-bootstrap: must be an integer >= 0; got -1"),
    ("--n-jobs", 0, "argument --n-jobs: must be a non-zero integer (-1: all cores); got 0"),
    ("--base", 1, "argument --base: must be a finite number > 0 and != 1"),
    ("--base", "nan", "argument --base: must be a finite number > 0 and != 1"),
    ("--base", -2, "argument --base: must be a finite number > 0 and != 1"),
    ("--confidence", 1, "argument --confidence: must be a number in (0, 1), e.g. 0.95; got 1"),
    ("--confidence", "inf", "argument --confidence: must be a number in (0, 1)"),
    ("--confidence", "high", "argument --confidence: must be a number in (0, 1), e.g. 0.95; "
                             "got 'high'"),
])
def test_every_numeric_option_is_checked_by_name(files, capsys, option, value, message):
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["score", *map(str, score_args(files)), option, str(value)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_seed_is_checked(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--seed", "-1", "--no-distill"])
    assert exit_info.value.code == 2
    assert "argument --seed: must be an integer in [0, 4294967295]; got -1" in \
        capsys.readouterr().err


@pytest.mark.parametrize("labels, message", [
    (lambda y: np.where(y == 0, np.nan, y), "--labels must not contain NaN, None or other "
                                            "missing labels"),
    (lambda y: np.where(y == 0, np.inf, y), "--labels must not contain infinite labels"),
])
def test_bad_labels_name_the_option(files, capsys, labels, message):
    np.save(files / "bad.npy", labels(np.load(files / "y.npy")))
    code, _, err = run(score_args(files, **{"--labels": files / "bad.npy"}), capsys)
    assert code == 2 and message in err


def test_string_and_boolean_labels(files, capsys):
    y = np.load(files / "y.npy")
    np.save(files / "names.npy", np.array(["a", "b", "c"])[y])
    np.save(files / "flags.npy", y > 0)
    for name in ("names.npy", "flags.npy"):
        code, out, err = run(score_args(files, **{"--labels": files / name}), capsys)
        assert code == 0, err


def test_help_is_plain_text(capsys):
    # argparse prints descriptions and help texts as they are: no reStructuredText
    for args in ([], ["score"], ["demo"]):
        with pytest.raises(SystemExit):
            main([*args, "--help"])
        out = capsys.readouterr().out
        assert "usage: python -m skpid" in out and "``" not in out
    from skpid.__main__ import DESCRIPTION
    assert "'score'" in DESCRIPTION and "'demo'" in DESCRIPTION
