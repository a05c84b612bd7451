"""The frozen teacher (``_teacher``): its output cache."""

import numpy as np
import torch
from torch import nn

from skpid.distill import FrozenTeacher


class Counting(nn.Module):
    """A linear teacher that records the batch sizes it is run on."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(6, 4)
        self.seen = []

    def forward(self, x):
        self.seen.append(len(x))
        return self.body(x)


def test_a_partly_cached_batch_runs_the_teacher_on_its_new_rows_only():
    X = torch.as_tensor(np.random.default_rng(0).normal(size=(20, 6)), dtype=torch.float32)
    module = Counting().eval()
    teacher = FrozenTeacher(module, ["body"], cache=True)
    teacher(X[:10])
    logits, (body,) = teacher(X[5:15])       # rows 5-9 cached, 10-14 new
    assert module.seen == [10, 5] and teacher.cached_rows == 15
    with torch.no_grad():
        expected = module.body(X[5:15])
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(body, expected)
    teacher(X[12:18])                          # 15-17 new
    assert module.seen[-1] == 3
    teacher(X[:18])                            # all cached: the teacher is not run
    assert len(module.seen) == 3


class TwoInputs(nn.Module):
    """A teacher of skorch's dict input form (``module(**X)``)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(5, 3)
        self.seen = []

    def forward(self, a, b):
        self.seen.append(len(a))
        return self.body(torch.cat([a, b], dim=1))


def test_the_cache_takes_the_new_rows_of_a_dict_batch():
    rng = np.random.default_rng(1)
    X = {"a": torch.as_tensor(rng.normal(size=(8, 2)), dtype=torch.float32),
         "b": torch.as_tensor(rng.normal(size=(8, 3)), dtype=torch.float32)}
    module = TwoInputs().eval()
    teacher = FrozenTeacher(module, [], cache=True)
    teacher({k: v[:4] for k, v in X.items()})
    logits, _ = teacher(X)
    assert module.seen == [4, 4]
    with torch.no_grad():
        torch.testing.assert_close(logits, module.body(torch.cat([X["a"], X["b"]], 1)))


def test_a_full_cache_runs_the_teacher_once_a_batch(monkeypatch):
    """Beyond the cache's size new rows are not kept, and each batch still runs the
    teacher once (random augmentation makes every row new)."""
    import skpid.distill._teacher as teacher_module
    monkeypatch.setattr(teacher_module, "CACHE_BYTES", 10 * 4 * 8)  # 10 rows of 4 + 4
    X = torch.as_tensor(np.random.default_rng(2).normal(size=(30, 6)), dtype=torch.float32)
    module = Counting().eval()
    teacher = FrozenTeacher(module, ["body"], cache=True)
    for start in (0, 10, 20):
        logits, _ = teacher(X[start:start + 10])
    assert module.seen == [10, 10, 10] and teacher.cached_rows == 10
    logits, _ = teacher(X[5:15])  # 5 cached rows, 5 new ones not kept
    assert module.seen[-1] == 5
    with torch.no_grad():
        torch.testing.assert_close(logits, module.body(X[5:15]))
