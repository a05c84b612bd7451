"""BD-KD (Amara et al. 2022), offline: bdkd_terms / bdkd_loss / BDKDLoss."""

import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from skpid.distill._bdkd import BDKDLoss, bdkd_loss, bdkd_terms

from .conftest import assert_criterion_refuses


def reference_bdkd(s, t, T, lam, mu=1.0):
    """Per row: entropies decide which KL gets λ, the other μ (float64, numpy)."""
    total = 0.0
    for zs, zt in zip(np.asarray(s, float) / T, np.asarray(t, float) / T):
        ls, lt = log_softmax(zs), log_softmax(zt)
        fwd = np.sum(np.exp(lt) * (lt - ls))
        rev = np.sum(np.exp(ls) * (ls - lt))
        h_s, h_t = -np.sum(np.exp(ls) * ls), -np.sum(np.exp(lt) * lt)
        total += mu * fwd + lam * rev if h_s > h_t else lam * fwd + mu * rev
    return T * T * total / len(s)


def test_hand_computed_case():
    # two classes, T = 1: student (1/2, 1/2) is less confident than teacher (3/4, 1/4)
    s = torch.zeros(1, 2)
    t = torch.log(torch.tensor([[0.75, 0.25]]))
    fwd = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    rev = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    got_fwd, got_rev, less = bdkd_terms(s, t, temperature=1.0)
    assert bool(less[0])
    assert float(got_fwd[0]) == pytest.approx(fwd, rel=1e-5)
    assert float(got_rev[0]) == pytest.approx(rev, rel=1e-5)
    # the less confident student: reverse KL weighted by λ = 3
    assert float(bdkd_loss(s, t, temperature=1.0, balance_weight=3.0)) \
        == pytest.approx(fwd + 3 * rev, rel=1e-5)
    # roles swapped: the student is the more confident one, forward KL weighted
    assert float(bdkd_loss(t, s, temperature=1.0, balance_weight=3.0)) \
        == pytest.approx(3 * rev + fwd, rel=1e-5)  # KL(p^s' ‖ p^t') is the old rev


@pytest.mark.parametrize("T, lam, mu", [(1.0, 2.0, 1.0), (4.0, 2.0, 1.0), (2.0, 0.0, 1.0),
                                        (3.0, 5.0, 0.0), (2.0, 1.5, 0.5)])
def test_matches_the_definition_on_random_batches(T, lam, mu):
    g = torch.Generator().manual_seed(0)
    s, t = 3 * torch.randn(20, 6, generator=g), 3 * torch.randn(20, 6, generator=g)
    ref = reference_bdkd(s.numpy(), t.numpy(), T, lam, mu)
    got = bdkd_loss(s, t, temperature=T, balance_weight=lam, other_weight=mu)
    assert float(got) == pytest.approx(ref, rel=1e-4)
    got = bdkd_loss(s.double(), t.double(), temperature=T, balance_weight=lam, other_weight=mu)
    assert got.dtype == torch.float64 and float(got) == pytest.approx(ref, rel=1e-10)


def test_invariances():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    assert float(bdkd_loss(s, s)) == 0.0
    assert float(bdkd_loss(s, s - 2.0)) == pytest.approx(0.0, abs=1e-5)
    # λ = μ is the symmetric (Jeffreys) KL; any λ is symmetric in (student, teacher)
    # on rows without entropy ties: the roles and the two KLs swap together
    for lam in (1.0, 2.0, 7.0):
        assert float(bdkd_loss(s, t, balance_weight=lam)) \
            == pytest.approx(float(bdkd_loss(t, s, balance_weight=lam)), rel=1e-5)
    # T² scaling
    for T in (2.0, 4.0):
        assert float(bdkd_loss(s * T, t * T, temperature=T)) \
            == pytest.approx(T * T * float(bdkd_loss(s, t, temperature=1.0)), rel=1e-5)


def test_extreme_logits_are_finite_and_exact():
    s = torch.tensor([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0], [0.0, 1e4, 0.0]], requires_grad=True)
    t = torch.tensor([[0.0, 1e4, 0.0], [1e4, 0.0, 0.0], [0.0, 1e4, 0.0]])
    loss = bdkd_loss(s, t, temperature=4.0, balance_weight=2.0)
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(
        reference_bdkd(s.detach().numpy(), t.numpy(), 4.0, 2.0), rel=1e-5)
    loss.backward()
    assert torch.isfinite(s.grad).all()


def test_criterion_terms():
    s = torch.zeros(4, 3)
    t = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0], [-9.0, 0.0, 0.0]])
    crit = BDKDLoss(temperature=2.0, balance_weight=3.0, other_weight=0.5)
    terms = crit(s, t, [], [], None, epoch=1, index=None)
    assert set(terms) == set(crit.student_terms)
    fwd, rev, less = bdkd_terms(s, t, temperature=2.0)
    assert less.tolist() == [True, True, False, True]  # row 2: a tie, not "less"
    assert float(terms["reverse_share"]) == 0.75
    assert float(terms["forward_kl"]) == pytest.approx(4 * float(fwd.mean()), rel=1e-6)
    assert float(terms["reverse_kl"]) == pytest.approx(4 * float(rev.mean()), rel=1e-6)
    assert float(terms["distill"]) == pytest.approx(
        float(bdkd_loss(s, t, temperature=2.0, balance_weight=3.0, other_weight=0.5)), rel=1e-6)
    # row by row: (μ, λ) = (0.5, 3) on the rows where the student is less confident
    a = torch.where(less, 0.5, 3.0)
    r = torch.where(less, 3.0, 0.5)
    assert float(terms["distill"]) == pytest.approx(4 * float((a * fwd + r * rev).mean()),
                                                    rel=1e-6)


@pytest.mark.parametrize("params, error, name", [
    ({"temperature": 0}, ValueError, "temperature"),
    ({"balance_weight": -1.0}, ValueError, "balance_weight"),
    ({"balance_weight": "2"}, TypeError, "balance_weight"),
    ({"other_weight": float("nan")}, ValueError, "other_weight"),
    ({"alpha": 1.0}, TypeError, "alpha")])
def test_parameter_checks(params, error, name):
    assert_criterion_refuses(BDKDLoss, params, error, name)
    if "alpha" not in params:
        with pytest.raises(error, match=name):
            bdkd_loss(torch.zeros(2, 3), torch.zeros(2, 3), **params)
