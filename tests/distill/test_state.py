"""Training state that survives (``_state``): skorch's resume recipe, save_params /
load_params, partial_fit, set_params on a fitted net."""

import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback, Checkpoint, LoadInitState
from skorch.dataset import ValidSplit

from skpid import PIDDistiller
from skpid.distill.models import MLP
from skpid.exceptions import NuisanceTeacherWarning

from .conftest import same_state, state_copy

# teacher_layers "body" of the conftest teacher MLP(64, hidden=32)
BASE = dict(module__hidden=8, teacher_layers=["body"], student_layers=["body"],
            max_epochs=6, batch_size=32, verbose=0, random_state=0)
CONFIGS = {
    "fitnet": dict(method="fitnet", train_split=None),
    "rid_gate": dict(method="rid", rounds=2, pid_gate=True, pid_gate_every=2,
                     train_split=ValidSplit(5, stratified=True)),
    "kd": dict(method="kd", train_split=None),
    "ted": dict(method="ted", train_split=None),
    "none": dict(method="none", train_split=None),
}


def make(teacher, name, **kw):
    return PIDDistiller(MLP, teacher, **{**BASE, **CONFIGS[name], **kw})


class StopAt(Callback):
    """Interrupts training (as Ctrl-C would) at the start of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def same_run(a, b):
    assert same_state(state_copy(a.module_), state_copy(b.module_))
    assert same_state(state_copy(a.method_), state_copy(b.method_))
    for name in ("optimizer_", "filter_optimizer_"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa["param_groups"] == sb["param_groups"]
        for k in sa["state"]:
            assert all(torch.equal(sa["state"][k][key], sb["state"][k][key])
                       for key in sa["state"][k]), (name, k)
    for row_a, row_b in zip(a.history, b.history):
        for key in row_a:
            if key not in ("dur", "batches") and not key.startswith("event_"):
                assert row_a[key] == row_b[key], key
    assert {k: g.gate for k, g in getattr(a, "pid_gates_", {}).items()} == \
        {k: g.gate for k, g in getattr(b, "pid_gates_", {}).items()}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_checkpoint_and_load_init_state_resume_exactly(name, digits, teacher_mlp, tmp_path):
    """skorch's FAQ recipe, with the default files (params, optimizer, criterion,
    history): interrupted after 3 epochs and resumed for the other 3, the run is the
    uninterrupted one, bit for bit."""
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = make(teacher_mlp, name).fit(X, y)
        checkpoint = Checkpoint(monitor=None, dirname=str(tmp_path))
        make(teacher_mlp, name, callbacks=[checkpoint, StopAt(4)]).fit(X, y)
        resumed = make(teacher_mlp, name, callbacks=[
            Checkpoint(monitor=None, dirname=str(tmp_path)),
            LoadInitState(Checkpoint(monitor=None, dirname=str(tmp_path)))])
        resumed.fit(X, y, epochs=3)
    assert len(resumed.history) == 6
    same_run(whole, resumed)
    np.testing.assert_array_equal(whole.predict_proba(X), resumed.predict_proba(X))


def test_default_checkpoint_files_hold_every_distillation_part(digits, teacher_mlp, tmp_path):
    """The files of skorch's default Checkpoint restore the best epoch's whole state:
    student, parts, RID's schedule position and gate, both optimizers, the gates."""
    X, y = digits
    net = make(teacher_mlp, "rid_gate", callbacks=[Checkpoint(dirname=str(tmp_path))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(X, y)
    best = int(np.argmin(net.history[:, "valid_loss"])) + 1
    fresh = make(teacher_mlp, "rid_gate").initialize()
    fresh.load_params(checkpoint=Checkpoint(dirname=str(tmp_path)))
    assert len(fresh.history) == best
    assert int(fresh.method_.updates[0]) > 0
    assert fresh.method_.is_built_for(*[
        [(1, *shape) for shape in side] for side in net.method_.built_shapes_[:2]],
        net.method_.built_shapes_[2])
    assert set(fresh.pid_gates_) == {"gate_0"}
    assert fresh.teacher_information_ == net.teacher_information_
    assert fresh.filter_optimizer_.state_dict()["state"]  # Adam moments of the filters


def test_save_params_then_partial_fit_continues_the_run(digits, teacher_mlp, tmp_path):
    X, y = digits
    files = {f"f_{k}": tmp_path / f"{k}.pt" for k in ("params", "optimizer", "criterion")}
    files["f_history"] = tmp_path / "history.json"
    net = make(teacher_mlp, "rid_gate", max_epochs=3)
    twin = make(teacher_mlp, "rid_gate", max_epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(X, y)
        net.save_params(**files)
        twin.initialize().load_params(**files)
        same_run(net, twin)
        net.partial_fit(X, y, epochs=2)
        twin.partial_fit(X, y, epochs=2)
    same_run(net, twin)


@pytest.mark.parametrize("name", ["none", "kd", "fitnet"])
def test_skorch_trio_keeps_the_optimizer_state(name, digits, teacher_mlp, tmp_path):
    """initialize() + load_params(f_params, f_optimizer, f_history) + partial_fit, as
    skorch documents it: the optimizer's moments are kept (not rebuilt on the first
    batch); without the criterion file, the distillation parts start afresh, with a
    warning saying so."""
    X, y = digits
    files = dict(f_params=tmp_path / "p.pt", f_optimizer=tmp_path / "o.pt",
                 f_history=tmp_path / "h.json")
    net = make(teacher_mlp, name, max_epochs=2).fit(X, y)
    net.save_params(**files)
    saved = net.optimizer_.state_dict()["state"]
    fresh = make(teacher_mlp, name, max_epochs=2).initialize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.load_params(**files)
    parts = name == "fitnet"
    assert any("start afresh" in str(w.message) for w in caught) == parts
    loaded = fresh.optimizer_.state_dict()["state"]
    assert len(loaded) == len(saved)
    assert all(torch.equal(loaded[k]["exp_avg"], saved[k]["exp_avg"]) for k in saved)
    before = {k: v["exp_avg"].clone() for k, v in loaded.items()}
    fresh.partial_fit(X, y, epochs=1)
    after = fresh.optimizer_.state_dict()["state"]
    assert int(after[0]["step"]) == int(saved[0]["step"]) + 10  # 10 more batches
    assert not all(torch.equal(before[k], after[k]["exp_avg"]) for k in before)


def test_partial_fit_epoch_by_epoch_is_the_fit(digits, teacher_mlp):
    """RID's schedule counts every update since the parts were built, and every epoch
    is seeded by (random_state, epoch): six partial_fit calls of one epoch give the
    six-epoch fit, teacher phases and student phases included."""
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = make(teacher_mlp, "rid_gate").fit(X, y)
        stepwise = make(teacher_mlp, "rid_gate")
        for _ in range(6):
            stepwise.partial_fit(X, y, epochs=1)
    same_run(whole, stepwise)
    phases = whole.history[:, "teacher_phase"]
    assert min(phases) == 0.0 and max(phases) > 0.5  # rounds of both phases


@pytest.mark.parametrize("method", ["rid", "ted"])
def test_partial_fit_leaves_the_teacher_phase(method, digits, teacher_mlp):
    X, y = digits
    net = make(teacher_mlp, "ted" if method == "ted" else "rid_gate", train_split=None,
               pid_gate=False)
    for _ in range(4):
        net.partial_fit(X, y, epochs=1)
    assert 0.0 in net.history[:, "teacher_phase"]  # student epochs came
    alone = make(teacher_mlp, "kd", method="none", train_split=None).fit(X, y)
    assert not same_state(state_copy(net.module_), state_copy(alone.module_))


def test_set_params_filter_optimizer_keeps_the_student_moments(digits, teacher_mlp):
    X, y = digits
    net = make(teacher_mlp, "rid_gate", max_epochs=2, pid_gate=False).fit(X, y)
    moments = {k: v["exp_avg"].clone() for k, v in net.optimizer_.state_dict()["state"].items()}
    net.set_params(filter_optimizer=torch.optim.SGD)
    assert isinstance(net.filter_optimizer_, torch.optim.SGD)
    kept = net.optimizer_.state_dict()["state"]
    assert all(torch.equal(moments[k], kept[k]["exp_avg"]) for k in moments)


def test_set_params_teacher_runs_the_check_again(noisy_digits, noise_only):
    X, y = noisy_digits
    net = PIDDistiller(MLP, noise_only, method="kd", module__n_features=128,
                       module__hidden=8, max_epochs=1, train_split=None, verbose=0,
                       random_state=0)
    with pytest.warns(NuisanceTeacherWarning, match="'logits' holds no measurable"):
        net.fit(X, y)
    assert net.teacher_information_["logits"] < 0.1
    # a linear teacher fitted by least squares on the digit columns
    informative = torch.nn.Linear(128, 10)
    weights = np.linalg.lstsq(X[:, :64], np.eye(10)[y], rcond=None)[0].T
    with torch.no_grad():
        informative.weight.zero_()
        informative.bias.zero_()
        informative.weight[:, :64] = torch.as_tensor(weights, dtype=torch.float32)
    net.set_params(teacher=informative.eval())
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceTeacherWarning)
        net.partial_fit(X, y, epochs=1)
    assert net.teacher_information_["logits"] > 1.0


def test_set_params_pid_gate_off_forgets_the_gates(digits, teacher_mlp):
    X, y = digits
    net = make(teacher_mlp, "rid_gate", max_epochs=1).fit(X, y)
    assert net.pid_gates_
    net.set_params(pid_gate=False)
    assert net.pid_gates_ == {}


@pytest.mark.parametrize("first, then", [(False, True), (True, False)])
def test_set_params_teacher_cache_on_a_fitted_net(digits, teacher_mlp, first, then):
    """The next partial_fit caches the teacher's outputs, or stops caching them, as
    the new setting says (and a cache is never carried over from the old setting)."""
    X, y = digits
    net = make(teacher_mlp, "kd", max_epochs=1, teacher_cache=first).fit(X, y)
    assert (net.teacher_.cached_rows > 0) == first
    net.set_params(teacher_cache=then)
    assert net.teacher_.cached_rows == 0
    net.partial_fit(X, y, epochs=1)
    assert net.teacher_.cache == then
    assert (net.teacher_.cached_rows > 0) == then


def test_set_params_teacher_layers_on_a_fitted_net(digits, teacher_mlp):
    X, y = digits
    net = make(teacher_mlp, "fitnet", max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="teacher_layers: no layer 'bdy'.*Did you mean"):
        net.set_params(teacher_layers=["bdy"])
    net.set_params(teacher_layers=["body.0"])  # the Linear before BatchNorm and ReLU
    t, _ = net.representations(X[:5])
    np.testing.assert_allclose(
        t, teacher_mlp.body[0](torch.as_tensor(X[:5])).detach().numpy(), rtol=1e-6)
    net.partial_fit(X, y, epochs=1)
    assert net.method_.is_built_for([(1, 32)], [(1, 8)], 10)
