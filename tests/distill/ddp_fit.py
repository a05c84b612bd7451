"""One rank of the 2-process data-parallel test (tests/distill/test_accelerate.py).

Launched by ``torchrun``: fits an AcceleratedPIDDistiller (RID, gradient accumulation,
the teacher check, the PID gate and a PIDMonitor on a validation split) on this rank's
share of the batches and saves what the test compares across ranks.
"""

import sys

import numpy as np
import torch
from accelerate import Accelerator
from sklearn.datasets import load_digits
from skorch.dataset import ValidSplit

from skpid.distill import AcceleratedPIDDistiller, PIDMonitor
from skpid.distill.models import MLP


def main(out_dir: str) -> None:
    X, y = load_digits(return_X_y=True)
    X, y = (X[:400] / 16.0).astype(np.float32), y[:400].astype(np.int64)
    torch.manual_seed(0)
    teacher = MLP(64, hidden=32)
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    net = AcceleratedPIDDistiller(
        MLP, teacher, accelerator=accelerator, method="rid", module__hidden=8,
        teacher_layers=["body"], student_layers=["body"], max_epochs=4, batch_size=25,
        lr=0.1, train_split=ValidSplit(5, stratified=True), verbose=0, random_state=0,
        iterator_train__shuffle=True, pid_gate=True, pid_gate_every=2,
        callbacks=[PIDMonitor(every=2, n_clusters=4)])
    net.fit(X, y)
    torch.save({
        "rank": accelerator.process_index,
        "world_size": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "student": net.module_.state_dict(),
        "criterion": net.method_.state_dict(),
        "teacher": teacher.state_dict(),
        "teacher_training": teacher.training,
        "batches_per_epoch": [len(row["batches"]) for row in net.history],
        "phases": [b.get("phase") for row in net.history for b in row["batches"]],
        "proba": net.predict_proba(X),
        "teacher_information": net.teacher_information_,
        "gates": {name: gate.gate for name, gate in net.pid_gates_.items()},
        "gate_history": net.history[:, "gate_0"],
        "monitor": [row.get("valid_redundancy") for row in net.history],
    }, f"{out_dir}/rank{accelerator.process_index}.pt")


if __name__ == "__main__":
    main(sys.argv[1])
