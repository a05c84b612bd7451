"""Decoupled KD (Zhao et al., CVPR 2022): dkd_terms / dkd_loss / DKDLoss."""

import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax, logsumexp

from skpid.distill._dkd import DKDLoss, dkd_loss, dkd_terms, warmup_factor

from .conftest import assert_criterion_refuses


def reference_dkd(s, t, y, alpha, beta, T):
    """The paper's definitions, row by row in float64 (numpy, stable logsumexp)."""
    total_tckd = total_nckd = 0.0
    for zs, zt, c in zip(np.asarray(s, float) / T, np.asarray(t, float) / T, y):
        others = [k for k in range(len(zs)) if k != c]
        b = {}
        for name, z in (("s", zs), ("t", zt)):
            lse = logsumexp(z)
            b[name] = np.array([z[c] - lse, logsumexp(z[others]) - lse])  # log [p_y, 1-p_y]
        tckd = np.sum(np.exp(b["t"]) * (b["t"] - b["s"]))
        hat_s, hat_t = log_softmax(zs[others]), log_softmax(zt[others])
        nckd = np.sum(np.exp(hat_t) * (hat_t - hat_s))
        total_tckd += tckd
        total_nckd += nckd
    n = len(y)
    tckd, nckd = T * T * total_tckd / n, T * T * total_nckd / n
    return tckd, nckd, alpha * tckd + beta * nckd


def test_hand_computed_case():
    # one row, 3 classes, T = 1, label 0; probabilities written out by hand
    s, t = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[2.0, 0.0, 0.0]])
    ps = math.e / (math.e + 2)          # student p_y
    pt = math.e ** 2 / (math.e ** 2 + 2)  # teacher p_y
    tckd = pt * math.log(pt / ps) + (1 - pt) * math.log((1 - pt) / (1 - ps))
    got_t, got_n = dkd_terms(s, t, torch.tensor([0]), temperature=1.0)
    assert float(got_t) == pytest.approx(tckd, rel=1e-5)
    assert float(got_n) == pytest.approx(0.0, abs=1e-7)  # both spread 50/50 over the rest
    assert float(dkd_loss(s, t, torch.tensor([0]), alpha=2.0, beta=8.0, temperature=1.0)) \
        == pytest.approx(2 * tckd, rel=1e-5)


@pytest.mark.parametrize("T, alpha, beta", [(1.0, 1.0, 8.0), (4.0, 0.5, 2.0), (2.5, 0.0, 1.0)])
def test_matches_the_paper_definitions_on_random_batches(T, alpha, beta):
    g = torch.Generator().manual_seed(0)
    s, t = 3 * torch.randn(16, 7, generator=g), 3 * torch.randn(16, 7, generator=g)
    y = torch.randint(0, 7, (16,), generator=g)
    tckd, nckd, loss = reference_dkd(s.numpy(), t.numpy(), y.numpy(), alpha, beta, T)
    got_t, got_n = dkd_terms(s, t, y, temperature=T)
    assert float(got_t) == pytest.approx(tckd, rel=1e-4)
    assert float(got_n) == pytest.approx(nckd, rel=1e-4)
    got = dkd_loss(s, t, y, alpha=alpha, beta=beta, temperature=T)
    assert float(got) == pytest.approx(loss, rel=1e-4)
    # float64 in, float64 out: agreement to rounding
    got = dkd_loss(s.double(), t.double(), y, alpha=alpha, beta=beta, temperature=T)
    assert got.dtype == torch.float64 and float(got) == pytest.approx(loss, rel=1e-10)


def test_kd_decomposes_into_tckd_and_nckd():
    # the paper's identity, per row: KL(p^T || p^S) = TCKD + (1 - p_y^T) NCKD
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    for i in range(6):
        si, ti, yi = s[i:i + 1].double(), t[i:i + 1].double(), y[i:i + 1]
        kl = torch.sum(torch.softmax(ti, 1) * (torch.log_softmax(ti, 1) - torch.log_softmax(si, 1)))
        tckd, nckd = dkd_terms(si, ti, yi, temperature=1.0)
        p_y = torch.softmax(ti, 1)[0, yi[0]]
        assert float(tckd + (1 - p_y) * nckd) == pytest.approx(float(kl), rel=1e-5)


def test_invariances():
    g = torch.Generator().manual_seed(2)
    z, y = torch.randn(8, 4, generator=g), torch.randint(0, 4, (8,), generator=g)
    assert float(dkd_loss(z, z, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(dkd_loss(z, z + 5.0, y)) == pytest.approx(0.0, abs=1e-5)  # shift per row
    # T² scaling: logits scaled by T at temperature T give T² times the T = 1 terms
    s, t = torch.randn(8, 4, generator=g).double(), torch.randn(8, 4, generator=g).double()
    for T in (2.0, 4.0):
        at_t = dkd_terms(s * T, t * T, y, temperature=T)
        at_1 = dkd_terms(s, t, y, temperature=1.0)
        for a, b in zip(at_t, at_1):
            assert float(a) == pytest.approx(T * T * float(b), rel=1e-5)
    # two classes: no other class to spread over, NCKD is 0
    assert float(dkd_terms(s[:, :2], t[:, :2], y % 2)[1]) == pytest.approx(0.0, abs=1e-7)


def test_extreme_logits_are_finite_and_exact():
    # teacher sure of class 0 (the label), student sure of class 1, at ±1e4
    s = torch.tensor([[0.0, 1e4, 0.0], [-1e4, 1e4, -1e4], [0.0, 0.0, 0.0]])
    t = torch.tensor([[1e4, 0.0, 0.0], [1e4, -1e4, -1e4], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 2])
    T = 4.0
    tckd, nckd = dkd_terms(s, t, y, temperature=T)
    ref_t, ref_n, _ = reference_dkd(s.numpy(), t.numpy(), y.numpy(), 1.0, 1.0, T)
    assert torch.isfinite(tckd) and torch.isfinite(nckd)
    assert float(tckd) == pytest.approx(ref_t, rel=1e-5)
    assert float(nckd) == pytest.approx(ref_n, rel=1e-5)
    # by hand (z / T = ±2500): TCKD = log(1 / p_y^S) = 2500 and 5000 nats on rows 0
    # and 1; NCKD = log 0.5 + 1250 and log 0.5 + 2500 (a uniform teacher rest against a
    # student rest of [1, e^-2500] and [1, e^-5000]); row 2 (ties): both 0
    assert float(tckd) == pytest.approx(T * T * (2500 + 5000) / 3, rel=1e-5)
    assert float(nckd) == pytest.approx(T * T * (2 * math.log(0.5) + 3750) / 3, rel=1e-5)


def test_gradients_are_finite_even_for_extreme_logits():
    s = torch.tensor([[0.0, 1e4, -1e4], [3.0, 3.0, 3.0]], requires_grad=True)
    t = torch.tensor([[1e4, 0.0, 0.0], [0.0, 0.0, 1.0]])
    dkd_loss(s, t, torch.tensor([0, 2])).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_criterion_warmup_and_terms():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    y = torch.tensor([0, 1, 2, 1, 0])
    crit = DKDLoss(alpha=1.0, beta=8.0, temperature=4.0, warmup=20)
    assert set(crit.student_terms) == {"distill", "tckd", "nckd"}
    full = dkd_loss(s, t, y)
    for epoch, ramp in ((1, 0.05), (10, 0.5), (20, 1.0), (50, 1.0), (None, 1.0)):
        terms = crit(s, t, [], [], y, epoch=epoch, index=None, training=True)
        assert set(terms) == set(crit.student_terms)
        assert float(terms["distill"]) == pytest.approx(ramp * float(full), rel=1e-6)
    assert float(DKDLoss(beta=8.0, warmup=0)(s, t, [], [], y, epoch=1)["distill"]) \
        == pytest.approx(float(full), rel=1e-6)
    assert warmup_factor(3, 6) == 0.5


def test_label_and_shape_checks():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="labels y must lie in 0 … 2"):
        dkd_loss(z, z, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="at least 2 classes"):
        dkd_loss(torch.zeros(2, 1), torch.zeros(2, 1), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="one class index per row"):
        dkd_loss(z, z, torch.tensor([0]))
    with pytest.raises(ValueError, match="same shape"):
        dkd_loss(z, torch.zeros(2, 4), torch.tensor([0, 1]))


@pytest.mark.parametrize("params, error, name", [
    ({"alpha": -1.0}, ValueError, "alpha"), ({"beta": float("nan")}, ValueError, "beta"),
    ({"temperature": 0.0}, ValueError, "temperature"), ({"warmup": -1}, ValueError, "warmup"),
    ({"warmup": 2.5}, TypeError, "warmup"), ({"alpha": "1"}, TypeError, "alpha"),
    ({"gamma": 1.0}, TypeError, "gamma")])
def test_parameter_checks(params, error, name):
    assert_criterion_refuses(DKDLoss, params, error, name)
    if "gamma" not in params and "warmup" not in params:
        with pytest.raises(error, match=name):
            dkd_loss(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([0]), **params)
