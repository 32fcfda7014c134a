"""JSON bodies of generation responses, shaped like SGLang 0.5.5's (pydantic models, dumped).

Field names and order follow ``sglang/srt/entrypoints/openai/protocol.py`` (OpenAI API) and
``managers/tokenizer_manager.py`` ``_handle_batch_output`` (native ``/generate``): streamed
OpenAI chunks are dumped with their ``None`` fields, except the completions' usage chunk,
which SGLang dumps with ``exclude_none``.
"""

from __future__ import annotations

import dataclasses
import json

# SGLang's weight_version default ("default"), echoed in response metadata.
WEIGHT_VERSION = "default"


@dataclasses.dataclass(frozen=True)
class Finish:
    """How a request ended.

    ``matched_stop`` (the stop token's id) is always null: the twin's tokenizer does not
    expose its EOS id.

    Attributes:
        reason: ``"length"`` or ``"stop"``.
        length: Tokens generated.
    """

    reason: str
    length: int

    def native(self) -> dict[str, object]:
        """SGLang's ``meta_info.finish_reason`` (FINISH_LENGTH / FINISH_MATCHED_TOKEN)."""
        if self.reason == "length":
            return {"type": "length", "length": self.length}
        return {"type": "stop", "matched": None}


def usage(prompt: int, completion: int, *, exclude_none: bool = False) -> dict[str, object]:
    """An OpenAI ``usage`` object (SGLang's UsageInfo).

    Args:
        prompt: Prompt tokens.
        completion: Generated tokens.
        exclude_none: Leave out ``None`` fields (the completions' streamed usage).

    Returns:
        The object.
    """
    body: dict[str, object] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
    }
    if exclude_none:
        del body["prompt_tokens_details"]
    return body


class OpenAIStream:
    """The server-sent events of one streamed OpenAI request.

    Args:
        rid: Response id.
        model: The request's ``model`` (SGLang echoes it, not the served name).
        created: Unix time of the response.
        chat: Chat completions (else text completions).
    """

    def __init__(self, rid: str, model: str, created: int, chat: bool) -> None:
        self._chat = chat
        obj = "chat.completion.chunk" if chat else "text_completion"
        # Every chunk starts alike: dump the head once (the server's time is scaled up).
        head = json.dumps({"id": rid, "object": obj, "created": created, "model": model})
        self._head = head[:-1] + ', "choices": ['

    def _event(self, choice: str, usage_json: str = "null") -> str:
        return f'data: {self._head}{choice}], "usage": {usage_json}}}\n\n'

    def content(self, text: str, first: bool, finish: Finish | None) -> str:
        """Events for newly generated text.

        A chat stream opens with a role chunk, sent with the first token; its finish reason
        comes later in a chunk of its own (``finish``). A completion chunk carries the finish
        reason of its last token.

        Args:
            text: The new text.
            first: Whether these are the request's first tokens.
            finish: How the request ended, when these are its last tokens.

        Returns:
            The events.
        """
        if not self._chat:
            return self._event(_choice(f'"text": {json.dumps(text)}', finish))
        role = ""
        if first:
            role = self._event(_choice(_delta('"assistant"', '""'), None))
        return role + self._event(_choice(_delta("null", json.dumps(text)), None))

    def finish(self, finish: Finish) -> str:
        """The chat stream's finish-reason chunk (empty for completions)."""
        return self._event(_choice(_delta("null", "null"), finish)) if self._chat else ""

    def usage(self, prompt: int, completion: int) -> str:
        """The usage chunk (``stream_options.include_usage``)."""
        body = json.dumps(usage(prompt, completion, exclude_none=not self._chat))
        return f'data: {self._head}], "usage": {body}}}\n\n'


def _delta(role: str, content: str) -> str:
    return (
        f'"delta": {{"role": {role}, "content": {content}, "reasoning_content": null, '
        '"tool_calls": null}'
    )


def _choice(payload: str, finish: Finish | None) -> str:
    reason = json.dumps(finish.reason) if finish else "null"
    return (
        f'{{"index": 0, {payload}, "logprobs": null, "finish_reason": {reason}, '
        '"matched_stop": null}'
    )


def openai_response(
    rid: str, model: str, created: int, chat: bool, text: str, prompt: int, finish: Finish
) -> dict[str, object]:
    """A non-streamed chat or text completion.

    Args:
        rid: Response id.
        model: The request's ``model``.
        created: Unix time.
        chat: Chat completion (else text completion).
        text: Generated text.
        prompt: Prompt tokens.
        finish: How it ended.

    Returns:
        The body.
    """
    choice: dict[str, object] = {"index": 0}
    if chat:
        choice["message"] = {
            "role": "assistant",
            "content": text or None,
            "reasoning_content": None,
            "tool_calls": None,
        }
    else:
        choice["text"] = text
    choice.update(logprobs=None, finish_reason=finish.reason, matched_stop=None)
    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(prompt, finish.length),
        "metadata": {"weight_version": WEIGHT_VERSION},
    }


def native_output(
    rid: str,
    text: str,
    output_ids: list[int],
    prompt: int,
    completion: int,
    cached: int,
    finish: Finish | None,
    e2e_latency: float | None,
) -> dict[str, object]:
    """One output of SGLang's native ``/generate`` (text so far, ids, ``meta_info``).

    Args:
        rid: Request id.
        text: All text generated so far.
        output_ids: New ids (streaming) or all ids.
        prompt: Prompt tokens.
        completion: Tokens generated so far.
        cached: Prompt tokens served from the prefix cache.
        finish: How it ended, ``None`` while running.
        e2e_latency: Seconds from arrival to the end, once finished.

    Returns:
        The body.
    """
    meta: dict[str, object] = {
        "id": rid,
        "finish_reason": finish.native() if finish else None,
        "prompt_tokens": prompt,
        "weight_version": WEIGHT_VERSION,
        "total_retractions": 0,
        "completion_tokens": completion,
        "cached_tokens": cached,
    }
    if e2e_latency is not None:
        meta["e2e_latency"] = e2e_latency
    return {"text": text, "output_ids": output_ids, "meta_info": meta}
