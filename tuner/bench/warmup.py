"""A trial's warm-up: one unmeasured wave of requests before its first level.

SGLang warms up at start-up with a prompt of a few tokens (and ``/health`` generates one
token), so the first real batch is the first to run the larger prefill shapes, whose kernels
(Triton fused MoE, DeepGEMM, FlashInfer) compile or autotune on first use. Measured, that
cost lands in the first level's TTFT: the sgl-cookbook DeepSeek-R1 8xB200 page shows the same
16 prompts at a TTFT p99 of 840 ms in a first run and 268 ms in a later one. Peers warm up
too: SGLang's ``bench_serving --warmup-requests`` (1 by default), aiperf and genai-perf's
``--warmup-request-count``. One wave at the first level's lengths and concurrency runs the
shapes that level will run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import numpy as np

from tuner.events import TrialWarmedUp

__all__ = ["MAX_CONNECTIONS", "WarmUp", "prompt_lengths", "send"]

logger = logging.getLogger(__name__)
# Tokens each warm-up request generates, as SGLang's own warm-up request: decode batch shapes
# are captured in CUDA graphs at start-up, prefill shapes are the cold ones.
_MAX_NEW_TOKENS = 8
# Requests in flight at once: one prefill batch holds at most --chunked-prefill-size tokens,
# so a wave beyond a few hundred prompts runs no new shape, only more of the same.
MAX_CONNECTIONS = 256
# Token ids drawn for the prompts: below every served vocabulary (the smallest are 32,000),
# above the special tokens, and random, so no prompt is a prefix-cache hit of another.
_TOKEN_IDS = (1_000, 30_000)


@dataclass(frozen=True)
class WarmUp:
    """What a warm-up did.

    Attributes:
        sent: requests sent.
        failed: requests that got no answer or an error status.
        unanswered: requests that got no HTTP answer at all (refused, cut off, timed out):
            what a server that is dying looks like.
        seconds: wall time until the last answer (or the timeout).
        error: the first failure, for the log; None when none failed.
    """

    sent: int
    failed: int
    unanswered: int
    seconds: float
    error: str | None = None

    def event(self) -> TrialWarmedUp:
        """The study event's record of this wave."""
        return {"requests": self.sent, "failed": self.failed, "seconds": self.seconds,
                "error": self.error}


def prompt_lengths(
    scenarios: Sequence[str], count: int, seed: int = 0, *, dataset: np.ndarray | None = None
) -> list[int]:
    """Prompt lengths of ``count`` requests spread round-robin over the rung's scenarios.

    Args:
        scenarios: genai-bench scenarios (``dataset`` draws from ``dataset``'s lengths).
        count: requests in the wave.
        seed: seed of the draw.
        dataset: the prompt file's input lengths, for the ``dataset`` scenario.
    """
    from twin import sample_lengths

    rng = np.random.default_rng(seed)
    drawn = []  # per scenario, one draw of the requests it gets
    for j, scenario in enumerate(scenarios):
        share = len(range(j, count, len(scenarios)))
        if scenario == "dataset":
            assert dataset is not None and len(dataset)
            drawn.append(np.maximum(1, rng.choice(dataset, share)))
        else:
            drawn.append(sample_lengths(scenario, share, rng)[0])
    return [int(drawn[i % len(scenarios)][i // len(scenarios)]) for i in range(count)]


def send(endpoint: str, lengths: Sequence[int], *, timeout_s: float, seed: int = 0) -> WarmUp:
    """Sends one SGLang ``/generate`` request per prompt length, all at once, and waits for
    them all (or ``timeout_s``). Failures are counted, not raised: the warm-up measures nothing,
    and the level that follows sees a broken server for itself.
    """
    started = time.monotonic()
    try:
        statuses, errors = asyncio.run(
            asyncio.wait_for(_send_all(endpoint, lengths, np.random.default_rng(seed)), timeout_s)
        )
    except TimeoutError:
        statuses, errors = [], [f"no answer within {timeout_s:.0f} s"] * len(lengths)
    failed = len(errors) + len(statuses)
    first = errors[0] if errors else statuses[0] if statuses else None
    done = WarmUp(len(lengths), failed, len(errors), time.monotonic() - started, first)
    logger.info(
        "warm-up of %s: %d requests, %d failed, %.1f s%s",
        endpoint,
        done.sent,
        done.failed,
        done.seconds,
        f" ({done.error})" if done.error else "",
    )
    return done


async def _send_all(
    endpoint: str, lengths: Sequence[int], rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    # Failures as (error statuses, requests with no answer). A prompt is drawn only when its
    # request may go and is dropped with it (a failure is kept as text, not as an exception
    # whose traceback would hold the prompt), so memory holds MAX_CONNECTIONS prompts.
    gate = asyncio.Semaphore(MAX_CONNECTIONS)
    statuses: list[str] = []
    errors: list[str] = []

    async def one(client: httpx.AsyncClient, n: int) -> None:
        async with gate:
            body = {
                "input_ids": rng.integers(*_TOKEN_IDS, n).tolist(),
                "sampling_params": {"max_new_tokens": _MAX_NEW_TOKENS, "ignore_eos": True},
            }
            try:
                answer = await client.post("/generate", json=body)
            except httpx.HTTPError as e:
                errors.append(f"{type(e).__name__}: {e}")
                return
            if answer.status_code != 200:
                statuses.append(f"HTTP {answer.status_code}")

    limits = httpx.Limits(max_connections=MAX_CONNECTIONS)
    async with httpx.AsyncClient(base_url=endpoint, limits=limits, timeout=None) as client:
        await asyncio.gather(*(one(client, n) for n in lengths))
    return statuses, errors
