"""Issue 13 for the distiller: one check per setting on every route, non-finite losses
stopped, filter_optimizer__* routed like optimizer__*, seeded fits isolated from threads
and from the global generator, a printed table whose columns never shift."""

import math
import re
import threading
import warnings

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from skorch.dataset import ValidSplit
from torch import nn

from skpid import PIDDistiller, PIDMonitor
from skpid.distill import KDLoss, RIDLoss, TEDLoss, VIDLoss, rid_phase, variance_penalty
from skpid.distill.models import MLP

from .conftest import same_state, state_copy

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def small_teacher():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def small_net(teacher=None, module=MLP, **kw):
    params = dict(teacher_layers=["1"], student_layers=["body"], max_epochs=2, rounds=2,
                  batch_size=16, lr=0.05, train_split=None, verbose=0)
    if module is MLP:
        params.update(module__n_features=4, module__hidden=4, module__n_classes=2)
    params.update(kw)
    return PIDDistiller(module, teacher if teacher is not None else small_teacher(),
                        **params)


_FITTED = {}


def fitted(method, data):
    """One fitted net per method, shared: refused set_params must leave it unchanged."""
    if method not in _FITTED:
        _FITTED[method] = small_net(method=method, rounds=1).fit(*data)
    return _FITTED[method]


# ---------------------------------------------------------------------------------------
# class 3: method__* get the checks of their top-level twins, on every route
METHOD_BAD = [
    ("rid", "rounds", 0, ValueError, r"method__rounds must be an int >= 1; got 0\."),
    ("rid", "rounds", -2, ValueError, r"method__rounds must be an int >= 1; got -2"),
    ("rid", "rounds", 2.5, TypeError, r"method__rounds must be an int >= 1; got float 2\.5"),
    ("rid", "rounds", "4", TypeError, r"method__rounds must be an int >= 1; got str '4'"),
    ("rid", "teacher_ratio", 1.5, ValueError,
     r"method__teacher_ratio must be in the open interval \(0, 1\); got 1\.5"),
    ("rid", "teacher_ratio", NAN, ValueError,
     r"method__teacher_ratio must be in the open interval \(0, 1\); got nan"),
    ("ted", "teacher_ratio", 0.0, ValueError, r"method__teacher_ratio must be in the open"),
    ("rid", "variance_penalty", "bogus", ValueError,
     r"method__variance_penalty must be one of \('fixed', 'log', 'square'\); got 'bogus'"),
    ("rid", "pool_heads", "no", TypeError, r"method__pool_heads must be True or False"),
    ("rid", "filter_holdout", 1.5, ValueError,
     r"method__filter_holdout must be a finite number in \[0, 1\]; got 1\.5"),
    ("kd", "temperature", INF, ValueError, r"method__temperature must be > 0 and finite; "
                                           r"got inf"),
    ("kd", "temperature", 0, ValueError, r"method__temperature must be > 0"),
    ("ted", "rounds", 2, TypeError, r"method__rounds: TEDLoss has no parameter 'rounds'"),
    ("vid", "bogus", 1, TypeError, r"method__bogus: VIDLoss has no parameter 'bogus'"),
]


@pytest.mark.parametrize("route", ["constructor", "set_params", "set_params_fitted",
                                   "grid_search"])
@pytest.mark.parametrize("method, name, value, error, match", METHOD_BAD)
def test_method_params_are_checked_on_every_route(method, name, value, error, match,
                                                  route, data):
    X, y = data
    param = {f"method__{name}": value}
    with pytest.raises(error, match=match):
        if route == "constructor":
            small_net(method=method, **param).fit(X, y)
        elif route == "set_params":
            small_net(method=method).set_params(**param).fit(X, y)
        elif route == "grid_search":
            GridSearchCV(small_net(method=method), {f"method__{name}": [value]}, cv=2,
                         error_score="raise").fit(X, y)
        else:  # on a fitted net skorch rebuilds the criterion at once: refused at once
            net = fitted(method, data)
            before = net.method_
            try:
                net.set_params(**param)
            finally:  # and the net is left as it was
                assert net.method_ is before and f"method__{name}" not in vars(net)
                assert net.predict(X[:2]).shape == (2,)


@pytest.mark.parametrize("build, match", [
    (lambda: RIDLoss(rounds=0), r"^rounds must be an int >= 1; got 0\.$"),
    (lambda: RIDLoss(teacher_ratio=NAN), r"^teacher_ratio must be in the open interval"),
    (lambda: RIDLoss(variance_penalty="bogus"), r"^variance_penalty must be one of \('fixed', 'log'"),
    (lambda: TEDLoss(filter_holdout=-0.1), r"^filter_holdout must be a finite number in"),
    (lambda: KDLoss(temperature=NAN), r"^temperature must be > 0 and finite; got nan"),
    (lambda: rid_phase(0, 10, rounds=0, teacher_ratio=0.5), r"^rounds must be an int >= 1"),
    (lambda: rid_phase(0, 10, rounds=2, teacher_ratio=1.5), r"^teacher_ratio must be in"),
    (lambda: variance_penalty(torch.ones(2), "bogus"), r"^kind must be one of \('fixed', 'log', 'square'\)"),
])
def test_criteria_built_directly_are_checked_too(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("param, value, error, match", [
    ("temperature", INF, ValueError, r"temperature must be > 0 and finite; got inf"),
    ("temperature", NAN, ValueError, r"temperature must be > 0 and finite; got nan"),
    ("lr", NAN, ValueError, r"lr must be a finite number >= 0; got nan"),
    ("lr", -1.0, ValueError, r"lr must be a finite number >= 0; got -1\.0"),
    ("lr", 1e300, ValueError, r"lr must be a finite number >= 0 that torch.float32 "
                              r"parameters can hold \(at most 3.403e\+38\); got 1e\+300"),
    ("optimizer__lr", INF, ValueError, r"optimizer__lr must be a finite number >= 0"),
    ("filter_optimizer__lr", NAN, ValueError, r"filter_optimizer__lr must be a finite"),
    ("filter_optimizer__betas", (-1.0, 0.9), ValueError,
     r"filter_optimizer: Adam refused its parameters \(.*filter_optimizer__betas=\(-1"),
    ("optimizer__param_groups", [("body*", {"lr": INF})], ValueError,
     r"optimizer__param_groups \(lr of 'body\*'\) must be a finite number >= 0"),
    ("pid_weight", NAN, ValueError, r"pid_weight must be a finite number >= 0; got nan"),
    ("ce_weight", "1", TypeError, r"ce_weight must be a finite number >= 0; got str '1'"),
    ("rounds", np.float64(NAN), TypeError, r"rounds must be an int >= 1; got float64"),
    ("on_nonfinite", "ignore", ValueError, r"on_nonfinite must be one of \('raise', "
                                           r"'warn'\); got 'ignore'"),
    ("teacher_cache", "yes", TypeError, r"teacher_cache must be True or False"),
    ("max_epochs", "3", TypeError, r"max_epochs must be an int >= 0; got str '3'"),
    ("filter_optimizer", "adam", TypeError, r"filter_optimizer must be a torch optimizer "
                                            r"class"),
    ("method", "bogus", ValueError, r"method must be one of \[.*\] or a DistillationLoss "
                                    r"instance; got 'bogus'"),
])
@pytest.mark.parametrize("route", ["constructor", "set_params_fitted"])
def test_net_settings_are_checked_at_fit_and_at_set_params(param, value, error, match,
                                                          route, data):
    X, y = data
    if route == "constructor":
        with pytest.raises(error, match=match):
            small_net(**{"method": "rid", param: value}).fit(X, y)
        return
    net = fitted("rid", data)
    before = {k: v for k, v in vars(net).items() if not k.endswith("_")}
    with pytest.raises(error, match=match):
        net.set_params(**{param: value})
    after = {k: v for k, v in vars(net).items() if not k.endswith("_")}
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert net.predict(X[:2]).shape == (2,)


def test_set_params_to_a_method_that_does_not_take_the_method_params_set(data):
    X, y = data
    net = small_net(method="rid", method__rounds=1).fit(X, y)
    with pytest.raises(TypeError, match="method__rounds: KDLoss has no parameter 'rounds'"):
        net.set_params(method="kd")
    assert net.method == "rid" and isinstance(net.method_, RIDLoss)


# ---------------------------------------------------------------------------------------
# class 4: non-finite values
def large_teacher():
    """Hidden features of order 1e3: a FitNets distance of order 1e5."""
    teacher = small_teacher()
    with torch.no_grad():
        teacher[0].weight.mul_(1000.0)
    return teacher


class NaNAtLayer(nn.Module):
    """A teacher whose hidden layer "act" outputs NaN."""

    def __init__(self):
        super().__init__()
        self.lin, self.act, self.out = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.act(self.lin(x) * NAN))


class InfLogits(nn.Module):
    """A teacher with finite hidden features and infinite logits."""

    def __init__(self):
        super().__init__()
        self.lin, self.act, self.out = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.act(self.lin(x))) * INF


class NaNWhenEval(nn.Module):
    """A student that is finite in training and NaN in evaluation."""

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        out = self.head(torch.relu(self.body(x)))
        return out if self.training else out * NAN


class NaNAfter(nn.Module):
    """A student whose logits turn NaN from its fourth forward pass on."""

    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Linear(4, 4), nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.head(torch.relu(self.body(x)))
        return out * NAN if self.calls > 3 else out


@pytest.mark.parametrize("kw, match", [
    (dict(teacher=NaNAtLayer(), teacher_layers=["act"], method="rid"),
     r"^Non-finite loss at epoch 1, training batch 1 \(teacher phase\): loss term "
     r"filter_ce=nan\. The teacher \(NaNAtLayer\) outputs NaN or infinity at "
     r"teacher_layers\[0\] = 'act'\."),
    (dict(teacher=InfLogits(), teacher_layers=["act"], method="fitnet", kd_weight=1.0),
     r"^Non-finite loss at epoch 1, training batch 1: loss term kd=nan\. The teacher "
     r"\(InfLogits\) outputs NaN or infinity in its logits"),
    (dict(module=NaNAfter, teacher_layers=None, student_layers=None, method="kd"),
     r"^Non-finite loss at epoch 1, training batch 3: loss term ce=nan, distill=nan\. "
     r"The student \(NaNAfter\) outputs NaN or infinity in its logits"),
    (dict(module=NaNWhenEval, method="vid", train_split=ValidSplit(4)),
     r"^Non-finite loss at epoch 1, validation batch 1: loss term ce=nan\."),
    (dict(teacher=large_teacher(), method="fitnet", pid_weight=3e38),
     r"^Non-finite loss at epoch 1, training batch 1: the weighted sum of the terms \(the "
     r"loss\) is inf"),
    (dict(method="kd", teacher_layers=None, student_layers=None, temperature=1e-300),
     r"training batch 1: loss term distill=nan\. The inputs, the teacher's and the "
     r"student's outputs and parameters are finite: the term itself overflowed"),
])
def test_non_finite_losses_stop_training_naming_epoch_batch_term_and_cause(kw, match,
                                                                           data):
    X, y = data
    net = small_net(**kw)
    with pytest.raises(FloatingPointError, match=match):
        net.fit(X, y)
    assert len(net.history) == 1  # stopped in the first epoch


def test_on_nonfinite_warn_reports_once_per_epoch_and_trains_on(data):
    X, y = data
    net = small_net(teacher=NaNAtLayer(), teacher_layers=["act"], method="rid",
                    max_epochs=3, on_nonfinite="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert [m.split(",")[0] for m in messages] == [
        "Non-finite loss at epoch 1", "Non-finite loss at epoch 2",
        "Non-finite loss at epoch 3"]
    assert all("teacher_layers[0] = 'act'" in m for m in messages)
    assert len(net.history) == 3


# ---------------------------------------------------------------------------------------
# class 5: filter_optimizer__* and set_params(method=...)
def filter_lr(net):
    groups = net.filter_optimizer_.param_groups
    return [g["lr"] for g in groups], sum(len(g["params"]) for g in groups)


def test_filter_optimizer_params_on_every_route(data):
    X, y = data
    n_filter_params = 8  # RID's teacher filter (Linear-BN-Linear) and head on 8 channels

    net = small_net(method="rid", filter_optimizer__lr=0.5).fit(X, y)
    assert filter_lr(net) == ([0.5], n_filter_params)
    assert net.get_params()["filter_optimizer__lr"] == 0.5

    net = small_net(method="rid").set_params(filter_optimizer__lr=0.4).fit(X, y)
    assert filter_lr(net) == ([0.4], n_filter_params)

    net = small_net(method="rid").initialize()
    net.set_params(filter_optimizer__lr=0.3)  # the placeholder optimizer takes it now
    assert filter_lr(net) == ([0.3], 1)
    net.fit(X, y)  # and the real one later
    assert filter_lr(net) == ([0.3], n_filter_params)

    net.set_params(filter_optimizer__lr=0.2)  # fitted: in place, and kept for refits
    assert filter_lr(net) == ([0.2], n_filter_params)
    net.partial_fit(X, y)
    assert filter_lr(net) == ([0.2], n_filter_params)
    net.fit(X, y)
    assert filter_lr(net) == ([0.2], n_filter_params)

    net.set_params(filter_optimizer=torch.optim.Adam, filter_optimizer__betas=(0.8, 0.9))
    assert isinstance(net.filter_optimizer_, torch.optim.Adam)
    assert net.filter_optimizer_.param_groups[0]["betas"] == (0.8, 0.9)
    net.fit(X, y)
    assert isinstance(net.filter_optimizer_, torch.optim.Adam)

    grid = GridSearchCV(small_net(method="rid"), {"filter_optimizer__lr": [0.1, 0.9]},
                        cv=2, error_score="raise").fit(X, y)
    best = grid.best_params_["filter_optimizer__lr"]
    assert filter_lr(grid.best_estimator_) == ([best], n_filter_params)


def test_lr_reaches_the_filter_optimizer_unless_it_has_its_own(data):
    X, y = data
    net = small_net(method="rid").fit(X, y)
    net.set_params(lr=0.07)
    assert filter_lr(net)[0] == [0.07] and net.optimizer_.param_groups[0]["lr"] == 0.07
    net.set_params(filter_optimizer__lr=0.2, lr=0.03)
    assert filter_lr(net)[0] == [0.2]


def test_set_params_unknown_method_on_fitted_net(data):
    X, y = data
    net = small_net(method="rid").fit(X, y)
    before = net.method_
    with pytest.raises(ValueError, match=r"method must be one of .* got 'ridd'\. Did you "
                                         r"mean 'rid'\?"):
        net.set_params(method="ridd")
    assert net.method == "rid" and net.method_ is before
    net.set_params(method="vid")  # a valid one is applied at once, as skorch does
    assert isinstance(net.method_, VIDLoss)
    net.fit(X, y)
    assert math.isfinite(net.history[-1, "train_loss"])


# ---------------------------------------------------------------------------------------
# class 11: seeded fits in threads
class DropoutStudent(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.body(x))


def test_seeded_fits_in_threads_equal_the_fit_alone_and_keep_the_global_rng(data):
    X, y = data
    teacher = small_teacher()

    def fit():
        return small_net(teacher, module=DropoutStudent, method="rid", random_state=7,
                         max_epochs=3, iterator_train__shuffle=True).fit(X, y)

    torch.manual_seed(123)
    alone = fit()
    expected = alone.predict_proba(X)
    before = torch.random.get_rng_state()
    nets = [None] * 3

    def run(i):
        nets[i] = fit()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # read before predict_proba, whose DataLoader draws from the global generator
    assert torch.equal(torch.random.get_rng_state(), before)
    for net in nets:
        assert same_state(state_copy(net.module_), state_copy(alone.module_))
        np.testing.assert_array_equal(net.predict_proba(X), expected)


def test_seeded_batch_order_does_not_draw_from_the_global_generator(data):
    X, y = data
    batches = []

    class Orders(PIDDistiller):
        def train_step(self, batch, **fit_params):
            batches.append(batch[0][:, 0].clone())
            return super().train_step(batch, **fit_params)

    def order(global_seed, **kw):
        batches.clear()
        torch.manual_seed(global_seed)
        Orders(MLP, small_teacher(), module__n_features=4, module__hidden=4,
               module__n_classes=2, method="none", max_epochs=2, batch_size=16,
               train_split=None, verbose=0, iterator_train__shuffle=True,
               **kw).fit(X, y)
        return torch.cat(batches)

    assert torch.equal(order(1, random_state=3), order(2, random_state=3))
    assert not torch.equal(order(1, random_state=3), order(1, random_state=4))
    # a generator given by the user is used as is
    a = order(1, random_state=3, iterator_train__generator=torch.Generator().manual_seed(0))
    b = order(2, random_state=4, iterator_train__generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------
# the printed table
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_table(text):
    """The tables of a PrintLog output, one per header: {header: [cells of its rows]},
    columns cut at the dash runs of the separator line under the header."""
    lines = [_ANSI.sub("", line) for line in text.splitlines() if line.strip()]
    seps = [i for i, line in enumerate(lines) if set(line) <= {"-", " "}]
    tables = []
    for k, i in enumerate(seps):
        end = seps[k + 1] - 1 if k + 1 < len(seps) else len(lines)
        spans = [m.span() for m in re.finditer(r"-+", lines[i])]
        tables.append({lines[i - 1][a:b].strip(): [row[a:b].strip()
                                                  for row in lines[i + 1:end]]
                       for a, b in spans})
    return tables


def test_printed_table_columns_match_their_headers(data, capsys):
    X, y = data
    X = np.concatenate([X, X + 0.01])
    y = np.concatenate([y, y])
    # rounds=2, ratio 1/2 over 4 epochs of one batch: epochs 1 and 3 are teacher phase
    # (no train_distill), epochs 2 and 4 student phase (no train_filter_ce); the monitor
    # measures epochs 3 and 4 only
    net = small_net(method="rid", rounds=2, teacher_ratio=0.5, max_epochs=4,
                    batch_size=len(y), verbose=1, train_split=ValidSplit(4, stratified=True),
                    callbacks=[PIDMonitor(every=3, n_clusters=2)]).fit(X, y)
    tables = parse_table(capsys.readouterr().out)
    assert len(tables) == 1  # every column declared before epoch 1: one header
    (table,) = tables
    for key in ("train_distill", "train_filter_ce", "valid_redundancy", "teacher_phase"):
        assert key in table, key
    assert len(table["epoch"]) == 4
    for i, row in enumerate(net.history):
        assert table["epoch"][i] == str(row["epoch"])
        for key, cells in table.items():
            if key in ("epoch", "dur"):
                continue
            if key in row:
                assert cells[i] == f"{row[key]:.4f}", (key, i)
            else:
                assert cells[i] == "", (key, i)
    assert table["train_distill"][0] == "" and table["train_filter_ce"][1] == ""
    assert table["valid_redundancy"][:2] == ["", ""] and table["valid_redundancy"][2]


def test_printed_table_reprints_its_header_for_an_undeclared_key(data, capsys):
    from skorch.callbacks import Callback

    class Late(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                net.history.record("late_key", 1.5)

    X, y = data
    small_net(method="kd", max_epochs=3, verbose=1, callbacks=[Late()]).fit(X, y)
    tables = parse_table(capsys.readouterr().out)
    assert len(tables) == 2
    assert "late_key" not in tables[0] and tables[1]["late_key"] == ["1.5000", ""]


# ---------------------------------------------------------------------------------------
# labels and X dtypes
def test_labels_of_every_kind(data):
    X, y = data
    for labels in (y.astype(bool), np.array(["no", "yes"])[y], y + 10):
        net = small_net(method="kd").fit(X, labels)
        assert set(net.predict(X)) <= set(labels.tolist())
    # the package's one label encoder: the same errors as the PID estimators give
    with pytest.raises(TypeError, match=r"y mixes labels of different types: number "
                                        r"\(e\.g\. 1\) and str"):
        small_net(method="kd").fit(X, np.array([1, "a"] * 32, dtype=object))
    with pytest.raises(ValueError, match="y must not contain NaN, None or other missing"):
        small_net(method="kd").fit(X, np.where(y, 1.0, np.nan))


# ---------------------------------------------------------------------------------------
# PIDMonitor settings
@pytest.mark.parametrize("kw, error, match", [
    (dict(every=0), ValueError, r"every must be an int >= 1; got 0"),
    (dict(every=1.5), TypeError, r"every must be an int >= 1; got float 1\.5"),
    (dict(n_clusters=0), ValueError, r"n_clusters must be an int >= 1; got 0"),
    (dict(max_samples="all"), TypeError, r"max_samples must be an int >= 1"),
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
