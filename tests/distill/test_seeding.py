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


def test_initialize_is_seeded(digits, teacher_mlp):
    torch.manual_seed(1)
    a = state_copy(mlp_net(teacher_mlp, random_state=5).initialize().module_)
    torch.manual_seed(2)
    b = state_copy(mlp_net(teacher_mlp, random_state=5).initialize().module_)
    assert same_state(a, b)


def test_a_seed_beyond_32_bits(digits, teacher_mlp):
    X, y = digits
    net = mlp_net(teacher_mlp, random_state=2 ** 40, pid_gate=True).fit(X, y)
    assert net.teacher_information_["body"] > 1.0
    again = mlp_net(teacher_mlp, random_state=2 ** 40, pid_gate=True).fit(X, y)
    np.testing.assert_array_equal(net.predict_proba(X), again.predict_proba(X))


def test_measurements_do_not_draw_from_the_global_generator(digits, teacher_mlp):
    """With random_state=None the teacher check, the gate and the representation
    passes leave torch's global generator as they found it: they do not change the
    run."""
    X, y = digits
    net = mlp_net(teacher_mlp, method="fitnet", max_epochs=1).fit(X, y)
    state = torch.get_rng_state()
    net.representations(X)
    assert torch.equal(torch.get_rng_state(), state)
    runs = []
    for check in ("warn", "ignore"):
        torch.manual_seed(0)
        runs.append(mlp_net(teacher_mlp, method="fitnet", teacher_check=check,
                            max_epochs=2).fit(X, y).predict_proba(X))
    np.testing.assert_array_equal(*runs)


def test_measurements_depend_on_the_representations_not_on_random_state(digits, teacher_mlp):
    X, y = digits
    info = [mlp_net(teacher_mlp, method="fitnet", random_state=seed, pid_gate=True,
                    max_epochs=1).fit(X, y) for seed in (0, 1)]
    assert info[0].teacher_information_ == info[1].teacher_information_
