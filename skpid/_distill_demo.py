"""The distillation part of ``python -m skpid demo``: digits, a small CNN teacher, an
untrained teacher of the same architecture, and a narrow student distilled with none /
KD / VID / RID from each; test accuracy and PID atoms (bits) per run."""

import sys
import time

import torch

METHODS = ("none", "kd", "vid", "rid")
_COLUMNS = ("acc", "red", "uni_t", "uni_s", "syn")


def run_distill_demo(seed: int = 0, epochs: int = 15, out=sys.stdout) -> list:
    """Run the demo, printing progress and the table; return the table rows."""
    from .distill import _experiment as ex

    threads = torch.get_num_threads()
    # 8×8 images and 4-16 channels: thread start-up costs more than it saves, and on a
    # shared machine extra threads only contend.
    torch.set_num_threads(1)
    try:
        return _run(ex, seed, epochs, out)
    finally:
        torch.set_num_threads(threads)


def _run(ex, seed, epochs, out):
    torch.manual_seed(seed)
    start = time.perf_counter()

    def say(msg):
        print(f"[{time.perf_counter() - start:5.1f}s] {msg}", file=out, flush=True)

    X_train, X_test, y_train, y_test = ex.digits_images(seed)
    print(f"\nKnowledge distillation on scikit-learn digits ({len(y_train)} train / "
          f"{len(y_test)} test images, 8×8); student: SmallCNN(width=4), teachers: "
          "SmallCNN(width=16); layer pair: the convolutional feature maps.", file=out)
    teachers = {"trained": ex.train_teacher(X_train, y_train, epochs=epochs, seed=seed),
                "untrained": ex.untrained_teacher(seed=seed)}
    say("teacher trained")
    rows = []
    for teacher_name, teacher in teachers.items():
        for method in METHODS:
            net = ex.distill(teacher, method, X_train, y_train, epochs=epochs, seed=seed)
            result = ex.evaluate(net, X_test, y_test, seed=seed)
            rows.append((teacher_name, method, result))
            say(f"{teacher_name:9s} teacher, {method:4s}: test accuracy "
                f"{result['acc']:.3f}")
    teacher_acc = {name: float((t(torch.as_tensor(X_test)).argmax(1).numpy()
                                == y_test).mean()) for name, t in teachers.items()}
    print("\n| teacher (acc) | method | test acc | Red | UniT | UniS | Syn | I(Y;T) |",
          file=out)
    print("|---|---|---|---|---|---|---|---|", file=out)
    for teacher_name, method, r in rows:
        print(f"| {teacher_name} ({teacher_acc[teacher_name]:.3f}) | {method} | "
              + " | ".join(f"{r[c]:.3f}" for c in _COLUMNS) + f" | {r['mi_t']:.3f} |",
              file=out)
    print("\nPID in bits on the test images (feature maps → normalise, PCA 5, KMeans 10, "
          "BROJA). Red(Y:T,S) is the task knowledge the student shares with the teacher, "
          "UniT what is left to distill. An untrained CNN is not necessarily a nuisance "
          "teacher: check its I(Y;T) (random convolutions of digits keep label "
          "information); benchmarks/bench_nuisance_teacher.py builds one that sees only "
          f"nuisance inputs. Total {time.perf_counter() - start:.0f}s.", file=out)
    return rows
