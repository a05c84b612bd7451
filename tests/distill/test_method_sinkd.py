"""SinKD (Cui et al. 2024): sinkhorn_log_plan / sinkd_loss / SinKDLoss."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import softmax

from skpid.distill._sinkd import SinKDLoss, sinkd_loss, sinkhorn_log_plan

from .conftest import assert_criterion_refuses


def reference_sinkd(s, t, T=2.0, eps=0.1, n_iters=20):
    """Plain-domain Sinkhorn in float64, as described: kernel exp(-C/ε), then rows and
    columns normalised to sums of 1, n_iters times; loss <P, C>."""
    ps, pt = softmax(np.asarray(s, float) / T, axis=1), softmax(np.asarray(t, float) / T, axis=1)
    cost = np.abs(ps[:, None, :] - pt[None, :, :]).sum(axis=2)
    plan = np.exp(-cost / eps)
    for _ in range(n_iters):
        plan = plan / plan.sum(axis=1, keepdims=True)
        plan = plan / plan.sum(axis=0, keepdims=True)
    return float((plan * cost).sum())


def test_hand_computed_two_row_case():
    # p^s = p^t = [[3/4, 1/4], [1/4, 3/4]]: C = [[0, 1], [1, 0]]; the kernel [[1, k], [k, 1]]
    # (k = e^-10) is already balanced after one row normalisation: P = K / (1 + k)
    probs = torch.tensor([[0.75, 0.25], [0.25, 0.75]])
    z = 2.0 * torch.log(probs)  # softmax(z / T) = probs at T = 2
    k = math.exp(-1.0 / 0.1)
    assert float(sinkd_loss(z, z)) == pytest.approx(2 * k / (1 + k), rel=1e-4)
    assert float(sinkd_loss(z, z, reduction="mean")) == pytest.approx(k / (1 + k), rel=1e-4)
    # swapped teacher rows: the plan follows the rows, the cost does not change
    assert float(sinkd_loss(z, z.flip(0))) == pytest.approx(2 * k / (1 + k), rel=1e-4)


@pytest.mark.parametrize("T, eps, n_iters", [(2.0, 0.1, 20), (1.0, 0.5, 5), (4.0, 0.05, 50)])
def test_matches_plain_domain_sinkhorn_on_random_batches(T, eps, n_iters):
    g = torch.Generator().manual_seed(0)
    s, t = 2 * torch.randn(12, 5, generator=g), 2 * torch.randn(12, 5, generator=g)
    ref = reference_sinkd(s.numpy(), t.numpy(), T, eps, n_iters)
    got = sinkd_loss(s, t, temperature=T, epsilon=eps, n_iters=n_iters)
    assert float(got) == pytest.approx(ref, rel=1e-4)
    mean = sinkd_loss(s, t, temperature=T, epsilon=eps, n_iters=n_iters, reduction="mean")
    assert float(mean) == pytest.approx(ref / 12, rel=1e-4)
    got = sinkd_loss(s.double(), t.double(), temperature=T, epsilon=eps, n_iters=n_iters)
    assert got.dtype == torch.float64 and float(got) == pytest.approx(ref, rel=1e-9)


def test_plan_is_doubly_stochastic():
    g = torch.Generator().manual_seed(1)
    plan = sinkhorn_log_plan(torch.rand(6, 6, generator=g), epsilon=0.1, n_iters=50).exp()
    assert torch.allclose(plan.sum(0), torch.ones(6), atol=1e-5)
    assert torch.allclose(plan.sum(1), torch.ones(6), atol=1e-4)


def test_small_epsilon_is_stable_and_reaches_the_assignment():
    # with ε → 0 the plan concentrates on the cheapest matching of the rows (a
    # permutation, the vertices of the doubly stochastic matrices); in float32 the
    # plain-domain kernel exp(-C/ε) underflows to 0 for costs above ~0.1 here
    g = torch.Generator().manual_seed(2)
    s, t = 3 * torch.randn(4, 3, generator=g), 3 * torch.randn(4, 3, generator=g)
    ps, pt = torch.softmax(s / 2, 1).double(), torch.softmax(t / 2, 1).double()
    cost = (ps[:, None] - pt[None]).abs().sum(2)
    best = min(sum(float(cost[i, j]) for i, j in enumerate(perm))
               for perm in itertools.permutations(range(4)))
    got = sinkd_loss(s, t, epsilon=1e-3, n_iters=500)
    assert math.isfinite(float(got))
    assert float(got) == pytest.approx(best, rel=1e-3)


def test_invariances():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    perm = torch.randperm(8, generator=g)
    base = float(sinkd_loss(s, t))
    assert float(sinkd_loss(s, t[perm])) == pytest.approx(base, rel=1e-5)  # a batch is a set
    assert float(sinkd_loss(s[perm], t[perm])) == pytest.approx(base, rel=1e-5)
    assert float(sinkd_loss(s, t + 3.0)) == pytest.approx(base, rel=1e-5)  # softmax shift
    # identical well-separated batches cost almost nothing, and so do the same rows in
    # another order (rolling the classes of one-hot-like rows permutes the rows);
    # a flat teacher costs much more
    sep = 8.0 * torch.eye(4)
    assert float(sinkd_loss(sep, sep)) < 1e-6
    assert float(sinkd_loss(sep, sep.roll(1, 1))) < 1e-6
    assert float(sinkd_loss(sep, torch.zeros(4, 4))) > 1.0


def test_extreme_logits_and_gradients():
    s = torch.tensor([[1e4, -1e4, 0.0], [0.0, 1e4, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[1e4, 0.0, 0.0], [0.0, 0.0, 1e4], [0.0, 1e4, 1e4]])
    loss = sinkd_loss(s, t)
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(
        reference_sinkd(s.detach().numpy(), t.numpy()), rel=1e-4)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    z = torch.randn(5, 4, requires_grad=True)
    sinkd_loss(z, torch.randn(5, 4), epsilon=1e-4, n_iters=100).backward()
    assert torch.isfinite(z.grad).all()


def test_criterion_minimum_batch_size():
    crit = SinKDLoss()
    assert SinKDLoss.min_batch_size == 2
    z = torch.randn(3, 4)
    terms = crit(z, z + 1, [], [], None, epoch=2, index=None)
    assert set(terms) == set(crit.student_terms) == {"distill"}
    assert float(terms["distill"]) == pytest.approx(float(sinkd_loss(z, z, reduction="mean")),
                                                    rel=1e-5)
    with pytest.raises(ValueError, match="got a batch of 1 row"):
        crit(z[:1], z[:1], [], [], None)
    assert float(SinKDLoss(reduction="sum")(z, z, [], [], None)["distill"]) \
        == pytest.approx(float(sinkd_loss(z, z)), rel=1e-6)


@pytest.mark.parametrize("params, error, name", [
    ({"temperature": 0.0}, ValueError, "temperature"), ({"epsilon": -0.1}, ValueError, "epsilon"),
    ({"n_iters": 0}, ValueError, "n_iters"), ({"n_iters": 2.0}, TypeError, "n_iters"),
    ({"reduction": "max"}, ValueError, "reduction"), ({"reduction": 1}, TypeError, "reduction"),
    ({"beta": 1.0}, TypeError, "beta")])
def test_parameter_checks(params, error, name):
    assert_criterion_refuses(SinKDLoss, params, error, name)
    if "beta" not in params:
        with pytest.raises(error, match=name):
            sinkd_loss(torch.zeros(2, 3), torch.zeros(2, 3), **params)
