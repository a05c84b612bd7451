"""KD++ (Wang et al.): nd_loss and NDLoss (KD on the logits plus ND on an embedding)."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from skpid.distill._losses import kd_loss
from skpid.distill._nd import NDLoss, embedding, nd_loss

from .conftest import assert_criterion_refuses


def reference_nd(s, t, means, y):
    """The paper's ND loss, one row at a time in float64."""
    total = 0.0
    for si, ti, c in zip(s.double(), t.double(), y.tolist()):
        e = means[c].double() / means[c].double().norm()
        total += 1 - float(si @ e) / max(float(si.norm()), float(ti.norm()))
    return total / len(y)


def test_hand_computed_case():
    means = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # directions e_0 = (1, 0), e_1 = (0, 1)
    s = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    t = torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    y = torch.tensor([0, 1])
    # row 0: 1 - 3 / max(5, 1) = 0.4; row 1: 1 - 0 / max(1, 2) = 1
    assert float(nd_loss(s, t, means, y)) == pytest.approx((0.4 + 1.0) / 2, rel=1e-6)


def test_matches_the_paper_definition_on_random_batches():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(12, 6, generator=g), 2 * torch.randn(12, 6, generator=g)
    means, y = torch.randn(4, 6, generator=g), torch.randint(0, 4, (12,), generator=g)
    assert float(nd_loss(s, t, means, y)) == pytest.approx(reference_nd(s, t, means, y),
                                                           rel=1e-5)


def test_invariances():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    means, y = torch.randn(2, 3, generator=g), torch.tensor([0, 1, 1, 0, 1])
    base = float(nd_loss(s, t, means, y))
    # only the direction of a class mean counts
    assert float(nd_loss(s, t, means * torch.tensor([[4.0], [0.1]]), y)) \
        == pytest.approx(base, rel=1e-6)
    # a student along its class direction with the teacher's norm: ND = 0
    e = means / means.norm(dim=1, keepdim=True)
    aligned = e[y] * t.norm(dim=1, keepdim=True)
    assert float(nd_loss(aligned, t, means, y)) == pytest.approx(0.0, abs=1e-6)
    # below the teacher's norm it costs 1 - ‖s‖/‖t‖ (the norm regularisation); above, 0
    assert float(nd_loss(0.5 * aligned, t, means, y)) == pytest.approx(0.5, abs=1e-6)
    assert float(nd_loss(2 * aligned, t, means, y)) == pytest.approx(0.0, abs=1e-6)
    # scaling student and teacher together changes nothing
    assert float(nd_loss(3 * s, 3 * t, means, y)) == pytest.approx(base, rel=1e-5)


def test_degenerate_rows_are_finite():
    means = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # class 0 had no training rows
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    t = torch.zeros(2, 2)
    loss = nd_loss(s, t, means, torch.tensor([0, 1]))
    assert float(loss.detach()) == pytest.approx(1.0)  # e_0 = 0 and an all-zero row: 1 each
    loss.backward()
    assert torch.isfinite(s.grad).all()
    big = torch.full((2, 4), 1e4, requires_grad=True)
    loss = nd_loss(big, -big.detach(), torch.ones(1, 4), torch.tensor([0, 0]))
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-5)
    loss.backward()
    assert torch.isfinite(big.grad).all()


def prepared(crit, t_train, y, n_classes):
    crit.prepare(SimpleNamespace(n_rows=len(y), n_classes=n_classes, y=y,
                                 teacher_features=lambda: [t_train]))


def test_prepare_computes_the_teacher_class_means():
    g = torch.Generator().manual_seed(2)
    y = torch.tensor([0, 1, 1, 2, 0, 1])
    t_train = torch.randn(6, 4, 3, 3, generator=g)  # feature maps: pooled to (6, 4)
    crit = NDLoss()
    crit.build([(6, 4, 3, 3)], [(6, 4, 3, 3)], n_classes=4)
    with pytest.raises(RuntimeError, match="prepare"):
        crit(torch.zeros(6, 4), torch.zeros(6, 4), [t_train], [t_train], y)
    prepared(crit, t_train, y, n_classes=4)
    pooled = t_train.mean(dim=(2, 3))
    for c in range(3):
        assert torch.allclose(crit.class_means_0[c], pooled[y == c].mean(0), atol=1e-6)
    assert crit.class_means_0[3].abs().sum() == 0  # a class without rows
    assert isinstance(crit.projections[0], nn.Identity)  # equal widths: no projection
    assert torch.equal(embedding(t_train), pooled)


def test_criterion_kd_warmup_projection_and_pair_weights():
    g = torch.Generator().manual_seed(3)
    y = torch.tensor([0, 1, 2, 1])
    t_train, s_feat, t_feat = (torch.randn(4, 5, generator=g), torch.randn(4, 3, generator=g),
                               torch.randn(4, 5, generator=g))
    s_logits, t_logits = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    crit = NDLoss(temperature=4.0, kd_weight=1.0, nd_weight=2.0, warmup=20)
    crit.build([(4, 5), (4, 5)], [(4, 3), (4, 3)], n_classes=3)
    crit.prepare(SimpleNamespace(n_rows=4, n_classes=3, y=y,
                                 teacher_features=lambda: [t_train, t_train]))
    assert isinstance(crit.projections[0], nn.Linear)
    assert crit.projections[0].in_features == 3 and crit.projections[0].out_features == 5
    terms = crit(s_logits, t_logits, [s_feat, s_feat], [t_feat, t_feat], y, epoch=5,
                 pair_weights=torch.tensor([1.0, 0.0]))
    assert set(terms) == set(crit.student_terms) == {"distill", "logit_kd", "nd"}
    kd = kd_loss(s_logits, t_logits, 4.0)
    with torch.no_grad():
        nd0, nd1 = (float(nd_loss(crit.projections[k](s_feat), t_feat, crit.class_means_0, y))
                    for k in (0, 1))
    assert float(terms["logit_kd"]) == pytest.approx(float(kd), rel=1e-6)
    assert float(terms["nd"].detach()) == pytest.approx(nd0 + nd1, rel=1e-5)  # both pairs, ungated
    # KD warmed up (5 / 20), ND of the second pair gated out
    assert float(terms["distill"].detach()) == pytest.approx(0.25 * float(kd) + 2 * nd0, rel=1e-5)
    terms["distill"].backward()
    assert crit.projections[0].weight.grad is not None


def test_class_means_survive_save_and_load():
    y = torch.tensor([0, 1, 1, 0])
    t_train = torch.randn(4, 3)
    crit = NDLoss()
    crit.build([(4, 3)], [(4, 3)], n_classes=2)
    prepared(crit, t_train, y, n_classes=2)
    fresh = NDLoss()
    fresh.build([(4, 3)], [(4, 3)], n_classes=2)
    fresh.load_state_dict(crit.state_dict())  # no prepare: the means come from the state
    assert torch.equal(fresh.class_means_0, crit.class_means_0)
    s = torch.randn(4, 3)
    args = (torch.zeros(4, 2), torch.zeros(4, 2), [s], [t_train], y)
    assert torch.equal(fresh(*args)["distill"], crit(*args)["distill"])


@pytest.mark.parametrize("params, error, name", [
    ({"temperature": 0.0}, ValueError, "temperature"),
    ({"kd_weight": -1.0}, ValueError, "kd_weight"),
    ({"nd_weight": "2"}, TypeError, "nd_weight"), ({"warmup": -3}, ValueError, "warmup"),
    ({"beta": 1.0}, TypeError, "beta")])
def test_parameter_checks(params, error, name):
    assert_criterion_refuses(NDLoss, params, error, name)


def test_shape_and_label_checks():
    with pytest.raises(ValueError, match="same shape"):
        nd_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class_means must be"):
        nd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels y must lie"):
        nd_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.tensor([0, 2]))
