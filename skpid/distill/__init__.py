"""Knowledge distillation with PID: the distiller, its criteria and callbacks."""

from ._distiller import PIDDistiller, softmax_rows
from ._losses import (METHODS, DistillationLoss, FitNetLoss, KDLoss, NoDistillation,
                      RIDLoss, TEDLoss, VIDLoss, fitnet_loss, kd_loss, rid_distance,
                      rid_phase, variance_penalty, vid_loss)
from ._teacher import FrozenTeacher

__all__ = ["METHODS", "DistillationLoss", "FitNetLoss", "FrozenTeacher", "KDLoss",
           "NoDistillation", "PIDDistiller", "RIDLoss", "TEDLoss", "VIDLoss", "fitnet_loss",
           "kd_loss", "rid_distance", "rid_phase", "softmax_rows", "variance_penalty",
           "vid_loss"]
