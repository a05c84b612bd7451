"""CRD (Tian et al., ICLR 2020): crd_nce_loss / crd_loss / CRDLoss with its memory banks."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skpid.distill._crd import CRDLoss, crd_loss, crd_nce_loss

from .conftest import assert_criterion_refuses


def reference_nce(anchor, contrast, n_data, tau, log_z=0.0):
    """The paper's critic h = (e^{a·c/τ}/Z) / (e^{a·c/τ}/Z + K/M) and its NCE loss, in
    float64 with plain exponentials (moderate scores only)."""
    a, c = np.asarray(anchor, float), np.asarray(contrast, float)
    k = c.shape[1] - 1
    total = 0.0
    for ai, ci in zip(a, c):
        e = np.exp(ci @ ai / tau) / np.exp(log_z)
        h = e / (e + k / n_data)
        total += np.log(h[0]) + np.sum(np.log(1 - h[1:]))
    return -total / len(a)


def data(n_rows=12, n_classes=3):
    y = torch.arange(n_rows) % n_classes
    return SimpleNamespace(n_rows=n_rows, n_classes=n_classes, y=y, teacher_features=None)


def make(n_rows=12, n_classes=3, s_width=3, t_width=5, **params):
    params = {"feat_dim": 4, "n_negatives": 6, "random_state": 0} | params
    crit = CRDLoss(**params)
    crit.build([(4, t_width)], [(4, s_width)], n_classes=n_classes)
    crit.prepare(data(n_rows, n_classes))
    return crit


def batch(seed, index, s_width=3, t_width=5, n_classes=3):
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(len(index), s_width, generator=g)],
            [torch.randn(len(index), t_width, generator=g)], index % n_classes)


def test_nce_matches_the_paper_critic():
    g = torch.Generator().manual_seed(0)
    anchor = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    contrast = F.normalize(torch.randn(5, 8, 4, generator=g), dim=2)
    for tau, log_z in ((0.5, 0.0), (0.07, 0.0), (0.2, 3.0)):
        got = crd_nce_loss(anchor, contrast, n_data=100, temperature=tau, log_z=log_z)
        ref = reference_nce(anchor.numpy(), contrast.numpy(), 100, tau, log_z)
        assert float(got) == pytest.approx(ref, rel=1e-5)
    both = crd_loss(anchor, anchor.flip(0), contrast, contrast.flip(0), n_data=100,
                    temperature=0.5, log_z=(0.0, 1.0))
    assert float(both) == pytest.approx(
        reference_nce(anchor.numpy(), contrast.flip(0).numpy(), 100, 0.5, 0.0)
        + reference_nce(anchor.flip(0).numpy(), contrast.numpy(), 100, 0.5, 1.0), rel=1e-5)


def test_hand_computed_nce():
    # one anchor, one negative, τ = 1, M = 1: h = e^s / (e^s + 1) = sigmoid(s)
    a = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[[0.6, 0.8], [0.0, 1.0]]])  # scores 0.6 (positive) and 0
    def sig(x):
        return 1 / (1 + math.exp(-x))

    expected = -(math.log(sig(0.6)) + math.log(1 - sig(0.0)))
    assert float(crd_nce_loss(a, c, n_data=1, temperature=1.0)) == pytest.approx(expected)


def test_nce_is_finite_for_extreme_scores():
    a = torch.tensor([[1.0, 0.0]], requires_grad=True)
    c = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]])
    loss = crd_nce_loss(a, c, n_data=10 ** 6, temperature=1e-4)  # scores ±1e4
    assert torch.isfinite(loss)
    # the positive is certain (log h = 0); the aligned negative costs its score, 1e4
    assert float(loss.detach()) == pytest.approx(1e4 - math.log(2 / 1e6), rel=1e-4)
    loss.backward()
    assert torch.isfinite(a.grad).all()


def test_forward_requires_prepare():
    crit = CRDLoss(feat_dim=4, n_negatives=3)
    crit.build([(4, 5)], [(4, 3)], n_classes=3)
    s, t, y = batch(0, torch.arange(4))
    with pytest.raises(RuntimeError, match="prepare"):
        crit(None, None, s, t, y, index=torch.arange(4))


def test_memory_bank_update():
    crit = make(momentum=0.5)
    index = torch.tensor([1, 4, 8, 11])
    s, t, y = batch(1, index)
    before_s, before_t = crit.memory_student.clone(), crit.memory_teacher.clone()
    with torch.no_grad():
        emb_s = F.normalize(crit.embed_student[0](s[0]), dim=1)
        emb_t = F.normalize(crit.embed_teacher[0](t[0]), dim=1)
    crit(None, None, s, t, y, index=index, training=True)
    for bank, before, emb in ((crit.memory_student, before_s, emb_s),
                              (crit.memory_teacher, before_t, emb_t)):
        expected = F.normalize(0.5 * before[0, index] + 0.5 * emb, dim=1)
        assert torch.allclose(bank[0, index], expected, atol=1e-6)
        untouched = torch.ones(12, dtype=torch.bool)
        untouched[index] = False
        assert torch.equal(bank[0, untouched], before[0, untouched])
        assert torch.allclose(bank[0, index].norm(dim=1), torch.ones(4), atol=1e-6)
    assert int(crit.sampler_state[1]) == 1
    assert not torch.isnan(crit.log_z).any()  # Z estimated on the first training batch


def test_loss_uses_the_banks_rows_as_positives_and_negatives():
    crit = make()
    index = torch.tensor([0, 5, 7, 9])
    s, t, y = batch(2, index)
    gen = crit._generator(int(crit.sampler_state[1]))
    negatives = crit.draw_negatives(y, gen)
    rows = torch.cat([index[:, None], negatives], dim=1)
    with torch.no_grad():
        emb_s = F.normalize(crit.embed_student[0](s[0]), dim=1)
        emb_t = F.normalize(crit.embed_teacher[0](t[0]), dim=1)
        contrast_t, contrast_s = crit.memory_teacher[0][rows], crit.memory_student[0][rows]
        scores_s = torch.einsum("bd,bkd->bk", emb_s, contrast_t) / 0.07
        scores_t = torch.einsum("bd,bkd->bk", emb_t, contrast_s) / 0.07
        # Z = M · mean(exp(score)) on this first batch, per side
        log_z = [math.log(12 * float(torch.exp(x.double()).mean())) for x in (scores_s, scores_t)]
    terms = crit(None, None, s, t, y, index=index)
    assert crit.log_z[0].tolist() == pytest.approx(log_z, rel=1e-5)
    ref_s = reference_nce(emb_s.numpy(), contrast_t.numpy(), 12, 0.07, log_z[0])
    ref_t = reference_nce(emb_t.numpy(), contrast_s.numpy(), 12, 0.07, log_z[1])
    assert float(terms["nce_student"].detach()) == pytest.approx(ref_s, rel=1e-4)
    assert float(terms["nce_teacher"].detach()) == pytest.approx(ref_t, rel=1e-4)
    assert float(terms["distill"].detach()) == pytest.approx(ref_s + ref_t, rel=1e-4)
    assert set(terms) == set(crit.student_terms)


def test_negatives_come_from_other_classes_or_all_rows():
    crit = make(n_rows=30, n_classes=3, n_negatives=200)
    y = torch.tensor([0, 1, 2, 2])
    neg = crit.draw_negatives(y, torch.Generator().manual_seed(0))
    assert neg.shape == (4, 200)
    labels = torch.arange(30) % 3
    assert (labels[neg] != y[:, None]).all()
    assert set(neg[0].tolist()) == {r for r in range(30) if r % 3 != 0}  # all reachable
    crit = make(n_rows=30, negatives="uniform", n_negatives=400)
    neg = crit.draw_negatives(y, torch.Generator().manual_seed(0))
    assert set(neg.flatten().tolist()) == set(range(30))
    one_class = CRDLoss(feat_dim=4, n_negatives=50, random_state=0)
    one_class.prepare(SimpleNamespace(n_rows=5, n_classes=1, y=torch.zeros(5, dtype=torch.long),
                                      teacher_features=None))
    neg = one_class.draw_negatives(torch.zeros(2, dtype=torch.long),
                                   torch.Generator().manual_seed(0))
    assert neg.min() >= 0 and neg.max() <= 4  # no other class: all rows


def test_seeded_negatives_and_banks_are_reproducible():
    index = torch.tensor([2, 3, 10, 6])
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # the heads' initial weights
        crit = make(random_state=7)
        for step in range(3):
            s, t, y = batch(step, index)
            crit(None, None, s, t, y, index=index)
        runs.append(crit.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    # the seed is what decides: another seed, other banks and negatives
    torch.manual_seed(0)
    other = make(random_state=8)
    assert not torch.equal(other.memory_student, make(random_state=7).memory_student)
    y = torch.tensor([0, 1])
    seven = make(random_state=7)
    assert not torch.equal(seven.draw_negatives(y, seven._generator(0)),
                           other.draw_negatives(y, other._generator(0)))
    # without random_state the seed comes from torch's global generator
    seeds = []
    for _ in range(2):
        torch.manual_seed(123)
        seeds.append(int(make(random_state=None).sampler_state[0]))
    assert seeds[0] == seeds[1]


def test_validation_changes_no_state():
    crit = make()
    index = torch.tensor([0, 1, 2, 3])
    s, t, y = batch(0, index)
    crit(None, None, s, t, y, index=index)  # one training batch
    state = {k: v.clone() for k, v in crit.state_dict().items()}
    terms = crit(None, None, s, t, y, index=None, training=False)  # validation
    assert all(torch.isfinite(v) for v in terms.values())
    crit(None, None, s, t, y, index=index, training=False)  # indices but not training
    assert all(torch.equal(state[k], v) for k, v in crit.state_dict().items())


def test_gradients_reach_both_heads_and_the_student():
    crit = make()
    index = torch.tensor([0, 4, 5, 9])
    s, t, y = batch(3, index)
    s[0].requires_grad_()
    crit(None, None, s, t, y, index=index)["distill"].backward()
    assert torch.isfinite(s[0].grad).all() and s[0].grad.abs().sum() > 0
    for head in (crit.embed_student[0], crit.embed_teacher[0]):
        assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()
    assert t[0].grad is None


def test_pair_weights_and_index_checks():
    crit = CRDLoss(feat_dim=4, n_negatives=3, random_state=0)
    crit.build([(4, 5), (4, 2, 2, 2)], [(4, 3), (4, 1, 2, 2)], n_classes=3)
    crit.prepare(data())
    assert crit.memory_student.shape == (2, 12, 4)
    index = torch.tensor([0, 1, 2, 3])
    feats_s = [torch.randn(4, 3), torch.randn(4, 1, 2, 2)]
    feats_t = [torch.randn(4, 5), torch.randn(4, 2, 2, 2)]
    terms = crit(None, None, feats_s, feats_t, index % 3, index=index, training=False,
                 pair_weights=torch.tensor([0.0, 0.0]))
    assert float(terms["distill"].detach()) == 0.0
    assert float(terms["nce_student"].detach()) > 0
    with pytest.raises(ValueError, match="index must hold training-row indices in 0 … 11"):
        crit(None, None, feats_s, feats_t, index % 3, index=torch.tensor([0, 1, 2, 12]))


def test_state_survives_save_load_and_warm_prepare():
    crit = make()
    index = torch.tensor([1, 2, 3, 4])
    s, t, y = batch(4, index)
    crit(None, None, s, t, y, index=index)
    fresh = CRDLoss(feat_dim=4, n_negatives=6, random_state=0)
    fresh.build([(4, 5)], [(4, 3)], n_classes=3)
    fresh.load_state_dict(crit.state_dict())  # the banks come back without prepare()
    s, t, y = batch(5, index)
    a = crit(None, None, s, t, y, index=index)["distill"]
    b = fresh(None, None, s, t, y, index=index)["distill"]
    assert torch.equal(a, b)
    # prepare() again for as many rows (a warm start) keeps the banks and the seed
    bank, sampler = crit.memory_student.clone(), crit.sampler_state.clone()
    crit.prepare(data())
    assert torch.equal(crit.memory_student, bank) and torch.equal(crit.sampler_state, sampler)
    crit.prepare(data(n_rows=15))  # other data: new banks
    assert crit.memory_student.shape == (1, 15, 4)


@pytest.mark.parametrize("params, error, name", [
    ({"feat_dim": 0}, ValueError, "feat_dim"), ({"n_negatives": 1.5}, TypeError, "n_negatives"),
    ({"temperature": 0.0}, ValueError, "temperature"), ({"momentum": 1.0}, ValueError, "momentum"),
    ({"negatives": "same_class"}, ValueError, "negatives"),
    ({"random_state": -1}, ValueError, "random_state"),
    ({"random_state": "0"}, TypeError, "random_state"), ({"alpha": 1.0}, TypeError, "alpha")])
def test_parameter_checks(params, error, name):
    assert_criterion_refuses(CRDLoss, params, error, name)
    assert CRDLoss.needs_row_index and CRDLoss.uses_features
