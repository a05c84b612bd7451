"""``random_state`` (``_seeding``): seeded fits isolated from threads and from the global
generator."""

import threading

import numpy as np
import torch
from skpid import PIDDistiller
from skpid.distill.models import MLP
from torch import nn

from ._small import data, mlp_net, small_net, small_teacher  # noqa: F401 (data: a fixture)
from .conftest import same_state, state_copy


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


def test_random_state_makes_fits_repeatable_and_leaves_global_rng_alone(digits, teacher_mlp):
    X, y = digits
    fits, probas = [], []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # what ran before must not matter
        before = torch.get_rng_state()
        net = mlp_net(teacher_mlp, random_state=3).fit(X, y)
        assert torch.equal(torch.get_rng_state(), before)
        fits.append(state_copy(net.module_))
        probas.append(net.predict_proba(X))
    assert same_state(*fits)
    np.testing.assert_array_equal(*probas)
    other = mlp_net(teacher_mlp, random_state=4).fit(X, y)
    assert not same_state(fits[0], state_copy(other.module_))


def test_random_state_seeds_partial_fit_once_per_call(digits, teacher_mlp):
    X, y = digits
    a = mlp_net(teacher_mlp, random_state=0).fit(X, y)
    b = mlp_net(teacher_mlp, random_state=0)
    b.partial_fit(X, y)  # initializes and trains in one seeded call, as fit does
    assert same_state(state_copy(a.module_), state_copy(b.module_))
