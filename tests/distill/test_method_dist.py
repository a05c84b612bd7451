"""DIST (Huang et al., NeurIPS 2022): pearson_rows / dist_terms / dist_loss / DISTLoss."""

import numpy as np
import pytest
import torch
from scipy.special import softmax

from skpid.distill._dist import DISTLoss, dist_loss, dist_terms, pearson_rows

from .conftest import assert_criterion_refuses


def reference_dist(s, t, beta, gamma, tau):
    """The paper's definitions with numpy's own Pearson correlation (float64)."""
    ps = softmax(np.asarray(s, float) / tau, axis=1)
    pt = softmax(np.asarray(t, float) / tau, axis=1)
    inter = 1 - np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(ps, pt)])
    intra = 1 - np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(ps.T, pt.T)])
    return tau ** 2 * inter, tau ** 2 * intra, beta * tau ** 2 * inter + gamma * tau ** 2 * intra


def test_hand_computed_pearson_and_terms():
    a = torch.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    b = torch.tensor([[1.0, 2.0, 4.0], [1.0, 3.0, 2.0]])
    # row 0: centred (-1, 0, 1) and (-4/3, -1/3, 5/3): ρ = 3 / (√2 · √(42/9)) = 0.98198
    # row 1: centred (1, -1, 0) and (-1, 1, 0): ρ = -1
    got = pearson_rows(a, b)
    assert got.tolist() == pytest.approx([3 / (2 ** 0.5 * (42 / 9) ** 0.5), -1.0], rel=1e-6)
    # a batch of two rows: each class column has 2 values, ρ = ±1 unless constant
    s = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]))
    t = torch.log(torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]))
    inter, intra = dist_terms(s, t, temperature=1.0)
    r0 = np.corrcoef([0.7, 0.2, 0.1], [0.6, 0.3, 0.1])[0, 1]
    r1 = np.corrcoef([0.1, 0.3, 0.6], [0.2, 0.2, 0.6])[0, 1]
    assert float(inter) == pytest.approx(1 - (r0 + r1) / 2, rel=1e-5)
    # columns: class 0 (0.7, 0.1) vs (0.6, 0.2): +1; class 1 (0.2, 0.3) vs (0.3, 0.2): -1;
    # class 2 (0.1, 0.6) vs (0.1, 0.6): +1
    assert float(intra) == pytest.approx(1 - (1 - 1 + 1) / 3, rel=1e-5)


@pytest.mark.parametrize("beta, gamma, tau", [(1.0, 1.0, 1.0), (2.0, 2.0, 4.0), (0.5, 0.0, 2.0)])
def test_matches_the_paper_definitions_on_random_batches(beta, gamma, tau):
    g = torch.Generator().manual_seed(0)
    s, t = 2 * torch.randn(32, 10, generator=g), 2 * torch.randn(32, 10, generator=g)
    inter, intra, loss = reference_dist(s.numpy(), t.numpy(), beta, gamma, tau)
    got_inter, got_intra = dist_terms(s, t, temperature=tau)
    assert float(got_inter) == pytest.approx(inter, rel=1e-4)
    assert float(got_intra) == pytest.approx(intra, rel=1e-4)
    assert float(dist_loss(s, t, beta=beta, gamma=gamma, temperature=tau)) \
        == pytest.approx(loss, rel=1e-4)
    got = dist_loss(s.double(), t.double(), beta=beta, gamma=gamma, temperature=tau)
    # float64: agreement up to the effect of eps = 1e-8 in the denominators
    assert got.dtype == torch.float64 and float(got) == pytest.approx(loss, rel=1e-6)


def test_invariances():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(16, 5, generator=g), torch.randn(16, 5, generator=g)
    assert float(dist_loss(s, s)) == pytest.approx(0.0, abs=1e-5)
    assert float(dist_loss(s, s + 7.0)) == pytest.approx(0.0, abs=1e-5)  # softmax shift
    # Pearson is symmetric, and so is DIST
    assert float(dist_loss(s, t)) == pytest.approx(float(dist_loss(t, s)), rel=1e-6)
    # τ² scaling: logits scaled by τ at temperature τ give τ² times the τ = 1 terms
    for tau in (2.0, 4.0):
        for a, b in zip(dist_terms(s * tau, t * tau, temperature=tau), dist_terms(s, t)):
            assert float(a) == pytest.approx(tau ** 2 * float(b), rel=1e-5)
    # perfectly anti-correlated predictions cost the most: 2 τ² per relation
    two = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    assert float(dist_loss(two, two.flip(1))) == pytest.approx(4.0, rel=1e-5)


def test_zero_variance_is_uncorrelated_not_nan():
    z = torch.tensor([[1.0, 2.0, 0.5]])
    # a batch of one row: every class column is constant, ρ = 0 for all of them
    inter, intra = dist_terms(z, z)
    assert float(inter) == pytest.approx(0.0, abs=1e-6)
    assert float(intra) == pytest.approx(1.0, abs=1e-6)
    # a row with equal logits (uniform probabilities) correlates 0 with anything
    flat = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5]])
    inter, _ = dist_terms(flat, torch.tensor([[3.0, 0.0, 1.0], [1.0, 2.0, 0.5]]))
    assert float(inter) == pytest.approx(0.5, abs=1e-6)
    s = flat.clone().requires_grad_()
    dist_loss(s, flat).backward()
    assert torch.isfinite(s.grad).all()


def test_extreme_logits():
    s = torch.tensor([[1e4, -1e4, 0.0], [0.0, 1e4, 0.0], [0.0, 0.0, 1e4], [5.0, 5.0, 5.0]],
                     requires_grad=True)
    t = torch.tensor([[1e4, 0.0, 0.0], [0.0, 0.0, 1e4], [0.0, 0.0, 1e4], [1.0, 0.0, 0.0]])
    loss = dist_loss(s, t)
    assert torch.isfinite(loss)
    # probabilities are exact one-hot rows (and a uniform row): numpy's Pearson agrees
    ps, pt = softmax(s.detach().double().numpy(), axis=1), softmax(t.double().numpy(), axis=1)
    rows = [np.corrcoef(a, b)[0, 1] if a.std() > 0 else 0.0 for a, b in zip(ps, pt)]
    cols = [np.corrcoef(a, b)[0, 1] for a, b in zip(ps.T, pt.T)]
    assert float(loss.detach()) == pytest.approx(2 - np.mean(rows) - np.mean(cols), rel=1e-4)
    loss.backward()
    assert torch.isfinite(s.grad).all()


def test_criterion_terms():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    crit = DISTLoss(beta=2.0, gamma=0.5, temperature=3.0)
    terms = crit(s, t, [], [], None, epoch=3, index=None)
    assert set(terms) == set(crit.student_terms) == {"distill", "inter", "intra"}
    assert float(terms["distill"]) == pytest.approx(
        float(2.0 * terms["inter"] + 0.5 * terms["intra"]), rel=1e-6)
    assert float(terms["distill"]) == pytest.approx(
        float(dist_loss(s, t, beta=2.0, gamma=0.5, temperature=3.0)), rel=1e-6)


@pytest.mark.parametrize("params, error, name", [
    ({"beta": -0.1}, ValueError, "beta"), ({"gamma": float("inf")}, ValueError, "gamma"),
    ({"temperature": -1.0}, ValueError, "temperature"), ({"beta": None}, TypeError, "beta"),
    ({"alpha": 1.0}, TypeError, "alpha")])
def test_parameter_checks(params, error, name):
    assert_criterion_refuses(DISTLoss, params, error, name)
    if "alpha" not in params:
        with pytest.raises(error, match=name):
            dist_loss(torch.zeros(2, 3), torch.zeros(2, 3), **params)
