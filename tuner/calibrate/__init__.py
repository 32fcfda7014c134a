"""Calibration: fit the twin's hand-fitted facts to trials measured on a real backend."""

from tuner.calibrate._accuracy import FITTED_METRICS
from tuner.calibrate._fit import Calibration, calibrate, write_profile

__all__ = ["FITTED_METRICS", "Calibration", "calibrate", "write_profile"]
