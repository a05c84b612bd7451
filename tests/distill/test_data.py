"""What the distiller does to data (``_data``): labels of every kind and scikit-learn's
partial_fit contract, input casting (dicts, bfloat16, DataFrames), devices, pooling."""

import numpy as np
import pytest
import torch
from torch import nn

from skpid import PIDDistiller
from skpid.distill._data import pool_features
from skpid.distill.models import MLP

from ._small import data, small_net, small_teacher  # noqa: F401 (data: a fixture)


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
# partial_fit and classes: scikit-learn's contract
def test_partial_fit_takes_classes_on_the_first_call_and_keeps_them(data):
    X, y = data
    labels = np.array(["no", "yes"])[y]
    net = small_net(method="kd")
    first = labels == "no"
    net.partial_fit(X[first], labels[first], classes=["no", "yes"])  # one class only
    assert net.classes_.tolist() == ["no", "yes"]
    net.partial_fit(X[~first], labels[~first])  # the other class: no re-inference
    assert net.classes_.tolist() == ["no", "yes"]
    assert set(net.predict(X)) <= {"no", "yes"}
    with pytest.raises(ValueError, match=r"y holds labels not seen in fit: \['maybe'\]"):
        net.partial_fit(X[:4], np.array(["no", "maybe", "yes", "no"]))
    with pytest.raises(ValueError, match=r"classes: .* differ from the classes of the first"):
        net.partial_fit(X, labels, classes=["no", "yes", "maybe"])
    # fit starts afresh
    net.fit(X, np.where(y, "b", "a"))
    assert net.classes_.tolist() == ["a", "b"]


def test_labels_inside_a_dataset_are_encoded(data):
    X, y = data
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y + 7))
    net = small_net(method="kd").fit(dataset, None)
    assert net.classes_.tolist() == [7, 8]
    assert set(net.predict(X)) <= {7, 8}
    assert 0.4 < net.score(X, y + 7) <= 1.0


def test_dict_input_reaches_student_and_teacher_as_keyword_arguments(data):
    X, y = data

    class TwoInputs(nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, hidden), nn.ReLU())
            self.head = nn.Linear(hidden, 2)

        def forward(self, a, b):
            return self.head(self.body(a - b))

    torch.manual_seed(0)
    net = PIDDistiller(TwoInputs(4), TwoInputs(8).eval(), method="fitnet",
                       teacher_layers=["body"], student_layers=["body"], max_epochs=1,
                       batch_size=16, train_split=None, verbose=0, teacher_check="warn")
    net.fit({"a": X, "b": X / 2}, y)
    assert net.predict_proba({"a": X, "b": X / 2}).shape == (len(y), 2)
    t, s = net.representations({"a": X[:5], "b": X[:5] / 2})
    assert t.shape == (5, 8) and s.shape == (5, 4)


def test_bfloat16_input_and_bfloat16_student(data):
    X, y = data
    net = small_net(method="fitnet").fit(torch.as_tensor(X).bfloat16(), y)
    assert np.isfinite(net.history[-1, "train_loss"])
    torch.manual_seed(0)
    student = MLP(4, hidden=4, n_classes=2).bfloat16()
    net = PIDDistiller(student, small_teacher(), method="fitnet", teacher_layers=["1"],
                       student_layers=["body"], max_epochs=1, batch_size=16,
                       train_split=None, verbose=0).fit(X, y)
    proba = net.predict_proba(X)
    assert proba.dtype == np.float32 and np.allclose(proba.sum(axis=1), 1, atol=1e-2)
    t, s = net.representations(X[:3])
    assert s.dtype == np.float32  # widened: numpy has no bfloat16


def test_a_teacher_in_another_precision_than_the_student(data):
    X, y = data
    net = small_net(small_teacher().double(), method="fitnet").fit(X, y)
    assert np.isfinite(net.history[-1, "train_loss"])


def test_dataframe_with_boolean_and_text_columns(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1] > 0, "c": X[:, 2], "d": X[:, 3]})
    assert small_net(method="kd").fit(frame, y).predict(frame).shape == (len(y),)
    with pytest.raises(TypeError, match=r"X: columns b are not numbers or booleans"):
        small_net(method="kd").fit(frame.assign(b=np.where(X[:, 1] > 0, "x", "y")), y)


def test_a_device_torch_cannot_use(data):
    X, y = data
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match=r"device='cuda', but torch finds no CUDA device"):
        small_net(method="kd", device="cuda").fit(X, y)
    with pytest.raises(ValueError, match=r"device must be a torch device"):
        small_net(method="kd", device="gpu0").fit(X, y)


def test_pool_features_bounds_the_values_per_row():
    maps = torch.randn(3, 32, 32, 32)
    pooled = pool_features(maps, 512)
    assert pooled.shape == (3, 32, 4, 4)
    assert torch.allclose(pooled[:, :, 0, 0], maps[:, :, :8, :8].mean(dim=(2, 3)), atol=1e-6)
    assert pool_features(torch.randn(3, 1024, 4, 4), 512).shape == (3, 1024, 1, 1)
    assert pool_features(torch.randn(3, 16, 300), 512).shape == (3, 16, 32)
    vectors = torch.randn(3, 4096)
    assert pool_features(vectors, 512) is vectors  # only maps are pooled
