"""The trial lifecycle: the Ray Tune trainable and the driver-side callbacks."""

from tuner.trial._callbacks import StoreCallback, TeardownCallback
from tuner.trial._runner import OBJECTIVE_KEY, TrialRunner, sentinel
from tuner.trial._stopper import StudyStopper

__all__ = [
    "OBJECTIVE_KEY",
    "StoreCallback",
    "StudyStopper",
    "TeardownCallback",
    "TrialRunner",
    "sentinel",
]
