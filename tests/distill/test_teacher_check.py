"""teacher_check: a teacher with no task information is reported before training."""

import warnings

import numpy as np
import pytest
import torch
from skorch import NeuralNetClassifier

import skpid.exceptions
from skpid import PIDDistiller
from skpid.distill._teacher_check import mutual_information_bits, teacher_information
from skpid.distill.models import MLP
from skpid.exceptions import NuisanceTeacherWarning


@pytest.fixture(scope="module")
def trained_teacher(noisy_digits):
    X, y = noisy_digits
    torch.manual_seed(0)
    net = NeuralNetClassifier(MLP, module__n_features=128, module__hidden=32,
                              criterion=torch.nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=1e-2, max_epochs=15,
                              train_split=None, verbose=0).fit(X, y)
    return net.module_.eval()


def distiller(teacher, layer, **kw):
    return PIDDistiller(MLP, teacher, method="vid", module__n_features=128,
                        module__hidden=8, teacher_layers=[layer], student_layers=["body"],
                        max_epochs=1, train_split=None, verbose=0, random_state=0, **kw)


def test_nuisance_teacher_is_reported_with_layer_estimate_and_p_value(noisy_digits, noise_only):
    X, y = noisy_digits
    with pytest.warns(NuisanceTeacherWarning,
                      match=r"teacher layer 'net\.body' holds no measurable task "
                            r"information: I\(Y;T\) = 0\.\d{3} bits .*permutation "
                            r"p-value 0\.\d{3} > 0\.01 on 300 training rows"):
        net = distiller(noise_only, "net.body").fit(X, y)
    assert set(net.teacher_information_) == {"net.body"}
    assert 0 <= net.teacher_information_["net.body"] < 0.1


def test_trained_teacher_passes_silently(noisy_digits, trained_teacher):
    X, y = noisy_digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceTeacherWarning)
        net = distiller(trained_teacher, "body").fit(X, y)
    assert net.teacher_information_["body"] > 1.5  # of log2(10) = 3.3 bits


def test_raise_and_ignore(noisy_digits, noise_only):
    X, y = noisy_digits
    with pytest.raises(ValueError, match="teacher layer 'net.body' holds no measurable"):
        distiller(noise_only, "net.body", teacher_check="raise").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceTeacherWarning)
        net = distiller(noise_only, "net.body", teacher_check="ignore").fit(X, y)
    assert net.teacher_information_ == {}
    with pytest.raises(ValueError, match=r"teacher_check must be one of \('warn', "
                                         r"'raise', 'ignore'\); got 'loud'"):
        distiller(noise_only, "net.body", teacher_check="loud").fit(X, y)


def test_logits_are_checked_without_layers_and_once_per_fit(noisy_digits, noise_only):
    X, y = noisy_digits
    net = PIDDistiller(MLP, noise_only, method="kd", module__n_features=128,
                       module__hidden=8, max_epochs=1, train_split=None, verbose=0,
                       random_state=0)
    with pytest.warns(NuisanceTeacherWarning, match="teacher layer 'logits'"):
        net.fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceTeacherWarning)
        net.partial_fit(X, y)  # continues the fit: not measured again


def test_estimate_and_p_value():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    assert mutual_information_bits(y, y, 4, 4) == pytest.approx(
        -sum(p * np.log2(p) for p in np.bincount(y) / 400))
    informative = teacher_information(np.eye(4)[y] + 0.2 * rng.normal(size=(400, 4)), y)
    assert informative.p_value == pytest.approx(1 / 200)
    assert informative.bits > 1.5 and informative.bits < informative.plugin_bits
    # under the null the p-value is uniform: over 40 independent nuisance
    # representations about 1 % fall at or below 0.01
    p = [teacher_information(rng.normal(size=(200, 6)), rng.integers(0, 3, 200),
                             n_permutations=99, random_state=i).p_value for i in range(40)]
    assert 0.2 < np.mean(p) < 0.8
    assert sum(v <= 0.01 for v in p) <= 2


def test_warning_is_exported():
    assert issubclass(skpid.exceptions.NuisanceTeacherWarning, UserWarning)


def test_check_is_a_default_callback_that_can_be_removed(noisy_digits, noise_only):
    from skpid.distill import TeacherCheck
    X, y = noisy_digits
    net = distiller(noise_only, "net.body")
    assert isinstance(dict(net.initialize().callbacks_)["teacher_check"], TeacherCheck)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceTeacherWarning)
        removed = distiller(noise_only, "net.body", callbacks__teacher_check=None).fit(X, y)
    assert removed.teacher_information_ == {}
    with pytest.raises(ValueError, match="holds no measurable task information"):
        distiller(noise_only, "net.body").set_params(teacher_check="raise").fit(X, y)


class ConstantLogits(torch.nn.Module):
    """Informative hidden layer, constant logits: KD from it distills nothing."""

    def __init__(self, teacher):
        super().__init__()
        self.body = teacher.body

    def forward(self, x):
        return self.body(x).sum(dim=1, keepdim=True) * 0 + torch.zeros(len(x), 10)


def test_the_check_measures_what_the_method_distills(noisy_digits, trained_teacher):
    X, y = noisy_digits
    teacher = ConstantLogits(trained_teacher)
    with pytest.warns(NuisanceTeacherWarning, match="teacher layer 'logits'"):
        kd = distiller(teacher, "body").set_params(method="kd").fit(X, y)
    assert set(kd.teacher_information_) == {"logits"}
    with pytest.warns(NuisanceTeacherWarning, match="teacher layer 'logits'"):
        both = distiller(teacher, "body", kd_weight=1.0).fit(X, y)
    assert set(both.teacher_information_) == {"body", "logits"}
    assert both.teacher_information_["body"] > 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceTeacherWarning)
        none = distiller(teacher, "body").set_params(method="none").fit(X, y)
    assert none.teacher_information_ == {}


def test_wide_feature_maps_are_pooled_before_the_check(noisy_digits):
    """A 32-channel 32×32 map (32,768 values per row) is measured from its 4×4 pooled
    grid: the same verdict as the full map, within bounded time and memory."""
    from skpid.distill._teacher_check import MAX_FEATURES
    X, y = noisy_digits

    class Upsampled(torch.nn.Module):
        def __init__(self, channels):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(1, channels, 3, padding=1)
            self.head = torch.nn.Linear(channels, 10)

        def forward(self, x):
            images = torch.nn.functional.interpolate(x[:, :64].reshape(-1, 1, 8, 8),
                                                     size=32)
            return self.head(self.conv(images).mean(dim=(2, 3)))

    net = PIDDistiller(Upsampled(2), Upsampled(32).eval(), method="fitnet", max_epochs=0,
                       train_split=None, verbose=0, teacher_layers=["conv"],
                       student_layers=["conv"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", NuisanceTeacherWarning)
        net.fit(X, y)  # max_epochs=0: only the check runs
    assert net.teacher_information_["conv"] > 1.0
    t, _ = net.representations(X[:4], side="teacher", max_features=MAX_FEATURES)
    assert t.shape == (4, 32, 4, 4)
