"""The HTTP server: generation on a lean ASGI path, SGLang's other endpoints on FastAPI."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import MutableMapping
from typing import Any

import fastapi
from fastapi import responses
from uvicorn.protocols.http import httptools_impl

from twin import _args, _engine, _faults, _generate, _resolve, _tokenizer
from twin._facts import fact
from twin._metrics import ServerMetrics


class ServerState:
    """What the request handlers and the start-up sequence share.

    ``config``, ``engine`` and ``tokenizer`` are set when the simulated loading has finished
    (the server listens from then on); ``ready`` turns true after the warm-up request, as
    SGLang's server status turns ``Up``.

    Args:
        args: Validated launch_server arguments.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.faults = _faults.make_faults(args.fault)
        self.served_name: str = args.served_model_name or args.model_path
        self.metrics = (
            ServerMetrics(self.served_name, tp=args.tp_size, dp=args.dp_size)
            if args.enable_metrics
            else None
        )
        self.config: _resolve.EngineConfig | None = None
        self.engine: _engine.Engine | None = None
        self.tokenizer: _tokenizer.TextTokenizer | None = None
        self.ready = False
        self.exit_code = 0
        self.requests = 0
        self.rng = random.Random(args.random_seed or 0)
        self.tasks: list[asyncio.Task[None]] = []


class StampingProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's HTTP protocol, noting when each request's bytes first reached the server.

    The first request of a connection is stamped at accept time, later ones when their
    first bytes arrive; the stamp is the request's arrival in simulated time, so queueing
    inside uvicorn does not count against the simulation.
    """

    _accepted = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._accepted = time.monotonic()
        super().connection_made(transport)  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["twin.arrived"] = self._accepted or time.monotonic()  # type: ignore[typeddict-unknown-key]
        self._accepted = 0.0


class _Asgi:
    """ASGI entry: generation requests take a lean path, everything else goes to FastAPI.

    Generation requests are stamped on arrival and streamed with raw ASGI messages, so the
    server adds as little wall time as possible (it is multiplied by the time scale).
    """

    def __init__(self, state: ServerState, app: fastapi.FastAPI) -> None:
        self._state = state
        self._app = app

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: _generate.Receive, send: _generate.Send
    ) -> None:
        arrived = scope.get("twin.arrived") or time.monotonic()
        path = scope.get("path", "")
        key = self._state.args.api_key
        if scope["type"] == "http" and key and not path.startswith(("/health", "/metrics")):
            # SGLang's API-key middleware: every route but health checks and metrics.
            headers = dict(scope.get("headers") or ())
            if headers.get(b"authorization", b"").decode() != f"Bearer {key}":
                await _generate.send_json(send, 401, {"error": "Unauthorized"})
                return
        route = _generate.ROUTES.get(path)
        methods = ("POST", "PUT") if route == _generate.NATIVE else ("POST",)
        if scope["type"] == "http" and route is not None and scope.get("method") in methods:
            await _generate.handle(self._state, receive, send, route, arrived)
        else:
            await self._app(scope, receive, send)


async def _gate(state: ServerState) -> None:
    # Every endpoint waits forever under --fault hang.
    if state.faults.hang:
        await asyncio.Event().wait()


async def _health(state: ServerState) -> fastapi.Response:
    # SGLang's health_generate: 503 with no body until the server is Up; then a one-token
    # generation, and 200 as soon as any request produced output since the check began
    # (so a busy server answers without waiting for the check's own token).
    await _gate(state)
    engine = state.engine
    assert engine is not None  # the server listens once it is
    if not state.ready:
        return fastapi.Response(status_code=503)
    began = time.monotonic()
    engine.submit(
        received=engine.now(),
        input_ids=[0],
        max_new=1,
        output_len=1,
        ignore_eos=True,
        streaming=False,
        log_metrics=False,
    )
    poll = fact("health_poll_s") / engine.scale
    deadline = began + fact("health_timeout_s") / engine.scale
    while time.monotonic() < deadline:
        await asyncio.sleep(poll)
        if engine.last_output > began:
            return fastapi.Response(status_code=200)
    return fastapi.Response(status_code=503)


def build_app(state: ServerState) -> _Asgi:
    """Builds the ASGI application.

    Args:
        state: Shared server state.

    Returns:
        The application.
    """
    app = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    @app.get("/health_generate")
    async def health() -> fastapi.Response:
        return await _health(state)

    @app.get("/v1/models")
    async def models() -> fastapi.Response:
        await _gate(state)
        assert state.config is not None
        card = {
            "id": state.served_name,
            "object": "model",
            "created": int(time.time()),
            "owned_by": "sglang",
            "root": state.served_name,
            "max_model_len": state.config.context_len,
        }
        return responses.JSONResponse({"object": "list", "data": [card]})

    @app.get("/get_server_info")
    @app.get("/server_info")
    async def server_info() -> fastapi.Response:
        await _gate(state)
        config, engine = state.config, state.engine
        assert config is not None and engine is not None
        # SGLang: every ServerArgs field, the scheduler's start-up report, one internal
        # state per DP rank (server args again, throughput, memory in GB), the version.
        gib = 1024.0**3
        graph_gib = fact("graph_mib_per_bs") * max(config.cuda_graph_bs, default=0) / 1024
        memory = {
            "weight": round(config.weight_bytes / gib, 2),
            "kvcache": round(config.max_total_tokens * config.kv_cell_bytes / gib, 2),
            "token_capacity": config.max_total_tokens,
            "graph": round(graph_gib, 2),
        }
        internal = [
            {**config.server_info, "last_gen_throughput": throughput, "memory_usage": memory}
            for throughput in engine.gen_throughput
        ]
        clock = engine.clock
        return responses.JSONResponse(
            {
                **config.server_info,
                "status": "ready",
                "internal_states": internal,
                # Host health: how far the simulation's event loop falls behind (wall s).
                "twin_host": {"clock_lag_s": clock.lag, "clock_behind_s_total": clock.behind_s},
                # SGLang flags accepted and set but not simulated: their effect is missing.
                "not_modelled": _args.not_modelled(state.args),
            }
        )

    @app.get("/get_model_info")
    @app.get("/model_info")
    async def model_info() -> fastapi.Response:
        await _gate(state)
        return responses.JSONResponse(
            {
                "model_path": state.args.model_path,
                "tokenizer_path": state.args.tokenizer_path,
                "is_generation": True,
            }
        )

    @app.api_route("/flush_cache", methods=["GET", "POST"])
    async def flush_cache() -> fastapi.Response:
        await _gate(state)
        assert state.engine is not None
        if state.engine.flush_cache():
            return responses.PlainTextResponse("Cache flushed.\n")
        return responses.PlainTextResponse("Cache not flushed: requests are running.\n", 400)

    if state.metrics is not None:
        metrics = state.metrics

        @app.get("/metrics")
        async def prometheus() -> fastapi.Response:
            await _gate(state)
            return fastapi.Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return _Asgi(state, app)
