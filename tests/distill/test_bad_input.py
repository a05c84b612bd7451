"""Bad input fails clearly, before any training step."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from skorch.callbacks import Callback

from skpid import PIDDistiller
from skpid.distill.models import MLP, SmallCNN


class _NoStep(Callback):
    """Fails the test if a training batch starts."""

    def on_batch_begin(self, net, batch=None, training=False, **kw):
        raise AssertionError("training started before the input was checked")


def make(teacher, **kw):
    params = dict(module__hidden=8, max_epochs=1, batch_size=32, verbose=0,
                  train_split=None, callbacks=[_NoStep()], teacher_layers=["body"],
                  student_layers=["body"])
    params.update(kw)
    return PIDDistiller(MLP, teacher, **params)


def test_layer_not_found_lists_names_and_suggests(digits, teacher_mlp):
    X, y = digits
    with pytest.raises(ValueError, match=r"teacher_layers: no layer 'bdy'.*Did you mean "
                                         r"'body'\?.*Available layers: body, body.0"):
        make(teacher_mlp, teacher_layers=["bdy"]).fit(X, y)
    with pytest.raises(ValueError, match=r"student_layers: no layer 'head.1'"):
        make(teacher_mlp, student_layers=["head.1"]).fit(X, y)


def test_unpairable_shapes(digit_images):
    X, y = digit_images
    teacher = SmallCNN(width=4)
    net = PIDDistiller(SmallCNN, teacher, method="vid", teacher_layers=["features"],
                       student_layers=["pool"], max_epochs=1, verbose=0, train_split=None,
                       callbacks=[_NoStep()])
    with pytest.raises(ValueError, match=r"cannot pair teacher layer 'features' \(shape "
                                         r"\(4, 8, 8\).*student layer 'pool'"):
        net.fit(X, y)


def test_layer_lists_of_different_length(digits, teacher_mlp):
    X, y = digits
    with pytest.raises(ValueError, match="same length"):
        make(teacher_mlp, teacher_layers=["body", None]).fit(X, y)


@pytest.mark.parametrize("teacher", ["forest", 3, LogisticRegression()])
def test_teacher_neither_module_nor_fitted_classifier(teacher, digits):
    X, y = digits
    err = (ValueError, "not fitted") if isinstance(teacher, LogisticRegression) else \
        (TypeError, "teacher must be a torch nn.Module, a fitted skorch net or a fitted")
    with pytest.raises(err[0], match=err[1]):
        make(teacher, teacher_layers=None, student_layers=None).fit(X, y)


def test_teacher_with_other_classes(digits):
    X, y = digits
    torch_teacher = MLP(64, hidden=8, n_classes=3)
    with pytest.raises(ValueError, match="teacher: it outputs 3 logits but y has 10"):
        make(torch_teacher, method="kd").fit(X, y)
    sk_teacher = LogisticRegression(max_iter=50).fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match=r"teacher: it predicts classes \[0, 1, 2, 3, 4\]"):
        make(sk_teacher, method="kd", teacher_layers=None, student_layers=None).fit(X, y)


def test_sklearn_teacher_has_no_layers(digits):
    X, y = digits
    sk_teacher = LogisticRegression(max_iter=50).fit(X, y)
    with pytest.raises(ValueError, match="teacher_layers: a scikit-learn teacher"):
        make(sk_teacher).fit(X, y)


def test_unknown_method_did_you_mean(digits, teacher_mlp):
    X, y = digits
    with pytest.raises(ValueError, match=r"method must be one of .*got 'ridd'\. Did you "
                                         r"mean 'rid'\?"):
        make(teacher_mlp, method="ridd").fit(X, y)
    with pytest.raises(TypeError, match="method must be a name, a DistillationLoss instance"):
        make(teacher_mlp, method=torch.nn.MSELoss()).fit(X, y)


@pytest.mark.parametrize("param, value, match", [
    ("pid_weight", -1.0, "pid_weight must be a finite number >= 0"),
    ("ce_weight", -0.5, "ce_weight must be a finite number >= 0"),
    ("kd_weight", float("nan"), "kd_weight must be a finite number >= 0"),
    ("rounds", 0, "rounds must be an int >= 1"),
    ("rounds", -3, "rounds must be an int >= 1; got -3"),
    ("teacher_ratio", 0.0, r"teacher_ratio must be in the open interval \(0, 1\)"),
    ("teacher_ratio", 1.0, r"teacher_ratio must be in the open interval \(0, 1\)"),
    ("variance_penalty", "abs", r"variance_penalty must be one of \('fixed', 'log', "
                                r"'square'\)"),
    ("temperature", 0, "temperature must be > 0"),
    ("random_state", -1, r"random_state must be None, an int in \[0, 2\*\*63\)"),
    ("random_state", "7", r"random_state must be None, an int"),
])
def test_bad_numbers(param, value, match, digits, teacher_mlp):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        make(teacher_mlp, **{param: value}).fit(X, y)


def test_teacher_params_on_built_teacher(digits, teacher_mlp):
    X, y = digits
    with pytest.raises(ValueError, match="teacher__hidden: the teacher is passed already "
                                         "built"):
        make(teacher_mlp, teacher__hidden=4).fit(X, y)
    with pytest.raises(ValueError, match="teacher__hidden: the teacher is passed already"):
        make(teacher_mlp).set_params(teacher__hidden=4)


def test_nan_in_X(digits, teacher_mlp):
    X, y = digits
    X = X.copy()
    X[3, 5] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        make(teacher_mlp).fit(X, y)


def test_missing_teacher(digits):
    X, y = digits
    with pytest.raises(TypeError, match="teacher is required"):
        PIDDistiller(MLP, verbose=0).fit(X, y)
