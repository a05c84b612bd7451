"""Behaviour of PIDDistiller as a skorch / scikit-learn classifier."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.dataset import ValidSplit
from skorch.callbacks import (Callback, Checkpoint, EarlyStopping, GradientNormClipping,
                              LRScheduler)

from skpid import PIDDistiller
from skpid.distill import RIDLoss, VIDLoss
from skpid.distill.models import MLP, SmallCNN

from ._small import FAST, mlp_net
from .conftest import same_state, state_copy

@pytest.mark.parametrize("method", ["none", "kd", "fitnet", "vid", "rid", "ted"])
def test_teacher_frozen_and_in_no_optimizer(method, digits, teacher_mlp):
    X, y = digits
    before = state_copy(teacher_mlp)  # includes BatchNorm running statistics
    net = mlp_net(teacher_mlp, method=method, kd_weight=0.5).fit(X, y)
    assert same_state(before, state_copy(teacher_mlp))
    assert not teacher_mlp.training
    teacher_ids = {id(p) for p in teacher_mlp.parameters()}
    for name in net._optimizers:
        for group in getattr(net, name + "_").param_groups:
            assert not teacher_ids & {id(p) for p in group["params"]}
    # and the student did learn something: its parameters moved
    assert np.isfinite(net.history[-1, "train_loss"])


def test_teacher_feature_maps_cnn(digit_images, teacher_cnn):
    X, y = digit_images
    before = state_copy(teacher_cnn)
    net = PIDDistiller(SmallCNN, teacher_cnn, method="rid", module__width=4,
                       teacher_layers=["features", None], student_layers=["features", None],
                       **FAST).fit(X, y)
    assert same_state(before, state_copy(teacher_cnn))
    assert len(net.method_.teacher_filters) == 2
    assert isinstance(net.method_.teacher_filters[0][0], torch.nn.Conv2d)
    assert net.predict(X[:5]).shape == (5,)


def test_only_active_phase_is_stepped(digits, teacher_mlp):
    X, y = digits

    class Snapshots(Callback):
        def initialize(self):
            self.rows = []
            return self

        def on_batch_end(self, net, batch=None, training=False, **kw):
            if training:
                self.rows.append((net.history[-1, "batches", -1]["phase"],
                                  state_copy(net.module_), state_copy(net.method_)))

    snaps = Snapshots()
    # 2 epochs of one full batch each, one round, rho = 1/2: step 0 teacher, step 1 student
    net = mlp_net(teacher_mlp, rounds=1, teacher_ratio=0.5, batch_size=len(y),
                  callbacks=[snaps]).fit(X, y)
    (p0, student0, crit0), (p1, student1, crit1) = snaps.rows
    assert (p0, p1) == ("teacher", "student")
    assert net.history[:, "teacher_phase"] == [1.0, 0.0]
    filters = [k for k in crit0 if k.startswith(("teacher_filters", "heads"))]
    student_side = [k for k in crit0 if k.startswith(("student_filters", "raw_variances"))]
    # the student phase changes the student and its filters, never the teacher side
    assert not same_state(student0, student1)
    assert all(torch.equal(crit0[k], crit1[k]) for k in filters)
    assert any(not torch.equal(crit0[k], crit1[k]) for k in student_side)


def test_teacher_phase_leaves_student_untouched(digits, teacher_mlp):
    X, y = digits
    torch.manual_seed(0)
    net = mlp_net(teacher_mlp, rounds=1, teacher_ratio=0.5, batch_size=len(y), max_epochs=1,
                  warm_start=True, method__concurrent=False)
    net.initialize()
    student_before = state_copy(net.module_)
    with pytest.warns(UserWarning, match="RID schedule"):
        net.fit(X, y)  # the single step is a teacher step
    assert net.history[-1, "teacher_phase"] == 1.0
    assert same_state(student_before, state_copy(net.module_))


def test_history_records_each_term(digits, teacher_mlp):
    X, y = digits
    net = mlp_net(teacher_mlp, rounds=2, max_epochs=2,
                  train_split=ValidSplit(4, stratified=True))
    net.fit(X, y)
    row = net.history[-1]
    for key in ("train_ce", "train_distill", "train_filter_ce", "train_distance",
                "valid_ce", "valid_distill", "teacher_phase", "valid_acc"):
        assert key in row, key
    phases = {b["phase"] for epoch in net.history for b in epoch["batches"] if "phase" in b}
    assert phases == {"teacher", "student"}


def test_string_labels_and_proba(digits, teacher_mlp):
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    ys = names[y]
    net = mlp_net(teacher_mlp, method="kd", train_split=None).fit(X, ys)
    assert set(net.classes_) == set(names)
    pred = net.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(net.classes_[proba.argmax(axis=1)], pred)
    assert 0 <= net.score(X, ys) <= 1


def test_pickle_and_save_load_round_trip(digits, teacher_mlp, tmp_path):
    X, y = digits
    net = mlp_net(teacher_mlp, method="rid").fit(X, y)
    expected = net.predict_proba(X)
    again = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(again.predict_proba(X), expected)
    assert not any(m._forward_hooks for m in again.module_.modules())
    again.partial_fit(X, y)  # still trainable after unpickling

    net.save_params(f_params=tmp_path / "p.pt", f_criterion=tmp_path / "c.pt")
    fresh = mlp_net(teacher_mlp, method="rid").initialize()
    fresh.load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_array_equal(fresh.predict_proba(X), expected)


def test_clone_shares_teacher_and_set_params_routes(digits, teacher_mlp):
    X, y = digits
    net = mlp_net(teacher_mlp, method="rid", pid_weight=3.0)
    twin = clone(net)
    assert twin.teacher is teacher_mlp and twin.pid_weight == 3.0
    params = twin.get_params()
    for name in ("module", "teacher", "method", "pid_weight", "ce_weight",
                 "teacher_layers", "student_layers", "temperature", "rounds",
                 "teacher_ratio", "variance_penalty", "module__hidden", "lr"):
        assert name in params, name
    twin.set_params(module__hidden=5, method__pool_heads=False, rounds=2, lr=0.1)
    twin.fit(X, y)
    assert twin.module_.head.in_features == 5
    assert twin.method_.pool_heads is False and twin.method_.rounds == 2
    assert twin.optimizer_.param_groups[0]["lr"] == 0.1
    # set_params on a fitted net re-initializes the criterion through skorch's routing
    twin.set_params(method__variance_penalty="square")
    assert twin.method_.variance_penalty == "square"
    # plain parameters whose names start with "teacher" are not component parameters
    twin.set_params(teacher_ratio=0.5, teacher_layers=["body.2"], teacher_cache=True)
    other = MLP(64, hidden=32)
    twin.set_params(teacher=other)
    assert twin.teacher is other and twin.teacher_.module is other


def test_method_instance_and_sklearn_teacher(digits):
    X, y = digits
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    net = PIDDistiller(MLP, forest, method="kd", teacher_cache=True, module__hidden=8,
                       **{**FAST, "iterator_train__drop_last": False}).fit(X, y)
    assert net.score(X, y) > 0.1
    assert net.teacher_.cached_rows == len(np.unique(X, axis=0))
    # a criterion instance, on logits of a scikit-learn teacher
    net = PIDDistiller(MLP, forest, method=VIDLoss(), module__hidden=8, **FAST).fit(X, y)
    assert isinstance(net.method_, VIDLoss)


def test_teacher_cache_gives_the_same_outputs(digits, teacher_mlp):
    X, y = digits
    torch.manual_seed(0)
    a = mlp_net(teacher_mlp, method="vid", teacher_cache=False).fit(X, y)
    torch.manual_seed(0)
    b = mlp_net(teacher_mlp, method="vid", teacher_cache=True).fit(X, y)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-5)


def test_skorch_callbacks_and_warm_start(digits, teacher_mlp, tmp_path):
    X, y = digits
    callbacks = [EarlyStopping(patience=1, monitor="valid_loss"),
                 Checkpoint(dirname=str(tmp_path), monitor="valid_loss_best"),
                 LRScheduler(policy="StepLR", step_size=1, gamma=0.5),
                 GradientNormClipping(gradient_clip_value=1.0)]
    net = mlp_net(teacher_mlp, callbacks=callbacks, max_epochs=3, warm_start=True,
                  train_split=ValidSplit(4, stratified=True))
    net.fit(X, y)
    assert (tmp_path / "params.pt").exists()
    assert net.optimizer_.param_groups[0]["lr"] < 0.05
    n_epochs, filters = len(net.history), net.method_.teacher_filters
    net.fit(X, y)
    assert len(net.history) > n_epochs          # warm start continues the history
    assert net.method_.teacher_filters is filters  # and keeps the learned filters


def test_grid_search_in_pipeline_on_digits(digits, teacher_mlp):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), PIDDistiller(
        MLP, teacher_mlp, module__hidden=8, teacher_layers=["body"],
        student_layers=["body"], max_epochs=2, batch_size=32, lr=0.05, verbose=0, rounds=2,
        train_split=None, iterator_train__drop_last=True))
    grid = GridSearchCV(pipe, {"piddistiller__pid_weight": [0.5, 2.0],
                               "piddistiller__method": ["vid", "rid"]}, cv=2)
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_[-1].teacher is teacher_mlp
    assert grid.predict(X[:3]).shape == (3,)


@pytest.mark.gpu
def test_cuda_moves_everything(digit_images, teacher_cnn):
    X, y = digit_images
    net = PIDDistiller(SmallCNN, teacher_cnn, method="rid", module__width=4,
                       teacher_layers=["features"], student_layers=["features"],
                       device="cuda", **FAST).fit(X, y)
    assert next(net.module_.parameters()).is_cuda
    assert next(teacher_cnn.parameters()).is_cuda
    assert all(p.is_cuda for p in net.method_.parameters())
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    again = pickle.loads(pickle.dumps(net))
    np.testing.assert_allclose(again.predict_proba(X), proba, atol=1e-6)


def test_holdout_filter_heads_see_only_held_out_rows(digits, teacher_mlp):
    X, y = digits
    from skpid.distill._data import row_hashes as _row_hashes
    mask = _row_hashes(torch.as_tensor(X)) < 0.3  # the heads' share of filter_holdout=0.3
    assert 0.15 < mask.float().mean() < 0.45
    assert torch.equal(mask, _row_hashes(torch.as_tensor(X)) < 0.3)  # stable
    net = mlp_net(teacher_mlp, method=RIDLoss(filter_holdout=0.3, rounds=2)).fit(X, y)
    assert np.isfinite(net.history[-1, "train_filter_ce"])


@pytest.mark.parametrize("pair", [3, -1, True, "body"])
def test_representations_refuses_a_pair_it_does_not_have(pair, digits, teacher_mlp):
    X, y = digits
    net = mlp_net(teacher_mlp, method="kd").fit(X, y)
    with pytest.raises(ValueError, match=r"pair must be 'logits' or an index into "
                                         r"teacher_layers / student_layers \(0 to 0\)"):
        net.representations(X[:5], pair=pair)
    t, s = net.representations(X[:5], pair="logits")
    assert t.shape == s.shape == (5, 10)
