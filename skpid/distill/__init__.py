"""Knowledge distillation with PID: the distiller, its criteria and callbacks."""

from ._accelerate import AcceleratedPIDDistiller
from ._callbacks import PIDMonitor
from ._distiller import PIDDistiller, softmax_rows
from ._losses import (METHODS, DistillationLoss, FitNetLoss, KDLoss, NoDistillation,
                      RIDLoss, TEDLoss, VIDLoss, fitnet_loss, kd_loss, rid_distance,
                      rid_phase, variance_penalty, vid_loss)
from ._pid_gate import PIDGate
from ._plotting import plot_pid_history
from ._teacher import FrozenTeacher
from ._teacher_check import TeacherCheck

__all__ = ["METHODS", "AcceleratedPIDDistiller", "DistillationLoss", "FitNetLoss",
           "FrozenTeacher", "KDLoss",
           "NoDistillation", "PIDDistiller", "PIDGate", "PIDMonitor", "RIDLoss", "TEDLoss",
           "TeacherCheck", "VIDLoss",
           "fitnet_loss", "kd_loss", "plot_pid_history", "rid_distance", "rid_phase",
           "softmax_rows", "variance_penalty", "vid_loss"]
