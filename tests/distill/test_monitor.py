"""PIDMonitor and its plot helper."""

import numpy as np
import pytest
from skorch.dataset import ValidSplit

from skpid import PIDDistiller, PIDMonitor, score_representations
from skpid.distill.models import MLP

from ._small import data, small_net  # noqa: F401 (data: a fixture)


def fit_monitored(teacher, digits, monitor, **kw):
    X, y = digits
    return PIDDistiller(MLP, teacher, method="vid", module__hidden=8,
                        teacher_layers=["body"], student_layers=["body"], max_epochs=3,
                        batch_size=32, lr=0.05, verbose=0, callbacks=[monitor],
                        train_split=ValidSplit(3, stratified=True),
                        iterator_train__drop_last=True, **kw).fit(X, y)


def test_records_atoms_on_the_chosen_epochs(digits, teacher_mlp):
    net = fit_monitored(teacher_mlp, digits, PIDMonitor(every=2, n_clusters=4))
    measured = [row["epoch"] for row in net.history if "valid_redundancy" in row]
    assert measured == [2, 3]  # every second epoch, and the last one
    for name in ("redundancy", "unique_teacher", "unique_student", "synergy"):
        values = np.array(net.history[:, f"valid_{name}"])
        assert np.all(values >= -1e-9) and np.all(np.isfinite(values))
    row = net.history[-1]
    assert row["valid_mi_teacher"] == pytest.approx(
        row["valid_redundancy"] + row["valid_unique_teacher"], abs=1e-6)


def test_measures_the_validation_representations(digits, teacher_mlp):
    X, y = digits
    net = fit_monitored(teacher_mlp, digits, PIDMonitor(n_clusters=4, X=X[:100],
                                                        y=y[:100], prefix="probe"))
    t, s = net.representations(X[:100])
    assert t.shape == (100, 32) and s.shape == (100, 8)
    # bias-corrected by default, as score_representations with the same settings
    expected = score_representations(t, s, y[:100], n_clusters=4, random_state=0,
                                     bias_correction="permutation")
    assert net.history[-1, "probe_redundancy"] == pytest.approx(expected.redundancy)
    plugin = score_representations(t, s, y[:100], n_clusters=4, random_state=0)
    assert expected.mi_joint < plugin.mi_joint


def test_monitor_warns_where_plug_in_bias_dominates(digits, teacher_mlp):
    X, y = digits
    with pytest.warns(UserWarning, match=r"PIDMonitor: 60 rows for 10 x 10 clusters and 10 "
                                         r"classes: .* below about 193 rows"):
        fit_monitored(teacher_mlp, digits, PIDMonitor(X=X[:60], y=y[:60]))


def test_bad_monitor_settings(digits, teacher_mlp):
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        fit_monitored(teacher_mlp, digits, PIDMonitor(every=0))
    with pytest.raises(ValueError, match="X and y must be given together"):
        fit_monitored(teacher_mlp, digits, PIDMonitor(X=digits[0]))


# ---------------------------------------------------------------------------------------
# PIDMonitor settings
@pytest.mark.parametrize("kw, error, match", [
    (dict(every=0), ValueError, r"every must be an int >= 1; got 0"),
    (dict(every=1.5), TypeError, r"every must be an int >= 1; got float 1\.5"),
    (dict(n_clusters=0), ValueError, r"n_clusters must be an int >= 1; got 0"),
    (dict(max_samples="all"), TypeError, r"max_samples must be an int >= 2"),
    (dict(max_samples=1), ValueError, r"max_samples must be an int >= 2; got 1"),
    (dict(measure="bogus"), ValueError, r"measure must be .*'broja'.*; got 'bogus'"),
    (dict(prefix=""), TypeError, r"prefix must be a non-empty str"),
    (dict(pair=3), ValueError, r"pair must index teacher_layers / student_layers \(1 "
                               r"pair\(s\)\); got 3"),
])
def test_monitor_settings(kw, error, match, data):
    X, y = data
    with pytest.raises(error, match=match):
        small_net(method="vid", callbacks=[PIDMonitor(**kw)],
                  train_split=ValidSplit(4)).fit(X, y)
    PIDMonitor(every=np.int64(2)).initialize()  # numpy integers are integers
