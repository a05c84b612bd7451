"""RID's information gate, its concurrent student steps and its settings."""

import math

import numpy as np
import pytest
import torch

from skpid import PIDDistiller
from skpid.distill import RIDLoss, TEDLoss
from skpid.distill._data import row_hashes as _row_hashes
from skpid.distill._losses import _raw_for_variance, _variance
from skpid.distill.models import MLP

from .conftest import same_state, state_copy


def teacher_phase_batches(crit, make_teacher_feats, n_batches=200, n=64, n_classes=4,
                          seed=0):
    """Train ``crit``'s heads through teacher-phase calls (filters and heads by Adam) on
    labels y and teacher features ``make_teacher_feats(y, gen)``."""
    gen = torch.Generator().manual_seed(seed)
    opt = None
    for _ in range(n_batches):
        y = torch.randint(0, n_classes, (n,), generator=gen)
        t = make_teacher_feats(y, gen)
        s = torch.randn(n, 3, generator=gen)
        if opt is None:
            crit.build([t.shape], [s.shape], n_classes)
            opt = torch.optim.Adam(crit.teacher_side_parameters(), lr=1e-2)
        row_hash = torch.rand(n, generator=gen, dtype=torch.float64)
        terms = crit(None, None, [s], [t], y, phase="teacher", with_distance=False,
                     row_hash=row_hash)
        opt.zero_grad()
        terms["filter_ce"].backward()
        opt.step()
    return crit


def informative(y, gen):  # class means 3 apart, unit noise: Y is readable from T
    return 3.0 * torch.nn.functional.one_hot(y, 4).float() + torch.randn(len(y), 4, generator=gen)


def nuisance(y, gen):  # independent of y
    return torch.randn(len(y), 4, generator=gen)


def test_gate_opens_for_an_informative_teacher_and_stays_shut_for_a_nuisance_one():
    torch.manual_seed(0)
    good = teacher_phase_batches(RIDLoss(), informative).gates()
    torch.manual_seed(0)
    bad = teacher_phase_batches(RIDLoss(), nuisance).gates()
    assert good.item() > 0.6
    assert bad.item() < 0.05
    # the gate is 1 − CE/H(Y) for the tracked cross-entropy and the labels seen
    crit = teacher_phase_batches(RIDLoss(), informative, n_batches=5)
    p = crit.label_counts / crit.label_counts.sum()
    entropy = -(p * p.log()).sum()
    expected = (1 - crit.gate_ce / entropy).clamp(0, 1)
    torch.testing.assert_close(crit.gates(), expected)


def test_gate_is_measured_on_rows_the_heads_never_fit():
    """With a nuisance teacher and a tiny training set the heads memorise their rows;
    the gate, read on the held-out rows, does not believe them."""
    fixed = torch.Generator().manual_seed(1)
    y_all = torch.randint(0, 4, (64,), generator=fixed)
    t_all = torch.randn(64, 4, generator=fixed)
    hash_all = torch.rand(64, generator=fixed, dtype=torch.float64)

    def run(gate_holdout):
        torch.manual_seed(0)
        crit = RIDLoss(gate_holdout=gate_holdout)
        crit.build([t_all.shape], [(64, 3)], 4)
        opt = torch.optim.Adam(crit.teacher_side_parameters(), lr=3e-2)
        for _ in range(300):  # the same 64 rows again and again: memorised
            terms = crit(None, None, [torch.zeros(64, 3)], [t_all], y_all, phase="teacher",
                         with_distance=False, row_hash=hash_all)
            opt.zero_grad()
            terms["filter_ce"].backward()
            opt.step()
        return crit.gates().item()

    assert run(0.0) > 0.5  # read on the memorised rows: fooled
    assert run(0.3) == 0.0


def test_gate_scales_the_student_term_and_is_closed_before_it_is_measured():
    torch.manual_seed(0)
    crit = RIDLoss()
    t, s = torch.randn(8, 4), torch.randn(8, 3, requires_grad=True)
    crit.build([t.shape], [s.shape], 4)
    terms = crit(None, None, [s], [t], torch.zeros(8, dtype=torch.long))
    assert terms["gate"].item() == 0.0 and terms["distill"].item() == 0.0
    assert terms["distance"].item() > 0  # still measured and recorded
    crit.gate_ce.fill_(0.5)
    crit.label_counts.fill_(2.0)  # uniform over 4 classes: H = log 4
    w = 1 - 0.5 / math.log(4)
    terms = crit(None, None, [s], [t], torch.zeros(8, dtype=torch.long))
    assert terms["gate"].item() == pytest.approx(w)
    assert terms["distill"].item() == pytest.approx(w * terms["distance"].item())
    ungated = RIDLoss(info_gate=False)
    ungated.build([t.shape], [s.shape], 4)
    assert ungated.gates().tolist() == [1.0]


@pytest.mark.parametrize("variance", [1e-2, 1.0, 5.0, 100.0])
def test_variance_init_is_the_starting_variance(variance):
    assert _variance(torch.tensor(_raw_for_variance(variance))).item() == pytest.approx(
        variance, rel=1e-5)


def test_fixed_variances_are_not_learned_and_learned_ones_are():
    t, s = torch.randn(8, 4), torch.randn(8, 3)
    fixed, learned = RIDLoss(variance_init=2.0), RIDLoss(variance_penalty="log")
    for crit in (fixed, learned):
        crit.build([t.shape], [s.shape], 4)
    assert not fixed.raw_variances[0].requires_grad
    assert learned.raw_variances[0].requires_grad
    torch.testing.assert_close(_variance(fixed.raw_variances[0]), torch.full((4,), 2.0))


def test_paper_variant_is_reachable_by_parameters():
    crit = RIDLoss(variance_penalty="square", normalize=False, info_gate=False,
                   pool_heads=False, concurrent=False)
    crit.build([(8, 6, 4, 4)], [(8, 3, 4, 4)], 5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and not m.affine
                   for m in crit.teacher_filters.modules())
    assert crit.heads[0][-1].in_features == 6 * 4 * 4  # flattening head
    assert crit.gates().tolist() == [1.0]
    default = RIDLoss()
    default.build([(8, 6, 4, 4)], [(8, 3, 4, 4)], 5)
    assert default.heads[0][-1].in_features == 6 * 2 * 2  # pooled to 2 x 2
    assert isinstance(default.teacher_filters[0][-1], torch.nn.BatchNorm2d)
    assert TEDLoss().phase(10, 50) == "teacher" and TEDLoss(concurrent=False).concurrent is False


@pytest.mark.parametrize("name, value, error, match", [
    ("variance_init", 0.0, ValueError, r"method__variance_init must be in \(0, 1e30\]; got 0\.0"),
    ("gate_holdout", 1.0, ValueError, r"method__gate_holdout must be a finite number in \[0, 1\)"),
    ("gate_momentum", -0.1, ValueError, r"method__gate_momentum must be a finite number in"),
    ("info_gate", "yes", TypeError, r"method__info_gate must be True or False"),
    ("head_pool_size", 0, ValueError, r"method__head_pool_size must be an int >= 1"),
])
def test_new_settings_are_checked(digits, teacher_mlp, name, value, error, match):
    X, y = digits
    with pytest.raises(error, match=match):
        PIDDistiller(MLP, teacher_mlp, method="rid", teacher_layers=["body"],
                     student_layers=["body"], verbose=0,
                     **{f"method__{name}": value}).fit(X, y)


def _student_net(teacher, **kw):
    return PIDDistiller(MLP, teacher, method="rid", module__hidden=8, teacher_layers=["body"],
                        student_layers=["body"], max_epochs=1, train_split=None, verbose=0,
                        rounds=1, teacher_ratio=0.5, warm_start=True, **kw)


@pytest.mark.parametrize("kd_weight", [0.0, 0.5])
def test_concurrent_student_learns_in_teacher_phases(digits, teacher_mlp, kd_weight):
    X, y = digits
    torch.manual_seed(0)
    net = _student_net(teacher_mlp, batch_size=len(y), kd_weight=kd_weight).initialize()
    before = state_copy(net.module_)
    with pytest.warns(UserWarning, match="RID schedule"):
        net.fit(X, y)  # the single step is a teacher step
    assert net.history[-1, "teacher_phase"] == 1.0
    assert not same_state(before, state_copy(net.module_))
    batch = net.history[-1, "batches", 0]
    assert ("train_kd" in batch) == (kd_weight > 0)
    # the concurrent step ran no distance: the teacher-phase distance is the filters'
    assert np.isfinite(batch["train_filter_ce"])


def test_concurrent_off_is_the_research_alternation(digits, teacher_mlp):
    X, y = digits
    torch.manual_seed(0)
    net = _student_net(teacher_mlp, batch_size=len(y), method__concurrent=False).initialize()
    before = state_copy(net.module_)
    with pytest.warns(UserWarning, match="RID schedule"):
        net.fit(X, y)
    assert same_state(before, state_copy(net.module_))


def test_gate_is_recorded_and_closed_for_a_label_independent_teacher(digits):
    """A teacher that sees only noise columns: its RID gate stays (near) shut."""
    X, y = digits
    rng = np.random.default_rng(0)
    X_noise = np.concatenate([X, rng.normal(size=X.shape).astype(np.float32)], axis=1)

    class NoiseOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = MLP(64, hidden=32)

        def forward(self, x):
            return self.net(x[:, 64:])

    torch.manual_seed(0)
    net = PIDDistiller(MLP, NoiseOnly().eval(), method="rid", module__n_features=128,
                       module__hidden=8, teacher_layers=["net.body"], student_layers=["body"],
                       max_epochs=20, train_split=None, verbose=0, random_state=0,
                       teacher_check="ignore", callbacks__early_stopping=None
                       ).fit(X_noise, y)
    gates = net.history[:, "train_gate"]  # epochs with student steps (not 1 to 3)
    assert len(gates) >= 15
    assert max(g for g in gates if g is not None) < 0.1


def test_row_hashes_are_stable_per_row_for_every_input_layout():
    X = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    u = _row_hashes(X)
    assert u.shape == (6,) and bool(((u >= 0) & (u < 1)).all())
    assert torch.equal(u[[2, 0]], _row_hashes(X[[2, 0]]))  # a row's hash, whatever batch
    assert torch.equal(u, _row_hashes(X.numpy()))
    d = _row_hashes({"b": X[:, 2:], "a": X[:, :2]})
    assert torch.equal(d[[3]], _row_hashes({"a": X[[3], :2], "b": X[[3], 2:]}))
    assert _row_hashes((X, X)).shape == (6,)
    assert len(set(u.tolist())) == 6
