"""A local port standing in for a trial's server outside the cluster, relayed once it is up."""

from __future__ import annotations

import logging
import selectors
import socket
import threading
from collections.abc import Callable

from tuner.exceptions import BackendError

__all__ = ["Relay"]

logger = logging.getLogger(__name__)


class Relay:
    """A local port whose connections go to a trial's server, once ``target`` says how.

    Outside the cluster the trial's endpoint must exist when ``deploy`` returns, before the
    server has a URL; this listener is that endpoint. Each accepted connection gets one
    upstream socket (direct TCP or a fresh pod port-forward) and one thread copying bytes.
    """

    def __init__(self, name: str) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.5)
        self.port: int = self._listener.getsockname()[1]
        self._connect: Callable[[], socket.socket] | None = None
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name=f"relay-{name}", daemon=True).start()

    def target(self, connect: Callable[[], socket.socket]) -> None:
        """Send the next connections to the socket ``connect`` opens."""
        self._connect = connect

    def close(self) -> None:
        """Stop accepting; open connections end at their next read."""
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                local, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(local,), daemon=True).start()

    def _serve(self, local: socket.socket) -> None:
        connect = self._connect
        if connect is None:  # not Ready yet: refuse, as a server that is not up would
            local.close()
            return
        try:
            remote = connect()
        except (OSError, BackendError) as e:
            logger.warning("relay on port %d cannot reach the server: %s", self.port, e)
            local.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(local, selectors.EVENT_READ, remote)
        selector.register(remote, selectors.EVENT_READ, local)
        try:
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            local.close()
            remote.close()
