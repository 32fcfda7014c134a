"""Speculative decoding (EAGLE, EAGLE3, NEXTN, STANDALONE, NGRAM): SGLang 0.5.5's start-up
rules for it, and what one draft-and-verify step costs and yields.

A step drafts ``num_steps`` tokens per request with a small draft forward each (EAGLE's head
and DeepSeek's MTP layer are one decoder layer; a standalone draft model a share of the
target; n-gram lookup no GPU work), then verifies ``num_draft_tokens`` tokens per request in
one target forward. Each drafted token is accepted with probability ``accept_rate`` as long
as the ones before it were, and the verify forward adds one token of its own, so a step
yields ``1 + a + a^2 + ... + a^steps`` tokens per request. The twin runs decode a token at a
time, so a step's time is spread over the tokens it yields: TPOT is right on average, while
real servers deliver the accepted tokens in bursts. Not modelled: the draft model's weights
and KV cache (they take a little memory from the KV pool), and tree drafting beyond its
verify cost (``accept_rate`` is the effective per-token rate of the algorithm's tree).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from twin._catalog import ModelSpec
from twin._facts import fact

__all__ = ["Speculative", "add_flags", "resolve"]

# sglang 0.5.5 srt/server_args.py auto_choose_speculative_params: (steps, topk, draft tokens).
_AUTO_DEEPSEEK = (3, 1, 4)
_AUTO_OTHER = (5, 4, 8)
_DEEPSEEK_ARCHS = ("DeepseekV32ForCausalLM", "DeepseekV3ForCausalLM", "DeepseekV2ForCausalLM",
                   "GptOssForCausalLM", "BailingMoeForCausalLM", "BailingMoeV2ForCausalLM")
_MTP_ARCHS = ("DeepseekV32ForCausalLM", "DeepseekV3ForCausalLM")


@dataclasses.dataclass(frozen=True)
class Speculative:
    """A resolved speculative-decoding configuration.

    Attributes:
        algorithm: SGLang's, after its start-up (NEXTN runs as EAGLE).
        num_steps: Draft forwards per step (tokens drafted per request, along the chain).
        topk: Draft branches per step (``--speculative-eagle-topk``).
        draft_tokens: Tokens per request the target verifies per step.
        accept_rate: Chance each drafted token is accepted, given the ones before were.
        draft_layer_share: A draft forward's cost as a share of the target's decoder layers.
    """

    algorithm: str
    num_steps: int
    topk: int
    draft_tokens: int
    accept_rate: float
    draft_layer_share: float

    @property
    def tokens_per_step(self) -> float:
        """Tokens a step yields per request: the accepted chain plus the verify's own."""
        chain = min(self.num_steps, self.draft_tokens - 1)
        return sum(self.accept_rate**i for i in range(chain + 1))


def add_flags(parser: argparse.ArgumentParser, choices: Callable[[str], Any]) -> None:
    """Declares SGLang's speculative-decoding flags (modelled) with its names and defaults."""
    add = parser.add_argument
    add("--speculative-algorithm", default=None, choices=choices("speculative_algorithm"),
        help="draft tokens and verify them in one forward (EAGLE, EAGLE3, NEXTN, ...)")
    add("--speculative-num-steps", type=int, default=None,
        help="draft forwards per step (default: SGLang's choice for the model)")
    add("--speculative-eagle-topk", type=int, default=None, help="draft branches per step")
    add("--speculative-num-draft-tokens", type=int, default=None,
        help="tokens per request the target verifies per step")


def add_twin_flag(group: argparse._ArgumentGroup) -> None:
    """The twin-only ``--speculative-accept-rate`` (SGLang measures it; the twin is told)."""
    group.add_argument(
        "--speculative-accept-rate",
        type=_rate,
        default=None,
        metavar="P",
        help="chance each drafted token is accepted (default: per algorithm, see docs/twin.md)",
    )


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text}: a chance, at least 0 and below 1")
    return value


def resolve(args: argparse.Namespace, model: ModelSpec) -> Speculative | None:
    """Applies SGLang's ``_handle_speculative_decoding`` to ``args`` (as SGLang mutates its
    ServerArgs: running-request cap 48 unless given, overlap scheduler and mixed chunks off)
    and returns the configuration, or None without ``--speculative-algorithm``.

    Raises:
        ValueError: A combination SGLang refuses, with its message.
    """
    algorithm = args.speculative_algorithm
    if algorithm is None:
        return None
    mtp = algorithm == "NEXTN" or (algorithm == "EAGLE" and model.architecture in _MTP_ARCHS)
    if algorithm == "NEXTN":
        algorithm = args.speculative_algorithm = "EAGLE"
    if algorithm in ("STANDALONE", "NGRAM") and args.enable_dp_attention:
        kind = "standalone" if algorithm == "STANDALONE" else "ngram"
        raise ValueError(
            f"Currently {kind} speculative decoding does not support dp attention.")
    if args.max_running_requests is None:
        args.max_running_requests = 48
    # SGLANG_ENABLE_SPEC_V2 is off by default: the overlap scheduler goes.
    args.disable_overlap_schedule = True
    args.enable_mixed_chunk = False
    if algorithm == "NGRAM":
        args.speculative_eagle_topk = args.speculative_ngram_max_bfs_breadth
        if args.speculative_num_draft_tokens is None:
            args.speculative_num_draft_tokens = args.speculative_ngram_max_match_window_size
        args.speculative_num_steps = args.speculative_num_draft_tokens - 1
    else:
        _eagle_params(args, model)
    _check_page_size(args)
    return Speculative(
        algorithm=algorithm,
        num_steps=args.speculative_num_steps,
        topk=args.speculative_eagle_topk,
        draft_tokens=args.speculative_num_draft_tokens,
        accept_rate=_accept_rate(args, algorithm, mtp),
        draft_layer_share=_draft_share(algorithm, model),
    )


def _eagle_params(args: argparse.Namespace, model: ModelSpec) -> None:
    if args.speculative_num_steps is None:
        if args.speculative_eagle_topk is not None or \
                args.speculative_num_draft_tokens is not None:
            raise ValueError(
                "AssertionError: give --speculative-num-steps with --speculative-eagle-topk "
                "and --speculative-num-draft-tokens, or none of them (SGLang then chooses)")
        auto = _AUTO_DEEPSEEK if args.speculative_algorithm == "STANDALONE" or \
            model.architecture in _DEEPSEEK_ARCHS else _AUTO_OTHER
        (args.speculative_num_steps, args.speculative_eagle_topk,
         args.speculative_num_draft_tokens) = auto
    if args.speculative_eagle_topk is None or args.speculative_num_draft_tokens is None:
        raise ValueError("give --speculative-eagle-topk and --speculative-num-draft-tokens "
                         "with --speculative-num-steps")
    backends = (args.attention_backend, args.decode_attention_backend,
                args.prefill_attention_backend)
    if "trtllm_mha" in backends and args.speculative_eagle_topk > 1:
        raise ValueError("trtllm_mha backend only supports topk = 1 for speculative decoding.")
    if args.speculative_eagle_topk == 1 and \
            args.speculative_num_draft_tokens != args.speculative_num_steps + 1:
        args.speculative_num_draft_tokens = args.speculative_num_steps + 1


def _check_page_size(args: argparse.Namespace) -> None:
    if args.speculative_eagle_topk > 1 and (args.page_size or 1) > 1 and \
            args.attention_backend != "flashinfer":
        raise ValueError(
            f"speculative_eagle_topk({args.speculative_eagle_topk}) > 1 with page_size"
            f"({args.page_size}) > 1 is unstable and produces incorrect results for paged "
            "attention backends. This combination is only supported for the 'flashinfer' "
            "backend.")


def _accept_rate(args: argparse.Namespace, algorithm: str, mtp: bool) -> float:
    if args.speculative_accept_rate is not None:
        return float(args.speculative_accept_rate)
    name = "spec_accept_mtp" if mtp else f"spec_accept_{algorithm.lower()}"
    return fact(name)


def _draft_share(algorithm: str, model: ModelSpec) -> float:
    if algorithm == "NGRAM":
        return 0.0
    if algorithm == "STANDALONE":
        return fact("spec_standalone_draft_share")
    return 1.0 / model.layers  # EAGLE's head, DeepSeek's MTP module: one decoder layer
