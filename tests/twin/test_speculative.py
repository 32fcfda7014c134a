"""Speculative decoding in the twin (issue 14): SGLang 0.5.5's start-up rules for it, and the
trade-off it makes: fewer decode steps for more work per step, a gain at small batches that
turns into a loss once the verify forwards are compute-bound."""

from __future__ import annotations

from typing import Any

import pytest

import twin

MODEL = "Llama-3.1-8B-Instruct"


def _resolved(**flags: Any) -> dict[str, Any]:
    return twin.resolve_server_args({"model_path": MODEL, **flags})


def _tpot_ms(users: int, **flags: Any) -> float:
    result = twin.estimate({"model_path": MODEL, **flags}, scenario="D(512,256)",
                           concurrency=users, max_requests=max(4 * users, 32))
    return float(result["aggregated_metrics"]["stats"]["tpot"]["mean"]) * 1e3


def test_sglang_chooses_the_parameters_and_caps_the_batch() -> None:
    eagle = _resolved(speculative_algorithm="EAGLE")
    # auto_choose_speculative_params: (5, 4, 8) for Llama; 48 running requests; no overlap
    assert (eagle["speculative_num_steps"], eagle["speculative_eagle_topk"],
            eagle["speculative_num_draft_tokens"]) == (5, 4, 8)
    assert eagle["max_running_requests"] == 48 and eagle["disable_overlap_schedule"] is True
    assert _resolved(speculative_algorithm="EAGLE", max_running_requests=96)[
        "max_running_requests"] == 96
    mtp = twin.resolve_server_args({"model_path": "DeepSeek-V3", "tp_size": 8,
                                    "speculative_algorithm": "NEXTN"}, gpu="H200")
    assert mtp["speculative_algorithm"] == "EAGLE"  # SGLang runs NEXTN as EAGLE
    assert (mtp["speculative_num_steps"], mtp["speculative_eagle_topk"],
            mtp["speculative_num_draft_tokens"]) == (3, 1, 4)
    # a chain (topk 1) verifies steps + 1 tokens, whatever was asked
    chain = _resolved(speculative_algorithm="EAGLE3", speculative_num_steps=3,
                      speculative_eagle_topk=1, speculative_num_draft_tokens=9)
    assert chain["speculative_num_draft_tokens"] == 4


@pytest.mark.parametrize(("flags", "words"), [
    ({"speculative_algorithm": "EAGLE", "speculative_eagle_topk": 4}, "speculative-num-steps"),
    ({"speculative_algorithm": "EAGLE", "attention_backend": "trtllm_mha"},
     "trtllm_mha backend only supports topk = 1"),
    ({"speculative_algorithm": "EAGLE", "page_size": 16}, "page_size(16) > 1 is unstable"),
    ({"speculative_algorithm": "STANDALONE", "enable_dp_attention": True, "dp_size": 2,
      "tp_size": 2}, "standalone speculative decoding does not support dp attention"),
    ({"speculative_algorithm": "EAGLE", "speculative_accept_rate": 1.5}, "a chance"),
])
def test_what_sglang_refuses_is_refused_with_its_message(flags: dict[str, Any],
                                                         words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        twin.resolve_server_args({"model_path": MODEL, **flags}, gpu="B200")


def test_the_gain_shrinks_with_the_batch_and_turns_into_a_loss() -> None:
    gain = {users: _tpot_ms(users) / _tpot_ms(users, speculative_algorithm="EAGLE")
            for users in (1, 48)}
    assert gain[1] > 1.6 and gain[1] > gain[48] > 1.0
    big = {"max_running_requests": 256}  # break-even near 128 at EAGLE's default acceptance
    assert _tpot_ms(256, speculative_algorithm="EAGLE", **big) > _tpot_ms(256, **big)
    # drafts the target mostly rejects cost more than they save
    assert _tpot_ms(48, speculative_algorithm="EAGLE", speculative_accept_rate=0.2) > \
        _tpot_ms(48, max_running_requests=48)
    # a better drafter (higher acceptance) is faster at the same steps
    assert _tpot_ms(8, speculative_algorithm="EAGLE", speculative_accept_rate=0.9) < \
        _tpot_ms(8, speculative_algorithm="EAGLE")


def test_speculative_flags_are_modelled_now() -> None:
    result = twin.estimate({"model_path": MODEL, "speculative_algorithm": "EAGLE"},
                           scenario="D(128,32)", concurrency=2, max_requests=8)
    assert not {"speculative_algorithm", "speculative_num_steps"} & set(result["not_modelled"])
