"""pid_gate: each distillation term scaled by what PID says is left to distill."""

import copy
import pickle
import warnings

import numpy as np
import pytest
import torch
from skorch.dataset import ValidSplit

from skpid import PIDDistiller
from skpid.distill import DistillationLoss, PIDGate, plot_pid_history
from skpid.distill._pid_gate import OPEN_SHARE, gate_value, measure_gate
from skpid.distill.models import MLP
from skpid.exceptions import NuisanceTeacherWarning


class TwoBranches(torch.nn.Module):
    """A teacher with an informative branch (the digit columns, layer ``signal``, which
    the logits read) and a nuisance branch (the appended noise columns, layer ``noise``,
    computed so that it can be paired, but not reaching the logits)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.signal = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU())
        self.noise = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU())
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        noise = self.noise(x[:, 64:])
        return self.head(self.signal(x[:, :64])) + 0 * noise.mean(1, keepdim=True)


def distiller(teacher, method="fitnet", layers=("signal",), **kw):
    settings = dict(module__n_features=128, module__hidden=8, max_epochs=3,
                    train_split=None, verbose=0, random_state=0, pid_gate=True,
                    teacher_check="ignore")
    if layers is not None:
        settings.update(teacher_layers=list(layers), student_layers=["body"] * len(layers))
    return PIDDistiller(MLP, teacher.eval(), method=method, **{**settings, **kw})


def test_gate_formula():
    assert gate_value(0.005, 1.0) == 1.0
    assert gate_value(0.005, OPEN_SHARE) == 1.0
    assert gate_value(0.005, OPEN_SHARE / 4) == pytest.approx(0.25)
    assert gate_value(0.005, -0.01) == 0.0  # round-off below zero
    assert gate_value(0.02, 1.0) == 0.0     # not significant: closed


def test_each_pair_gets_its_own_gate(noisy_digits):
    X, y = noisy_digits
    net = distiller(TwoBranches(), layers=("signal", "noise")).fit(X, y)
    signal, noise = net.pid_gates_["gate_0"], net.pid_gates_["gate_1"]
    # the untrained student holds little of the informative branch's task information
    assert signal.p_value <= 0.01 and signal.share > OPEN_SHARE and signal.gate == 1.0
    assert signal.mi_teacher > 1.0
    assert noise.p_value > 0.01 and noise.gate == 0.0
    assert net.history[:, "gate_0"] == [1.0] * 3
    assert net.history[:, "gate_1"] == [0.0] * 3


@pytest.mark.parametrize("method", ["fitnet", "vid", "rid", "ted"])
def test_a_closed_gate_leaves_the_student_alone(noisy_digits, method):
    """A nuisance layer's term is switched off: the student trains as with method="none"
    (the same seed gives the same weights and batches)."""
    X, y = noisy_digits
    net = distiller(TwoBranches(), method=method, layers=("noise",)).fit(X, y)
    alone = distiller(TwoBranches(), method="none", layers=None,
                      pid_gate=False).fit(X, y)
    assert net.history[:, "gate_0"] == [0.0] * 3
    np.testing.assert_allclose(net.predict_proba(X), alone.predict_proba(X), atol=1e-6)


def test_logit_terms_get_the_logits_gate(noisy_digits, noise_only):
    X, y = noisy_digits
    kd = distiller(noise_only, method="kd", layers=None).fit(X, y)
    assert kd.history[:, "gate_kd"] == [0.0] * 3
    assert kd.history[:, "train_distill"] == [0.0] * 3
    # kd_weight on top of a feature method: its own gate, besides the pair's
    both = distiller(TwoBranches(), layers=("signal",), kd_weight=1.0).fit(X, y)
    assert set(both.pid_gates_) == {"gate_0", "gate_kd"}
    assert both.history[-1, "gate_0"] == 1.0
    assert both.history[-1, "train_kd"] > 0
    noisy_kd = distiller(noise_only, method="none", layers=None, kd_weight=1.0).fit(X, y)
    assert noisy_kd.history[:, "train_kd"] == [0.0] * 3


def test_gate_closes_when_the_student_holds_the_teachers_information(noisy_digits):
    """A student that starts as a copy of the teacher holds all of its information:
    Uni(Y: T\\S) = 0, the gate is closed from the first measurement."""
    X, y = noisy_digits
    teacher = TwoBranches().eval()
    net = PIDDistiller(copy.deepcopy(teacher), teacher, method="fitnet",
                       teacher_layers=["signal"], student_layers=["signal"], max_epochs=1,
                       train_split=None, verbose=0, random_state=0, pid_gate=True).fit(X, y)
    first = net.pid_gates_["gate_0"]
    assert first.p_value <= 0.01
    assert first.unique_teacher == pytest.approx(0, abs=1e-6)
    assert first.gate == 0.0


class MeasuredRows(PIDDistiller):
    """Records the number of rows of each pass of the student over data: one per gate
    measurement."""

    sizes = []

    def representations(self, X, pair=0, *, side="both", **kwargs):
        if side != "teacher":
            self.sizes.append(len(X))
        return super().representations(X, pair, side=side, **kwargs)


def test_measured_on_the_validation_split_every_few_epochs(noisy_digits):
    X, y = noisy_digits
    sizes = MeasuredRows.sizes
    sizes.clear()
    net = distiller(TwoBranches(), max_epochs=7, pid_gate_every=3,
                    train_split=ValidSplit(4, stratified=True))
    net = MeasuredRows(**net.get_params(deep=False)).fit(X, y)
    assert sizes == [75, 75, 75]  # epochs 1, 4 and 7, on the 25 % validation split
    assert len(net.history[:, "gate_0"]) == 7
    sizes.clear()
    # the schedule counts the epochs of the whole training: partial_fit's epochs 8 to
    # 10 measure at epoch 10 (a new call measures the teacher's side afresh)
    net.partial_fit(X, y, epochs=3)
    assert sizes == [75]
    assert len(net.history[:, "gate_0"]) == 10
    sizes.clear()
    MeasuredRows(**distiller(TwoBranches(), max_epochs=2, train_split=None).get_params(deep=False)
                 ).fit(X, y)
    assert sizes == [300]  # no validation split: the training rows


def test_too_few_rows_keep_the_gates_open(noisy_digits, noise_only):
    X, y = noisy_digits
    with pytest.warns(UserWarning, match="pid_gate: 20 training rows, fewer than the 30"):
        few = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(10)])
        net = distiller(noise_only, method="kd", layers=None).fit(X[few], y[few])
    assert net.history[:, "gate_kd"] == [1.0] * 3


class ConstantFeatureLoss(DistillationLoss):
    """A criterion without per-pair weights: the net scales its whole term."""

    def forward(self, s_logits, t_logits, s_feats, t_feats, y, phase="student", **kwargs):
        assert "pair_weights" not in kwargs
        return {"distill": s_feats[0].sum() * 0 + 1.0}


def test_criteria_without_pair_weights_get_the_mean_gate(noisy_digits):
    X, y = noisy_digits
    net = distiller(TwoBranches(), method=ConstantFeatureLoss(),
                    layers=("signal", "noise")).fit(X, y)
    assert net.history[-1, "train_distill"] == pytest.approx(0.5)  # mean of 1 and 0


def test_settings_are_checked(noisy_digits):
    X, y = noisy_digits
    with pytest.raises(TypeError, match="pid_gate must be True or False; got str 'yes'"):
        distiller(TwoBranches(), pid_gate="yes").fit(X, y)
    with pytest.raises(ValueError, match="pid_gate_every must be an int >= 1; got 0"):
        distiller(TwoBranches(), pid_gate_every=0).fit(X, y)
    net = distiller(TwoBranches()).initialize()
    with pytest.raises(ValueError, match="pid_gate_every must be an int >= 1"):
        net.set_params(pid_gate_every=-1)


def test_off_by_default_and_the_fitted_net_pickles(noisy_digits, noise_only):
    X, y = noisy_digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NuisanceTeacherWarning)
        plain = PIDDistiller(MLP, noise_only, method="kd", module__n_features=128,
                             max_epochs=1, train_split=None, verbose=0).fit(X, y)
    assert not plain.pid_gate and "gate_kd" not in plain.history[-1]
    net = distiller(TwoBranches()).fit(X, y)
    copy_ = pickle.loads(pickle.dumps(net))
    np.testing.assert_allclose(copy_.predict_proba(X), net.predict_proba(X))
    assert copy_.pid_gates_ == net.pid_gates_


def test_gates_are_in_the_printed_table_and_the_plot(noisy_digits):
    X, y = noisy_digits
    lines = []
    net = distiller(TwoBranches(), layers=("signal", "noise"), verbose=1,
                    callbacks__print_log__sink=lines.append).fit(X, y)
    assert "gate_0" in lines[0] and "gate_1" in lines[0]
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    ax = plot_pid_history(net)
    right = ax.figure.axes[-1]
    assert [line.get_label() for line in right.get_lines()] == ["gate_0", "gate_1"]


class Sides(PIDDistiller):
    """Records the side of each representation pass."""

    sides = []

    def representations(self, X, pair=0, *, side="both", **kwargs):
        self.sides.append(side)
        return super().representations(X, pair, side=side, **kwargs)


def test_teacher_side_is_measured_once_per_fit_and_shared_with_the_check(noisy_digits):
    X, y = noisy_digits
    Sides.sides.clear()
    params = distiller(TwoBranches(), max_epochs=5, pid_gate_every=2,
                       teacher_check="warn").get_params(deep=False)
    net = Sides(**params).fit(X, y)
    # the check's teacher pass on the training rows serves the gate's first
    # measurement (no split: the same rows); the gates at epochs 1, 3, 5 run the student
    assert Sides.sides == ["teacher", "student", "student", "student"]
    assert set(net.teacher_information_) == {"signal"}


def test_measure_gate_is_what_the_callback_measures():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    teacher = np.eye(3)[y] + 0.1 * rng.normal(size=(200, 3))
    assert measure_gate(teacher, rng.normal(size=(200, 3)), y).gate == 1.0
    caught_up = measure_gate(teacher, teacher + 0.01 * rng.normal(size=(200, 3)), y)
    assert caught_up.share < 0.05 and caught_up.gate < 0.5
    assert measure_gate(rng.normal(size=(200, 3)), teacher, y).gate == 0.0  # nuisance


@pytest.mark.gpu
def test_gates_on_cuda(noisy_digits, noise_only):
    X, y = noisy_digits
    net = distiller(TwoBranches(), layers=("signal", "noise"), kd_weight=1.0,
                    device="cuda").fit(X, y)
    assert [net.pid_gates_[name].gate for name in ("gate_0", "gate_1")] == [1.0, 0.0]
    kd = distiller(noise_only, method="kd", layers=None, device="cuda").fit(X, y)
    assert kd.history[:, "train_distill"] == [0.0] * 3


def test_grid_search_over_the_gate(noisy_digits):
    from sklearn.model_selection import GridSearchCV
    X, y = noisy_digits
    grid = GridSearchCV(distiller(TwoBranches(), max_epochs=1),
                        {"pid_gate": [False, True], "pid_gate_every": [1, 2]}, cv=2)
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_estimator_.get_params()["pid_gate"] in (False, True)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))


def test_gate_is_a_default_callback_routed_the_skorch_way(noisy_digits):
    X, y = noisy_digits
    MeasuredRows.sizes.clear()
    params = distiller(TwoBranches(), max_epochs=5, pid_gate_every=1,
                       callbacks__pid_gate__every=2).get_params(deep=False)
    net = MeasuredRows(**params).fit(X, y)
    gate = dict(net.callbacks_)["pid_gate"]
    assert isinstance(gate, PIDGate) and gate.every == 2  # wins over pid_gate_every
    assert MeasuredRows.sizes == [300] * 3  # epochs 1, 3 and 5
    net.set_params(callbacks__pid_gate__every=5)
    assert dict(net.callbacks_)["pid_gate"].every == 5
    with pytest.raises(ValueError, match="every must be an int >= 1; got 0"):
        distiller(TwoBranches(), callbacks__pid_gate__every=0).fit(X, y)
    # a grid over the callback's setting
    from sklearn.model_selection import GridSearchCV
    search = GridSearchCV(distiller(TwoBranches(), max_epochs=2),
                          {"callbacks__pid_gate__every": [1, 2]}, cv=2).fit(X, y)
    assert [p["callbacks__pid_gate__every"] for p in search.cv_results_["params"]] == [1, 2]
    # removed: no gate, whatever the switch says
    net = distiller(TwoBranches(), max_epochs=2, callbacks__pid_gate=None).fit(X, y)
    assert "gate_0" not in net.history[-1] and not getattr(net, "pid_gates_", {})


@pytest.mark.parametrize("seed", [0, 7])
def test_a_gate_is_a_function_of_the_representations_only(noisy_digits, seed):
    """The gate is measure_gate of the representations it was measured on, whatever the
    net's random_state: the KMeans and permutation seeds are the layer's, not the run's.
    The one measurement of a one-epoch fit sees the initialised student (fit initialises
    it as initialize() does: seeded by random_state)."""
    X, y = noisy_digits
    net = distiller(TwoBranches(), max_epochs=1, random_state=seed).initialize()
    t, s = net.representations(X, pair=0)
    again = measure_gate(t, s, y, name="signal")
    gate = net.fit(X, y).pid_gates_["gate_0"]
    assert gate.share == pytest.approx(again.share, abs=1e-12)
    assert gate.gate == again.gate
