"""Defaults that train well for a scikit-learn user who changes nothing (issues 14 and
22): the documented values, the training budget, the teacher cache, nuisance teachers."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.dataset import ValidSplit
from torch import nn

from skpid import PIDDistiller
from skpid.distill import METHODS
from skpid.distill.models import MLP
from skpid.exceptions import NuisanceTeacherWarning


def tiny_net(teacher, **kw):
    params = dict(method="kd", module__n_features=4, module__hidden=4,
                  module__n_classes=2, classes=[0, 1], max_epochs=2, train_split=None,
                  verbose=0, random_state=0)
    return PIDDistiller(MLP, teacher, **{**params, **kw})


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(129, 4)).astype(np.float32)  # 2 batches of 64 and one of 1
    return X, (X[:, 0] > 0).astype(np.int64)


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def test_documented_defaults(teacher):
    params = PIDDistiller(MLP, teacher).get_params()
    assert params["optimizer"] is torch.optim.Adam
    assert (params["lr"], params["max_epochs"], params["batch_size"]) == (1e-2, 200, 64)
    assert (params["method"], params["pid_weight"], params["teacher_cache"]) == (
        "kd", "auto", "auto")
    assert params["iterator_train__shuffle"] is True
    assert params["rounds"] is None
    callbacks = dict(PIDDistiller(MLP, teacher).initialize().callbacks_)
    stop = callbacks["early_stopping"]
    assert (stop.monitor, stop.patience, stop.min_steps, stop.max_steps, stop.load_best,
            stop.lr_decay) == ("accuracy", 20, 300, 5000, True, 0.3)
    # an explicit choice wins
    assert PIDDistiller(MLP, teacher, iterator_train__shuffle=False).get_params()[
        "iterator_train__shuffle"] is False


def test_early_stopping_waits_for_enough_updates_and_restores_the_best(data, teacher):
    X, y = data
    X, y = np.concatenate([X] * 2), np.concatenate([y] * 2)  # 258 rows: 4 updates/epoch
    net = tiny_net(teacher, max_epochs=500, train_split=ValidSplit(4, stratified=True),
                   callbacks__early_stopping__max_steps=10_000).fit(X, y)
    stop = dict(net.callbacks_)["early_stopping"]
    epochs = len(net.history)
    assert epochs < 500  # it stopped
    since = epochs - stop.best_epoch_
    assert since >= 20 and since * 3 >= 300  # 20 epochs and 300 updates without gain
    best = net.history[stop.best_epoch_ - 1]
    np.testing.assert_allclose(net.score(*_valid_rows(net, X, y)), best["valid_acc"])


def _valid_rows(net, X, y):
    """The validation split's rows (skorch's ValidSplit of the fit)."""
    _, valid = net.get_split_datasets(X, y)
    rows = np.asarray(valid.indices)
    return X[rows], y[rows]


def test_without_a_split_it_stops_on_the_training_loss(data, teacher):
    X, y = data
    net = tiny_net(teacher, max_epochs=1000, train_split=None).fit(X, y)
    assert len(net.history) < 1000 and "valid_loss" not in net.history[-1]


def test_teacher_cache_auto_caches_where_a_lookup_is_cheaper(data, teacher):
    from sklearn.linear_model import LogisticRegression
    from skpid.distill._teacher import CACHE_MACS
    X, y = data
    # a tiny torch teacher (48 multiply-adds a row): its forward is cheaper than a lookup
    assert not tiny_net(teacher).fit(X, y).teacher_.cache
    # a scikit-learn teacher, and a wide torch teacher, are cached on fixed rows
    forest = LogisticRegression().fit(X, y)
    net = tiny_net(forest).fit(X, y)
    assert net.teacher_.cache and net.teacher_.cached_rows == len(np.unique(X, axis=0))
    wide = nn.Sequential(nn.Linear(4, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 2))
    assert 4 * 512 + 512 * 512 + 512 * 2 >= CACHE_MACS
    assert tiny_net(wide).fit(X, y).teacher_.cache
    # not on a Dataset (its rows may be augmented at random), not when switched off
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    assert not tiny_net(wide).fit(dataset, None).teacher_.cache
    assert not tiny_net(wide, teacher_cache=False).fit(X, y).teacher_.cache
    assert tiny_net(teacher, teacher_cache=True).fit(X, y).teacher_.cache


def test_a_nuisance_teacher_is_not_distilled(data):
    """The teacher check's verdict gates the term: a teacher with no task information
    gives exactly the student trained alone, with the warning saying so."""
    X, y = data
    torch.manual_seed(0)
    nuisance = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    shuffled = np.random.default_rng(1).permutation(len(y))
    with pytest.warns(NuisanceTeacherWarning, match="so it is not distilled"):
        net = tiny_net(nuisance, max_epochs=5).fit(X[shuffled], y)  # rows ≠ labels
    assert net.nuisance_layers_ == {"logits"}
    alone = tiny_net(nuisance, method="none", max_epochs=5).fit(X[shuffled], y)
    np.testing.assert_array_equal(net.predict_proba(X), alone.predict_proba(X))
    ignored = tiny_net(nuisance, max_epochs=5, teacher_check="ignore").fit(X[shuffled], y)
    assert not np.array_equal(ignored.predict_proba(X), alone.predict_proba(X))


@pytest.mark.parametrize("method,weight", [("none", 1.0), ("kd", 1.0), ("fitnet", 1.0),
                                           ("vid", 1.0), ("rid", 10.0), ("ted", 10.0)])
def test_auto_weight_is_the_method_recommendation(method, weight):
    assert METHODS[method].recommended_weight == weight


def test_auto_weight_resolves_and_numbers_win(data, teacher):
    X, y = data
    net = tiny_net(teacher, method="rid", teacher_layers=["1"], student_layers=["body"],
                   rounds=1).fit(X, y)
    assert net.effective_pid_weight() == 10.0
    assert net.set_params(pid_weight=2.5).effective_pid_weight() == 2.5
    with pytest.raises(ValueError, match='pid_weight must be "auto" or a finite number'):
        tiny_net(teacher, pid_weight="bogus").fit(X, y)


def test_batches_are_shuffled_by_default(data, teacher):
    X, y = data
    order = np.argsort(y, kind="stable")  # rows grouped by class
    net = tiny_net(teacher, max_epochs=1).initialize()
    batch = next(iter(net.get_iterator(net.get_dataset(X[order], y[order]),
                                       training=True)))
    assert 0 < batch[1].float().mean() < 1  # a first batch of both classes


@pytest.mark.parametrize("convert", [
    lambda X: X.astype(np.float64), lambda X: X.astype(np.float16).astype(np.float64),
    lambda X: np.round(X * 4).astype(np.int64), lambda X: pd.DataFrame(X.astype(np.float64)),
    lambda X: torch.as_tensor(X, dtype=torch.float64)],
    ids=["float64", "float16-valued", "int64", "pandas", "torch-float64"])
def test_any_real_valued_x_is_cast_to_the_parameter_dtype(data, teacher, convert):
    X, y = data
    X_in = convert(X)
    reference = np.asarray(X_in, dtype=np.float32) if not isinstance(X_in, torch.Tensor) \
        else X_in.float().numpy()
    net = tiny_net(teacher).fit(X_in, y)
    again = tiny_net(teacher).fit(reference, y)
    np.testing.assert_array_equal(net.predict_proba(X_in), again.predict_proba(reference))


def test_last_batch_of_one_row_with_batchnorm(data, teacher):
    X, y = data
    assert len(X) % 64 == 1
    net = tiny_net(teacher, max_epochs=2).fit(X, y)  # MLP has BatchNorm: no crash
    assert len(net.history[-1, "batches"]) == len(X) // 64
    # a different row sits out each epoch: the rows seen differ between epochs
    net = tiny_net(teacher, batch_size=4, max_epochs=1).initialize()
    assert len(list(net.get_iterator(net.get_dataset(X[:9], y[:9]), training=True))) == 2
    # unless the user decides otherwise
    net = tiny_net(teacher, iterator_train__drop_last=False, batch_size=4).initialize()
    assert len(list(net.get_iterator(net.get_dataset(X[:9], y[:9]), training=True))) == 3


def test_digits_pipeline_with_every_training_setting_at_its_default():
    # The check: digits as scikit-learn gives it (float64), StandardScaler, an
    # MLPClassifier teacher, a training set leaving a last batch of one row.
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=64 * 18 + 1, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    teacher = MLPClassifier((128,), max_iter=300, random_state=0)
    teacher.fit(scaler.transform(X_train), y_train)
    scores = {}
    for method in ("none", "kd"):
        pipe = make_pipeline(StandardScaler(), PIDDistiller(
            MLP, teacher, method=method, module__n_features=64, module__hidden=16,
            random_state=0, verbose=0))
        scores[method] = pipe.fit(X_train, y_train).score(X_test, y_test)
    assert scores["kd"] >= 0.93
    assert scores["kd"] >= scores["none"] - 0.01
