"""Backends: where trial servers come from. ``make(spec)`` picks one by ``backend.kind``."""

from tuner.backends import _estimate, _local, _ome, _twin  # noqa: F401  (register themselves)
from tuner.backends._registry import BACKENDS, make, register
from tuner.backends.base import Backend, Deployment, deployment_name

__all__ = ["BACKENDS", "Backend", "Deployment", "deployment_name", "make", "register"]
