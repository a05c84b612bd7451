"""Knowledge distillation with PID: the distiller, its criteria and callbacks."""

from ._accelerate import AcceleratedPIDDistiller
from ._bdkd import BDKDLoss, bdkd_loss
from ._budget import StudentEarlyStopping
from ._callbacks import PIDMonitor
from ._crd import CRDLoss, crd_loss
from ._dist import DISTLoss, dist_loss
from ._distiller import PIDDistiller, softmax_rows
from ._dkd import DKDLoss, dkd_loss
from ._losses import (DistillationLoss, FitNetLoss, KDLoss, NoDistillation, RIDLoss,
                      TEDLoss, VIDLoss, fitnet_loss, kd_loss, rid_distance, rid_phase,
                      variance_penalty, vid_loss)
from ._methods import METHODS
from ._nd import NDLoss, nd_loss
from ._pid_gate import PIDGate
from ._plotting import plot_pid_history
from ._sinkd import SinKDLoss, sinkd_loss
from ._teacher import FrozenTeacher
from ._teacher_check import TeacherCheck

__all__ = ["METHODS", "AcceleratedPIDDistiller", "BDKDLoss", "CRDLoss", "DISTLoss",
           "DKDLoss", "DistillationLoss", "FitNetLoss", "FrozenTeacher", "KDLoss", "NDLoss",
           "NoDistillation", "PIDDistiller", "PIDGate", "PIDMonitor", "RIDLoss",
           "SinKDLoss", "StudentEarlyStopping", "TEDLoss", "TeacherCheck", "VIDLoss",
           "bdkd_loss", "crd_loss", "dist_loss", "dkd_loss", "fitnet_loss", "kd_loss",
           "nd_loss", "plot_pid_history", "rid_distance", "rid_phase", "sinkd_loss",
           "softmax_rows", "variance_penalty", "vid_loss"]
