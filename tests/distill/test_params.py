"""The distiller's parameters (``_params``): one check per setting on every route, and
filter_optimizer__* routed like optimizer__*."""

import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from skpid.distill import KDLoss, RIDLoss, TEDLoss, VIDLoss, rid_phase, variance_penalty

from ._small import INF, NAN, data, fitted, small_net  # noqa: F401 (data: a fixture)

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
    ("method", "bogus", ValueError, r"method must be one of \[.*\], a DistillationLoss "
                                    r"instance or subclass; got 'bogus'"),
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
# criteria given as classes, and their terms
def test_a_criterion_class_is_built_with_the_method_params(data):
    X, y = data
    net = small_net(method=RIDLoss, method__rounds=3, method__gate_holdout=0.2).fit(X, y)
    assert isinstance(net.method_, RIDLoss)
    assert (net.method_.rounds, net.method_.gate_holdout) == (3, 0.2)
    with pytest.raises(TypeError, match=r"method must be a name, a DistillationLoss "
                                        r"instance or a DistillationLoss subclass"):
        small_net(method=torch.nn.MSELoss).fit(X, y)


def test_a_criterion_without_a_distill_term_is_refused(data):
    from skpid.distill import DistillationLoss

    class Named(DistillationLoss):
        uses_features = False

        def forward(self, s_logits, t_logits, s_feats, t_feats, y, phase="student", **kw):
            return {"my_term": (s_logits - t_logits).pow(2).mean()}

    X, y = data
    with pytest.raises(TypeError, match=r"method: Named\.forward must return a dict of "
                                        r"named loss terms with \"distill\".*got \['my_term'\]"):
        small_net(method=Named(), teacher_check="ignore").fit(X, y)


def test_filter_optimizer_none_is_the_students_optimizer_with_its_settings(data):
    X, y = data
    net = small_net(method="rid", optimizer=torch.optim.SGD, optimizer__momentum=0.9,
                    optimizer__weight_decay=1e-3, filter_optimizer__weight_decay=1e-2,
                    lr=0.05).fit(X, y)
    group = net.filter_optimizer_.param_groups[0]
    assert isinstance(net.filter_optimizer_, torch.optim.SGD)
    assert (group["momentum"], group["weight_decay"], group["lr"]) == (0.9, 1e-2, 0.05)
    assert net.optimizer_.param_groups[0]["weight_decay"] == 1e-3


def test_batch_size_one_with_batchnorm_parts_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match=r"batch_size=1: the distillation parts of "
                                         r"method='fitnet' normalise over the batch"):
        small_net(method="fitnet", batch_size=1, teacher_check="ignore").fit(X, y)


def test_a_variance_beyond_float32_is_refused(data):
    X, y = data
    with pytest.raises(ValueError, match=r"method__variance_init must be in \(0, 1e30\]; "
                                         r"got 1e\+300"):
        small_net(method="rid", method__variance_init=1e300).fit(X, y)
