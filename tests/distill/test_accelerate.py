"""AcceleratedPIDDistiller: Accelerate in one CPU process, and torch DDP over two CPU
processes (gloo backend, launched by torchrun)."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

import skpid
from skpid import PIDDistiller
from skpid.distill import AcceleratedPIDDistiller
from skpid.distill.models import MLP

from .conftest import same_state, state_copy

FAST = dict(max_epochs=2, batch_size=32, lr=0.05, verbose=0, train_split=None,
            random_state=0)
LAYERS = dict(teacher_layers=["body"], student_layers=["body"])


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    # Accelerate keeps process-wide singletons; every test builds its own Accelerator.
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def accelerated(teacher, accelerator=None, **kw):
    params = {**FAST, **LAYERS, "module__hidden": 8, **kw}
    accelerator = accelerator or Accelerator(cpu=True)
    return AcceleratedPIDDistiller(MLP, teacher, accelerator=accelerator, **params)


@pytest.mark.parametrize("method", ["rid", "vid", "kd"])
def test_one_process_trains_exactly_like_the_plain_distiller(method, digits, teacher_mlp):
    X, y = digits
    plain = PIDDistiller(MLP, teacher_mlp, method=method, module__hidden=8, **LAYERS,
                         **FAST).fit(X, y)
    acc = accelerated(teacher_mlp, method=method).fit(X, y)
    assert same_state(state_copy(acc.module_), state_copy(plain.module_))
    assert same_state(state_copy(acc.method_), state_copy(plain.method_))
    np.testing.assert_array_equal(acc.predict_proba(X), plain.predict_proba(X))
    assert acc.history[-1, "train_loss"] == plain.history[-1, "train_loss"]


def test_gradient_accumulation_equals_the_larger_batch(digits, teacher_mlp):
    X, y = digits[0][:288], digits[1][:288]  # whole batches of 16 and 32
    common = dict(method="kd", module__batch_norm=False, max_epochs=2, lr=0.05, verbose=0,
                  train_split=None, random_state=0)
    plain = PIDDistiller(MLP, teacher_mlp, module__hidden=8, batch_size=32,
                         **common).fit(X, y)
    acc = AcceleratedPIDDistiller(
        MLP, teacher_mlp, accelerator=Accelerator(cpu=True, gradient_accumulation_steps=2),
        module__hidden=8, batch_size=16, **common).fit(X, y)
    for name, value in acc.module_.state_dict().items():
        torch.testing.assert_close(value, plain.module_.state_dict()[name], rtol=1e-5,
                                   atol=1e-6)


def test_rid_phases_change_only_between_weight_updates(digits, teacher_mlp):
    X, y = digits
    before = state_copy(teacher_mlp)
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=3)
    acc = accelerated(teacher_mlp, accelerator=accelerator, method="rid", rounds=2,
                      max_epochs=4, batch_size=25)
    acc.fit(X, y)
    # 12 micro-batches per epoch, windows of 3: 16 updates, the first of each round's 8
    # in the teacher phase (teacher_ratio 0.25 -> 2 updates).
    phases = [b["phase"] for row in acc.history for b in row["batches"]]
    windows = [phases[i:i + 3] for i in range(0, len(phases), 3)]
    assert all(len(set(w)) == 1 for w in windows)
    assert [w[0][0] for w in windows] == list("ttssssss" * 2)
    assert same_state(before, state_copy(teacher_mlp))
    assert not teacher_mlp.training
    teacher_ids = {id(p) for p in teacher_mlp.parameters()}
    for optimizer in (acc.optimizer_, acc.filter_optimizer_):
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert not teacher_ids & stepped


def test_bf16_autocast_runs_half_precision_forwards_and_float32_losses(digits, teacher_mlp):
    X, y = digits
    seen = set()
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    acc = accelerated(teacher_mlp, accelerator=accelerator, method="rid", max_epochs=12, lr=0.1)
    acc.initialize()
    acc.module_.body.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    acc.partial_fit(X, y)
    assert torch.bfloat16 in seen  # the student ran under autocast
    terms = ["train_ce", "train_distill", "train_filter_ce", "train_distance"]
    assert all(np.isfinite(acc.history[:, key]).all() for key in terms)
    assert acc.history[-1, "train_ce"] < 0.8 * acc.history[0, "train_ce"]
    assert np.mean(acc.predict(X) == y) > 0.6


def test_clone_shares_teacher_and_accelerator_and_params_round_trip(digits, teacher_mlp,
                                                                     tmp_path):
    X, y = digits
    acc = accelerated(teacher_mlp, method="rid")
    copy = clone(acc)
    assert copy.teacher is teacher_mlp and copy.accelerator is acc.accelerator
    acc.fit(X, y)
    with pytest.raises(TypeError, match="cannot be pickled: its accelerate.Accelerator"):
        pickle.dumps(acc)
    acc.save_params(f_params=tmp_path / "student.pt", f_method=tmp_path / "parts.pt")
    copy.fit(X[:128], y[:128])  # builds the distillation parts for the same shapes
    copy.load_params(f_params=tmp_path / "student.pt", f_method=tmp_path / "parts.pt")
    np.testing.assert_array_equal(copy.predict_proba(X), acc.predict_proba(X))
    assert same_state(state_copy(copy.method_), state_copy(acc.method_))


def test_grid_search_runs_candidates_in_turn_on_one_accelerator(digits, teacher_mlp):
    X, y = digits
    search = GridSearchCV(accelerated(teacher_mlp, method="rid"),
                          {"pid_weight": [0.5, 2.0]}, cv=2).fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.accelerator is search.estimator.accelerator


def test_scikit_learn_teacher_for_logit_distillation(digits):
    X, y = digits
    logistic = LogisticRegression(max_iter=2000).fit(X, y)
    acc = accelerated(logistic, method="kd", teacher_layers=None, student_layers=None)
    acc.fit(X, y)
    assert np.isfinite(acc.history[:, "train_distill"]).all()


def test_two_cpu_processes_keep_identical_students_and_an_untouched_teacher(tmp_path):
    """torch DDP with the gloo backend over loopback, launched by torchrun."""
    package_root = str(Path(skpid.__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    script = Path(__file__).with_name("ddp_fit.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
           "--nproc-per-node=2", str(script), str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["distributed_type"].endswith("MULTI_CPU")
               for r in ranks)
    # each process trained on its half of every epoch's 13 training batches (320 rows;
    # the other 80 are the validation split) and validated on half of its 4 batches ...
    assert all(r["batches_per_epoch"] == [7 + 2] * 4 for r in ranks)
    # ... yet parameters and buffers (BatchNorm statistics) agree bit for bit
    assert same_state(ranks[0]["student"], ranks[1]["student"])
    assert same_state(ranks[0]["criterion"], ranks[1]["criterion"])
    torch.manual_seed(0)  # the script's teacher, rebuilt: untouched by training
    teacher = MLP(64, hidden=32).state_dict()
    for r in ranks:
        assert same_state(teacher, r["teacher"]) and not r["teacher_training"]
    # phases switch between updates (accumulation windows of 2) on every rank alike
    assert ranks[0]["phases"] == ranks[1]["phases"]
    assert ranks[0]["phases"][:2] == ["teacher", "teacher"]
    np.testing.assert_array_equal(ranks[0]["proba"], ranks[1]["proba"])
    # the measurements read all rows on every rank, not the rank's shard: the teacher
    # check, the gates and the monitor agree across ranks ...
    for key in ("teacher_information", "gates", "gate_history", "monitor"):
        assert ranks[0][key] == ranks[1][key], key
    assert sum(v is not None for v in ranks[0]["monitor"]) == 2  # epochs 2 and 4
    # ... and the check gives what one process measures on all 400 training rows
    X, y = load_digits(return_X_y=True)
    X, y = (X[:400] / 16.0).astype(np.float32), y[:400].astype(np.int64)
    torch.manual_seed(0)
    single = PIDDistiller(MLP, MLP(64, hidden=32), method="rid", module__hidden=8,
                          teacher_layers=["body"], student_layers=["body"], max_epochs=0,
                          train_split=None, verbose=0, random_state=0).fit(X, y)
    assert ranks[0]["teacher_information"] == single.teacher_information_


@pytest.mark.gpu
def test_cuda_fp16_with_gradient_scaler(digits, teacher_mlp):
    """fp16 autocast needs CUDA; its GradScaler takes no closure and steps both RID
    optimizers."""
    X, y = digits
    acc = accelerated(teacher_mlp, method="rid", max_epochs=4,
                      accelerator=Accelerator(mixed_precision="fp16",
                                              gradient_accumulation_steps=2))
    acc.fit(X, y)
    assert acc.accelerator.device.type == "cuda"
    assert next(teacher_mlp.parameters()).is_cuda
    assert all(p.is_cuda for p in acc.method_.parameters())
    terms = ["train_ce", "train_distill", "train_filter_ce", "train_distance"]
    assert all(np.isfinite(acc.history[:, key]).all() for key in terms)
