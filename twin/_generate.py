"""Generation requests on raw ASGI: OpenAI chat and text completions, SGLang's ``/generate``.

Requests are parsed and checked like SGLang 0.5.5 does (``serving_chat.py``,
``serving_completions.py``, ``http_server.py``), queued on the engine and answered from their
stream, as server-sent events or one JSON body. Raw ASGI messages keep the server's own wall
time small: the time scale multiplies it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from twin import _engine, _estimate, _payloads, _request, _resolve, _tokenizer

if TYPE_CHECKING:
    from twin._http import ServerState

_log = logging.getLogger("twin.server")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

CHAT, COMPLETIONS, NATIVE = "chat", "completions", "generate"
# Path -> route of the generation endpoints.
ROUTES = {"/v1/chat/completions": CHAT, "/v1/completions": COMPLETIONS, "/generate": NATIVE}

# CompletionRequest.max_tokens and SamplingParams.max_new_tokens defaults of SGLang 0.5.5.
_COMPLETIONS_MAX_TOKENS = 16
_NATIVE_MAX_NEW_TOKENS = 128
# ChatCompletionRequest.model default (DEFAULT_MODEL_NAME): SGLang echoes the request's model.
_DEFAULT_MODEL = "default"


@dataclasses.dataclass(frozen=True)
class _Parsed:
    ids: list[int]
    max_new: int
    ignore_eos: bool
    streaming: bool
    include_usage: bool
    model: str


def error_body(status: int, message: str) -> dict[str, object]:
    """SGLang's OpenAI-style error body."""
    return {
        "object": "error",
        "message": message,
        "type": "BadRequestError" if status == 400 else "InternalServerError",
        "param": None,
        "code": status,
    }


async def send_json(send: Send, status: int, payload: object) -> None:
    """Sends one JSON response."""
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


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _positive(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"'{name}' must be a positive integer")
    return value


def _prompt_ids(state: ServerState, body: dict[str, Any], route: str) -> list[int]:
    tokenizer = state.tokenizer
    assert tokenizer is not None
    if route == CHAT:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        return tokenizer.encode_chat(messages)
    if route == NATIVE:
        prompt, what = body.get("text", body.get("input_ids")), "'text' or 'input_ids'"
    else:
        prompt, what = body.get("prompt"), "'prompt'"
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]
    if isinstance(prompt, str):
        return tokenizer.encode(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    raise ValueError(f"{what} must be a string or a list of token ids (batches are not modelled)")


def _parse(
    state: ServerState, body: dict[str, Any], route: str, config: _resolve.EngineConfig
) -> _Parsed:
    ids = _prompt_ids(state, body, route)
    params = (body.get("sampling_params") or {}) if route == NATIVE else body
    if not isinstance(params, dict):
        raise ValueError("'sampling_params' must be an object")
    if route == NATIVE:
        max_new = _positive(params.get("max_new_tokens", _NATIVE_MAX_NEW_TOKENS), "max_new_tokens")
    elif route == COMPLETIONS:
        max_new = _positive(body.get("max_tokens", _COMPLETIONS_MAX_TOKENS), "max_tokens")
    else:
        value = body.get("max_completion_tokens") or body.get("max_tokens")
        # No limit given: the scheduler's init_req_max_new_tokens fills the context.
        limit = min(config.context_len - 1, config.max_total_tokens - 1) - len(ids) - 1
        max_new = max(1, limit) if value is None else _positive(value, "max_tokens")
    options = body.get("stream_options")
    streaming = bool(body.get("stream", False))
    return _Parsed(
        ids=ids,
        max_new=max_new,
        ignore_eos=bool(params.get("ignore_eos", False)),
        streaming=streaming,
        include_usage=streaming
        and isinstance(options, dict)
        and bool(options.get("include_usage")),
        model=str(body.get("model", _DEFAULT_MODEL)),
    )


async def _watch_disconnect(
    receive: Receive, engine: _engine.Engine, stream: _engine.Stream
) -> None:
    # SGLang aborts a request whose client disconnects; wake the writer with a sentinel.
    while (await receive())["type"] != "http.disconnect":
        pass
    engine.abort(stream)
    stream.queue.put_nowait((-1, True, 0.0))


async def _send_events(
    engine: _engine.Engine,
    stream: _engine.Stream,
    send: Send,
    receive: Receive,
    render: Callable[[int, int, bool], str],
    tail: Callable[[], str],
) -> None:
    # render(position, tokens, finished) -> events of new tokens; tail() -> the closing events.
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
    done, position = False, 0
    try:
        while not done:
            items = [await stream.queue.get()]
            while not stream.queue.empty():
                items.append(stream.queue.get_nowait())
            parts = []
            for tokens, finished, _ in items:
                if tokens < 0:
                    return
                parts.append(render(position, tokens, finished))
                position += tokens
                done = done or finished
            await send(
                {"type": "http.response.body", "body": "".join(parts).encode(), "more_body": True}
            )
            if position == items[-1][0]:
                # First tokens steer the delivery lead: TTFT is the latency lag distorts most.
                engine.note_lag(time.monotonic() - engine.wall(items[-1][2]))
        await send({"type": "http.response.body", "body": (tail() + "data: [DONE]\n\n").encode()})
    except OSError:
        done = False
    finally:
        watcher.cancel()
        if not done:
            engine.abort(stream)


def _native_renderer(
    rid: str, parsed: _Parsed, stream: _engine.Stream, finish: _payloads.Finish, received: float
) -> Callable[[int, int, bool], str]:
    text: list[str] = []

    def render(position: int, tokens: int, finished: bool) -> str:
        text.append(_tokenizer.output_text(position, tokens))
        req = stream.req
        latency = (req.done_at - received) if finished else None
        body = _payloads.native_output(
            rid,
            "".join(text),
            _output_ids(position, tokens),
            len(parsed.ids),
            position + tokens,
            req.prefix_len,
            finish if finished else None,
            latency,
        )
        return f"data: {json.dumps(body)}\n\n"

    return render


def _output_ids(start: int, count: int) -> list[int]:
    # The twin has no vocabulary-level model: a token's id is its position.
    return list(range(start, start + count))


def _check_faults(state: ServerState) -> bool:
    # True when the request was answered (crash or injected HTTP 500) and must stop here.
    state.requests += 1
    faults = state.faults
    if faults.crash_after is not None and state.requests > faults.crash_after:
        _log.error(
            "Scheduler hit an exception: RuntimeError: injected fault crash-after=%d. Exiting.",
            faults.crash_after,
        )
        logging.shutdown()
        os._exit(1)
    return bool(faults.http500_rate) and state.rng.random() < faults.http500_rate


async def handle(
    state: ServerState, receive: Receive, send: Send, route: str, arrived: float
) -> None:
    """Answers one generation request.

    Args:
        state: Shared server state.
        receive: ASGI receive.
        send: ASGI send.
        route: ``CHAT``, ``COMPLETIONS`` or ``NATIVE``.
        arrived: Wall time (``time.monotonic``) its first bytes reached the server.
    """
    if state.faults.hang:
        await asyncio.Event().wait()
    engine, config = state.engine, state.config
    assert engine is not None and config is not None  # the server listens once they are
    received = (arrived - engine.origin) * engine.scale
    if _check_faults(state):
        await send_json(
            send, 500, error_body(500, "Internal server error (injected fault http500-rate)")
        )
        return
    try:
        body = json.loads(await _read_body(receive))
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        parsed = _parse(state, body, route, config)
        problem = _estimate.request_error(config, len(parsed.ids), parsed.max_new)
        if problem is not None:
            raise ValueError(problem)
    except ValueError as e:
        payload: object = {"error": {"message": str(e)}} if route == NATIVE else None
        await send_json(send, 400, payload or error_body(400, str(e)))
        return
    ids, max_new = parsed.ids, parsed.max_new
    output_len = max_new if parsed.ignore_eos else _tokenizer.natural_length(ids, max_new)
    stream = engine.submit(
        received=received,
        input_ids=ids,
        max_new=max_new,
        output_len=output_len,
        ignore_eos=parsed.ignore_eos,
        streaming=parsed.streaming,
    )
    finish = _payloads.Finish("length" if output_len == max_new else "stop", output_len)
    rid = {CHAT: "chatcmpl-", COMPLETIONS: "cmpl-", NATIVE: ""}[route] + uuid.uuid4().hex
    created = int(time.time())
    if parsed.streaming:
        if route == NATIVE:
            render = _native_renderer(rid, parsed, stream, finish, received)

            def tail() -> str:
                return ""
        else:
            events = _payloads.OpenAIStream(rid, parsed.model, created, route == CHAT)

            def render(position: int, tokens: int, finished: bool) -> str:
                text = _tokenizer.output_text(position, tokens)
                return events.content(text, position == 0, finish if finished else None)

            def tail() -> str:
                usage = events.usage(len(ids), output_len) if parsed.include_usage else ""
                return events.finish(finish) + usage

        await _send_events(engine, stream, send, receive, render, tail)
        return
    try:
        while not (await stream.queue.get())[1]:
            pass
    finally:
        if stream.req.state != _request.DONE:
            engine.abort(stream)
    text = _tokenizer.output_text(0, output_len)
    if route == NATIVE:
        latency = stream.req.done_at - received
        result = _payloads.native_output(
            rid,
            text,
            _output_ids(0, output_len),
            len(ids),
            output_len,
            stream.req.prefix_len,
            finish,
            latency,
        )
    else:
        result = _payloads.openai_response(
            rid, parsed.model, created, route == CHAT, text, len(ids), finish
        )
    await send_json(send, 200, result)
