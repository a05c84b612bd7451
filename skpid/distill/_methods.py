"""The distillation methods by name: what ``PIDDistiller(method=...)`` accepts."""

from __future__ import annotations

from ._bdkd import BDKDLoss
from ._crd import CRDLoss
from ._dist import DISTLoss
from ._dkd import DKDLoss
from ._losses import FitNetLoss, KDLoss, NoDistillation, RIDLoss, TEDLoss, VIDLoss
from ._nd import NDLoss
from ._sinkd import SinKDLoss

METHODS = {"none": NoDistillation, "kd": KDLoss, "fitnet": FitNetLoss, "vid": VIDLoss,
           "rid": RIDLoss, "ted": TEDLoss, "dkd": DKDLoss, "dist": DISTLoss,
           "nd": NDLoss, "bdkd": BDKDLoss, "sinkd": SinKDLoss, "crd": CRDLoss}
"""Names accepted by ``PIDDistiller(method=...)``."""
