"""What the distiller does to data (``_data``): labels of every kind, input casting."""


import numpy as np
import pytest

from ._small import data, small_net  # noqa: F401 (data: a fixture)


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
