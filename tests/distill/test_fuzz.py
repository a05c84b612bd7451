"""Property tests: any value of any setting, on any route, trains with a finite loss or
fails with an error that names the setting; any label kind trains or fails clearly."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from skpid import PIDDistiller, PIDMonitor
from skpid.distill import METHODS, KDLoss, RIDLoss, TEDLoss

# Small and quick: tiny networks, one or two epochs, few examples, no example database
# written into the working tree.
FUZZ = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

rng = np.random.default_rng(0)
X = rng.normal(size=(48, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)


class Student(nn.Module):
    def __init__(self, n_classes=2):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.head = nn.Linear(4, n_classes)

    def forward(self, x):
        return self.head(self.body(x))


def teacher(n_classes=2):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, n_classes))


def net(**kw):
    params = dict(method="rid", rounds=1, teacher_layers=["1"], student_layers=["body"],
                  max_epochs=1, batch_size=16, train_split=None, verbose=0,
                  random_state=0)
    params.update(kw)
    return PIDDistiller(Student, teacher(), **params)


# Values of every kind: numbers in and out of range, NaN, infinities, numpy scalars,
# strings (also ones that look like numbers or valid choices), None, bools, containers.
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-2, max_value=2),
    st.integers(min_value=-3, max_value=6),
    st.sampled_from([np.float32("nan"), np.int64(2), np.float64(0.5), np.bool_(True)]),
    st.sampled_from(["log", "square", "raise", "warn", "rid", "2", "nan", ""]),
    st.text(max_size=3),
    st.none(), st.booleans(), st.just([0.1]), st.just({"lr": 0.1}),
)
NAMES = ["pid_weight", "ce_weight", "kd_weight", "temperature", "rounds", "teacher_ratio",
         "variance_penalty", "on_nonfinite", "lr", "optimizer__lr", "filter_optimizer__lr",
         "max_epochs", "teacher_cache", "method__rounds", "method__teacher_ratio",
         "method__variance_penalty", "method__pool_heads", "method__filter_holdout",
         "method__temperature"]


def fit_or_clear_error(name, route, build, X=X, y=Y):
    """Run; the outcome must be a fit with a finite loss, an error naming ``name``, or a
    loss that diverged under valid but extreme settings, reported as such."""
    try:
        fitted = build()
    except (ValueError, TypeError) as exc:
        assert name in str(exc), (name, route, str(exc))
        return None
    except FloatingPointError as exc:
        assert str(exc).startswith("Non-finite loss at epoch"), str(exc)
        return None
    if not len(fitted.history):  # max_epochs=0: initialised, not trained
        assert fitted.max_epochs == 0, (name, route)
        return fitted
    assert math.isfinite(fitted.history[-1, "train_loss"]), (name, route)
    return fitted


@FUZZ
@given(name=st.sampled_from(NAMES), value=values, method=st.sampled_from(sorted(METHODS)),
       route=st.sampled_from(["constructor", "set_params", "set_params_fitted"]))
def test_any_value_of_any_setting_trains_or_is_refused_by_name(name, value, method, route):
    layers = ({} if method in ("fitnet", "vid", "rid", "ted")
              else dict(teacher_layers=None, student_layers=None))

    def build():
        if route == "constructor":
            return net(method=method, **layers, **{name: value}).fit(X, Y)
        if route == "set_params":
            return net(method=method, **layers).set_params(**{name: value}).fit(X, Y)
        fitted = net(method=method, **layers).fit(X, Y)
        fitted.set_params(**{name: value})
        return fitted.partial_fit(X, Y)

    fit_or_clear_error(name, route, build)


@FUZZ
@given(kind=st.sampled_from(["int", "str", "bool", "float"]),
       n_classes=st.integers(min_value=2, max_value=3),
       dtype=st.sampled_from(["float32", "float64", "float16", "int64", "bool"]),
       seed=st.integers(min_value=0, max_value=2 ** 16))
def test_any_label_kind_and_x_dtype(kind, n_classes, dtype, seed):
    local = np.random.default_rng(seed)
    codes = np.arange(len(Y)) % n_classes
    local.shuffle(codes)
    if kind == "bool":
        n_classes, codes = 2, codes % 2
        labels = np.array([False, True])
    elif kind == "str":
        labels = np.array(["a", "bb", "c c"][:n_classes])
    elif kind == "float":
        labels = np.array([-1.5, 0.0, 2.25][:n_classes])
    else:
        labels = local.choice(1000, size=n_classes, replace=False) - 500
    y = labels[codes]
    Xd = (X * 4).astype(dtype)
    model = PIDDistiller(Student, teacher(n_classes), module__n_classes=n_classes,
                         method="kd", max_epochs=1, batch_size=16, train_split=None,
                         verbose=0, random_state=0)
    try:
        model.fit(Xd, y)
    except (TypeError, ValueError) as exc:  # a dtype the networks cannot take
        assert dtype != "float32" and str(exc).startswith("X"), str(exc)
        return
    assert math.isfinite(model.history[-1, "train_loss"])
    assert set(model.predict(Xd).tolist()) <= set(labels.tolist())
    assert np.isfinite(model.predict_proba(Xd)).all()


@FUZZ
@given(name=st.sampled_from(["every", "pair", "max_samples", "n_clusters", "n_components",
                             "measure", "prefix"]), value=values)
def test_monitor_settings_are_accepted_or_refused_by_name(name, value):
    try:
        PIDMonitor(**{name: value}).initialize()
    except (ValueError, TypeError) as exc:
        assert name in str(exc), str(exc)


@FUZZ
@given(cls=st.sampled_from([RIDLoss, TEDLoss, KDLoss]),
       name=st.sampled_from(["rounds", "teacher_ratio", "variance_penalty", "pool_heads",
                             "filter_holdout", "temperature"]), value=values)
def test_criteria_are_built_or_refused_by_name(cls, name, value):
    try:
        built = cls(**{name: value})
    except (ValueError, TypeError) as exc:
        assert name in str(exc), str(exc)
        return
    assert getattr(built, name) == value or value != value


@pytest.mark.parametrize("on_nonfinite", ["raise", "warn"])
def test_monitor_and_table_survive_a_whole_fit(on_nonfinite):
    # the declared columns of a monitored fit, end to end (no assertion on output here:
    # test_reliability checks the table cell by cell)
    model = net(callbacks=[PIDMonitor(n_clusters=2, X=X, y=Y)], verbose=0,
                on_nonfinite=on_nonfinite).fit(X, Y)
    assert "valid_redundancy" in model.history[-1]
