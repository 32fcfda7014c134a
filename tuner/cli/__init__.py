"""The ``autotuner`` command: run studies, look at them, export their winners, serve the app."""

from tuner.cli._main import main

__all__ = ["main"]
