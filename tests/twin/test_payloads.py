"""Tests of twin._payloads: response bodies shaped like SGLang 0.5.5's."""

from __future__ import annotations

import json

from twin import _payloads


def _events(text: str) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: ")]


def test_chat_role_chunk_is_sent_with_the_first_token() -> None:
    stream = _payloads.OpenAIStream("id", "m", 1, chat=True)
    first = _events(stream.content(" a", first=True, finish=None))
    assert [e["choices"][0]["delta"] for e in first] == [  # type: ignore[index]
        {"role": "assistant", "content": "", "reasoning_content": None, "tool_calls": None},
        {"role": None, "content": " a", "reasoning_content": None, "tool_calls": None},
    ]
    later = _events(stream.content(" b", first=False, finish=_payloads.Finish("length", 2)))
    assert len(later) == 1 and later[0]["choices"][0]["finish_reason"] is None  # type: ignore[index]
    (finish,) = _events(stream.finish(_payloads.Finish("length", 2)))
    assert finish["choices"][0]["finish_reason"] == "length"  # type: ignore[index]
    assert finish["object"] == "chat.completion.chunk" and finish["usage"] is None
    (usage,) = _events(stream.usage(3, 2))
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens_details"] is None  # type: ignore[index]


def test_completion_stream_ends_its_last_chunk_and_drops_none_from_usage() -> None:
    stream = _payloads.OpenAIStream("id", "m", 1, chat=False)
    (last,) = _events(stream.content(" b", first=False, finish=_payloads.Finish("stop", 7)))
    assert last["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
    assert stream.finish(_payloads.Finish("stop", 7)) == ""
    (usage,) = _events(stream.usage(3, 7))
    assert usage["usage"] == {
        "prompt_tokens": 3,
        "total_tokens": 10,
        "completion_tokens": 7,
        "reasoning_tokens": 0,
    }
    assert _payloads.Finish("stop", 7).native() == {"type": "stop", "matched": None}
