"""The HTTP API: OpenAI endpoints on a lean ASGI path, SGLang's other endpoints on FastAPI."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import fastapi
from fastapi import responses
from uvicorn.protocols.http import httptools_impl

from twin import _engine, _estimate, _faults, _replica, _resolve, _tokenizer
from twin._facts import fact
from twin._metrics import ServerMetrics

_log = logging.getLogger("twin.server")


class ServerState:
    """What the request handlers and the start-up sequence share.

    ``config``, ``engine`` and ``tokenizer`` are ``None`` until the simulated start-up has
    finished; ``ready`` turns true at the same time.

    Args:
        args: Validated launch_server arguments.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.faults = _faults.make_faults(args.fault)
        self.served_name: str = args.served_model_name or args.model_path
        self.metrics = ServerMetrics(self.served_name) if args.enable_metrics else None
        self.config: _resolve.EngineConfig | None = None
        self.engine: _engine.Engine | None = None
        self.tokenizer: _tokenizer.TextTokenizer | None = None
        self.ready = False
        self.exit_code = 0
        self.requests = 0
        self.rng = random.Random(args.random_seed or 0)
        self.tasks: list[asyncio.Task[None]] = []


_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _prompt_ids(state: ServerState, body: dict[str, object], chat: bool) -> list[int]:
    tokenizer = state.tokenizer
    assert tokenizer is not None
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        return tokenizer.encode_chat(messages)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return tokenizer.encode(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    raise ValueError("'prompt' must be a string or a list of token ids")


def _max_tokens(body: dict[str, object], config: _resolve.EngineConfig, input_len: int) -> int:
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    if value is None:
        return max(1, config.context_len - input_len - 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("'max_tokens' must be a positive integer")
    return value


async def _send_json(send: _Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error_body(status: int, message: str) -> dict[str, object]:
    kind = {400: "BadRequestError", 404: "NotFoundError", 503: "ServiceUnavailableError"}
    return {
        "object": "error",
        "message": message,
        "type": kind.get(status, "InternalServerError"),
        "param": None,
        "code": status,
    }


async def _read_body(receive: _Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _watch_disconnect(
    receive: _Receive, engine: _engine.Engine, stream: _engine.Stream
) -> None:
    # SGLang aborts a request whose client disconnects; wake the writer with a sentinel.
    while (await receive())["type"] != "http.disconnect":
        pass
    engine.abort(stream)
    stream.queue.put_nowait((-1, True, 0.0))


async def _stream_events(
    engine: _engine.Engine,
    stream: _engine.Stream,
    send: _Send,
    receive: _Receive,
    *,
    chat: bool,
    head: str,
    include_usage: bool,
    reason: str,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
            ],
        }
    )
    watcher = asyncio.ensure_future(_watch_disconnect(receive, engine, stream))
    done, position, req = False, 0, stream.req
    try:
        if chat:
            role = (
                f'data: {head}"choices": [{{"index": 0, "delta": {{"role": "assistant", '
                f'"content": ""}}, "logprobs": null, "finish_reason": null}}]}}\n\n'
            )
            await send({"type": "http.response.body", "body": role.encode(), "more_body": True})
        while not done:
            items = [await stream.queue.get()]
            while not stream.queue.empty():
                items.append(stream.queue.get_nowait())
            parts = []
            for tokens, finished, _ in items:
                if tokens < 0:
                    return
                text = json.dumps(_tokenizer.output_text(position, tokens))
                position += tokens
                end = json.dumps(reason) if finished else "null"
                payload = f'"delta": {{"content": {text}}}' if chat else f'"text": {text}'
                parts.append(
                    f'data: {head}"choices": [{{"index": 0, {payload}, '
                    f'"logprobs": null, "finish_reason": {end}}}]}}\n\n'
                )
                done = done or finished
            await send(
                {"type": "http.response.body", "body": "".join(parts).encode(), "more_body": True}
            )
            if position == items[-1][0]:
                # First tokens steer the delivery lead: TTFT is the latency lag distorts most.
                engine.note_lag(time.monotonic() - engine.wall(items[-1][2]))
        tail = ""
        if include_usage:
            usage = json.dumps(
                {
                    "prompt_tokens": req.input_len,
                    "completion_tokens": req.output_len,
                    "total_tokens": req.input_len + req.output_len,
                }
            )
            tail = f'data: {head}"choices": [], "usage": {usage}}}\n\n'
        await send({"type": "http.response.body", "body": (tail + "data: [DONE]\n\n").encode()})
    except OSError:
        done = False
    finally:
        watcher.cancel()
        if not done:
            engine.abort(stream)


async def _generate(
    state: ServerState, receive: _Receive, send: _Send, chat: bool, arrived: float
) -> None:
    if state.faults.hang:
        await asyncio.Event().wait()
    engine, config = state.engine, state.config
    if not state.ready or engine is None or config is None:
        await _send_json(send, 503, _error_body(503, "The server is starting."))
        return
    received = (arrived - engine.origin) * engine.scale
    state.requests += 1
    faults = state.faults
    if faults.crash_after is not None and state.requests > faults.crash_after:
        _log.error(
            "Scheduler hit an exception: RuntimeError: injected fault crash-after=%d. Exiting.",
            faults.crash_after,
        )
        logging.shutdown()
        os._exit(1)
    if faults.http500_rate and state.rng.random() < faults.http500_rate:
        await _send_json(
            send, 500, _error_body(500, "Internal server error (injected fault http500-rate)")
        )
        return
    try:
        body = json.loads(await _read_body(receive))
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        ids = _prompt_ids(state, body, chat)
        max_new = _max_tokens(body, config, len(ids))
    except ValueError as e:
        await _send_json(send, 400, _error_body(400, str(e)))
        return
    problem = _estimate.request_error(config, len(ids), max_new)
    if problem is not None:
        await _send_json(send, 400, _error_body(400, problem))
        return
    ignore_eos = bool(body.get("ignore_eos", False))
    output_len = max_new if ignore_eos else _tokenizer.natural_length(ids, max_new)
    streaming = bool(body.get("stream", False))
    options = body.get("stream_options")
    include_usage = streaming and isinstance(options, dict) and bool(options.get("include_usage"))
    stream = engine.submit(
        received=received,
        input_ids=ids,
        max_new=max_new,
        output_len=output_len,
        ignore_eos=ignore_eos,
        streaming=streaming,
    )
    reason = "length" if output_len == max_new else "stop"
    rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    obj = "chat.completion" if chat else "text_completion"
    created = int(time.time())
    if streaming:
        head = (
            json.dumps(
                {
                    "id": rid,
                    "object": obj + (".chunk" if chat else ""),
                    "created": created,
                    "model": state.served_name,
                }
            )[:-1]
            + ", "
        )
        await _stream_events(
            engine,
            stream,
            send,
            receive,
            chat=chat,
            head=head,
            include_usage=include_usage,
            reason=reason,
        )
        return
    try:
        while not (await stream.queue.get())[1]:
            pass
    finally:
        if stream.req.state != _replica.DONE:
            engine.abort(stream)
    text = _tokenizer.output_text(0, output_len)
    choice: dict[str, object] = {"index": 0, "logprobs": None, "finish_reason": reason}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    await _send_json(
        send,
        200,
        {
            "id": rid,
            "object": obj,
            "created": created,
            "model": state.served_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": len(ids),
                "completion_tokens": output_len,
                "total_tokens": len(ids) + output_len,
            },
        },
    )


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

    _PATHS = {"/v1/chat/completions": True, "/v1/completions": False}

    def __init__(self, state: ServerState, app: fastapi.FastAPI) -> None:
        self._state = state
        self._app = app

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: _Receive, send: _Send
    ) -> None:
        arrived = scope.get("twin.arrived") or time.monotonic()
        path = scope.get("path", "")
        key = self._state.args.api_key
        if scope["type"] == "http" and key and not path.startswith(("/health", "/metrics")):
            # SGLang's API-key middleware: every route but health checks and metrics.
            headers = dict(scope.get("headers") or ())
            if headers.get(b"authorization", b"").decode() != f"Bearer {key}":
                await _send_json(send, 401, {"error": "Unauthorized"})
                return
        chat = self._PATHS.get(path)
        if scope["type"] == "http" and scope.get("method") == "POST" and chat is not None:
            await _generate(self._state, receive, send, chat, arrived)
        else:
            await self._app(scope, receive, send)


async def _gate(state: ServerState) -> fastapi.Response | None:
    # Every endpoint waits forever under --fault hang and answers 503 while starting.
    if state.faults.hang:
        await asyncio.Event().wait()
    if not state.ready:
        return responses.JSONResponse(_error_body(503, "The server is starting."), 503)
    return None


def build_app(state: ServerState) -> _Asgi:
    """Builds the ASGI application.

    Args:
        state: Shared server state.

    Returns:
        The application.
    """
    app = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> fastapi.Response:
        gate = await _gate(state)
        return gate or fastapi.Response(status_code=200)

    @app.get("/health_generate")
    async def health_generate() -> fastapi.Response:
        gate = await _gate(state)
        if gate is not None:
            return gate
        engine = state.engine
        assert engine is not None
        stream = engine.submit(
            received=engine.now(),
            input_ids=[0],
            max_new=1,
            output_len=1,
            ignore_eos=True,
            streaming=False,
        )
        await stream.queue.get()
        return fastapi.Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> fastapi.Response:
        gate = await _gate(state)
        if gate is not None:
            return gate
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
        gate = await _gate(state)
        if gate is not None:
            return gate
        config, engine = state.config, state.engine
        assert config is not None and engine is not None
        gib = 1024.0**3
        graph = (
            fact("graph_mib_per_bs")
            * (config.cuda_graph_bs[-1] if config.cuda_graph_bs else 0)
            / 1024
        )
        internal = [
            {
                "last_gen_throughput": engine.gen_throughput[i],
                "memory_usage": {
                    "weight": config.weight_bytes / gib,
                    "kvcache": config.max_total_tokens * config.kv_cell_bytes / gib,
                    "token_capacity": config.max_total_tokens,
                    "graph": graph,
                },
                "#running-req": len(r.running),
                "#queue-req": len(r.waiting),
            }
            for i, r in enumerate(engine.replicas)
        ]
        return responses.JSONResponse({**config.server_info, "internal_states": internal})

    @app.get("/get_model_info")
    @app.get("/model_info")
    async def model_info() -> fastapi.Response:
        gate = await _gate(state)
        if gate is not None:
            return gate
        return responses.JSONResponse(
            {
                "model_path": state.args.model_path,
                "tokenizer_path": state.args.tokenizer_path,
                "is_generation": True,
            }
        )

    @app.api_route("/flush_cache", methods=["GET", "POST"])
    async def flush_cache() -> fastapi.Response:
        gate = await _gate(state)
        if gate is not None:
            return gate
        assert state.engine is not None
        if state.engine.flush_cache():
            return responses.PlainTextResponse("Cache flushed.\n")
        return responses.PlainTextResponse("Cache not flushed: requests are running.\n", 400)

    if state.metrics is not None:
        metrics = state.metrics

        @app.get("/metrics")
        async def prometheus() -> fastapi.Response:
            gate = await _gate(state)
            return gate or fastapi.Response(
                metrics.render(), media_type="text/plain; version=0.0.4"
            )

    return _Asgi(state, app)
