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
    ({"--teacher": "nan.npy"}, "teacher contains NaN or infinity"),
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
