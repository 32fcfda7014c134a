"""``pods/portforward`` of the fake cluster: the ``v4.channel.k8s.io`` websocket protocol."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from ._cluster import FakeCluster


async def relay_port(cluster: FakeCluster, websocket: WebSocket, namespace: str,
                        name: str) -> None:
    """``kubectl port-forward``'s protocol: per port a data and an error channel."""
    with cluster.lock:
        pod = cluster.pods.get((namespace, name))
        labels = (pod or {}).get("metadata", {}).get("labels", {})
        isvc = labels.get("ome.io/inferenceservice", "")
        server = cluster.controller.servers.get((namespace, isvc))
    ports = [int(p) for p in websocket.query_params.get("ports", "").split(",") if p]
    if server is None or server.port is None or len(ports) != 1:
        await websocket.close(code=1011)
        return
    await websocket.accept(subprotocol="v4.channel.k8s.io")
    header = ports[0].to_bytes(2, "little")
    await websocket.send_bytes(b"\x00" + header)
    await websocket.send_bytes(b"\x01" + header)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

    async def upstream() -> None:
        try:
            while True:
                frame = await websocket.receive_bytes()
                if frame[:1] == b"\x00":
                    writer.write(frame[1:])
                    await writer.drain()
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass

    async def downstream() -> None:
        try:
            while data := await reader.read(65536):
                await websocket.send_bytes(b"\x00" + data)
        except (RuntimeError, ConnectionError):
            pass

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    writer.close()
    try:
        await websocket.close()
    except RuntimeError:
        pass
