"""The functional cores and criteria of the distillation methods."""

import pytest
import torch

from skpid.distill import (KDLoss, RIDLoss, TEDLoss, fitnet_loss, kd_loss, rid_distance,
                           rid_phase, variance_penalty, vid_loss)


def test_kd_is_zero_iff_distributions_match():
    torch.manual_seed(0)
    z = torch.randn(8, 5)
    assert kd_loss(z, z + 3.0).abs() < 1e-6  # softmax is shift-invariant
    assert kd_loss(z, -z) > 0.1
    # T² scaling: for small logits the loss is roughly independent of the temperature
    a, b = (0.01 * torch.randn(8, 5, dtype=torch.float64) for _ in range(2))
    assert kd_loss(a, b, 2.0) / kd_loss(a, b, 8.0) == pytest.approx(1.0, rel=0.05)


def test_vid_is_minimised_at_the_residual_variance():
    torch.manual_seed(0)
    target = torch.randn(1000, 3)
    mean = target + 0.5 * torch.randn(1000, 3)
    mse = ((target - mean) ** 2).mean(0)
    at_mse = vid_loss(mean, target, mse)
    for scale in (0.5, 2.0):
        assert vid_loss(mean, target, mse * scale) > at_mse


def test_distances_and_penalties():
    s, t = torch.zeros(4, 2, 3, 3), torch.ones(4, 2, 3, 3)
    assert rid_distance(s, t, torch.tensor([1.0, 4.0])) == pytest.approx((1 + 0.25) / 2)
    assert fitnet_loss(s, t) == 1.0
    var = torch.tensor([0.5, 2.0])
    assert variance_penalty(var, "log") == pytest.approx(0.0, abs=1e-7)
    assert variance_penalty(var, "square") == pytest.approx((0.25 + 4) / 2)


@pytest.mark.parametrize("rounds, ratio", [(1, 0.25), (3, 0.25), (4, 0.5), (10, 0.1)])
def test_rid_schedule_shares(rounds, ratio):
    total = 400
    phases = [rid_phase(i, total, rounds, ratio) for i in range(total)]
    teacher = [p for p, _ in phases].count("teacher")
    assert teacher == pytest.approx(ratio * total, abs=rounds)
    assert max(r for _, r in phases) == rounds - 1
    assert phases[0] == ("teacher", 0)
    # each round starts with its teacher phase
    starts = [-(-i * total // rounds) for i in range(rounds)]
    assert all(phases[i][0] == "teacher" for i in starts)


def test_rid_criterion_terms_and_gradients():
    torch.manual_seed(0)
    crit = RIDLoss(rounds=2, variance_penalty="log", info_gate=False)
    t_feats, s_feats = [torch.randn(16, 6)], [torch.randn(16, 4, requires_grad=True)]
    crit.build([t_feats[0].shape], [s_feats[0].shape], n_classes=3)
    y = torch.randint(0, 3, (16,))
    logits = torch.randn(16, 3)
    student = crit(logits, logits, s_feats, t_feats, y, phase="student")
    student["distill"].backward()
    assert s_feats[0].grad is not None
    assert all(p.grad is None for p in crit.teacher_side_parameters())
    assert all(p.grad is not None for p in crit.student_side_parameters())
    crit.zero_grad()
    s_feats[0].grad = None
    teacher = crit(logits, logits, s_feats, t_feats, y, phase="teacher", with_distance=True)
    (teacher["filter_ce"] + teacher["distance"]).backward()
    assert s_feats[0].grad is None
    assert all(p.grad is not None for p in crit.teacher_side_parameters())
    assert all(p.grad is None for p in crit.student_side_parameters())
    ted = TEDLoss(teacher_ratio=0.5, round_epochs=2)  # one teacher phase: 1 epoch
    ted.updates[0] = 9
    assert ted.phase(10, 50) == "teacher"
    ted.updates[0] = 10
    assert ted.phase(10, 50) == "student"
    ted.updates[0] = 10_000
    assert ted.phase(10, 50) == "student"  # never again
    assert KDLoss(temperature=2.0).temperature == 2.0
