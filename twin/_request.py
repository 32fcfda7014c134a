"""Scheduler-side records: one request's state and what one scheduler iteration did."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from twin._radix import Node

# Request states.
WAITING, CHUNKED, RUNNING, DONE, ABORTED = range(5)
# Kinds of scheduler iteration.
PREFILL, DECODE, IDLE = range(3)


class Request:
    """Scheduler state of one request; small on purpose (one per simulated request).

    Args:
        rid: Unique id.
        input_len: Prompt tokens.
        output_len: Tokens it will generate before stopping.
        max_new: ``max_tokens`` of the request (admission reserves against it).
        arrival: Simulated time it reaches the scheduler.
        ignore_eos: The request's ``ignore_eos`` (changes admission without radix cache).
        token_ids: Prompt ids for the prefix cache, or ``None``.
    """

    __slots__ = (
        "arrival",
        "base",
        "client",
        "done_at",
        "finish_dstep",
        "first_token",
        "generated",
        "ignore_eos",
        "input_len",
        "max_new",
        "node",
        "output_len",
        "prefill_len",
        "prefilled",
        "prefix_len",
        "rem_key",
        "rid",
        "scheduled",
        "state",
        "token_ids",
        "unclip_dstep",
    )

    def __init__(
        self,
        rid: int,
        input_len: int,
        output_len: int,
        max_new: int,
        arrival: float,
        ignore_eos: bool = True,
        token_ids: Sequence[int] | None = None,
    ) -> None:
        self.rid = rid
        self.input_len = input_len
        self.output_len = output_len
        self.max_new = max_new
        self.arrival = arrival
        self.ignore_eos = ignore_eos
        self.token_ids = token_ids
        self.state = WAITING
        self.generated = 0
        self.prefill_len = input_len
        self.prefilled = 0
        self.prefix_len = 0
        self.node: Node | None = None
        self.first_token = -1.0
        self.scheduled = -1.0
        self.done_at = -1.0
        self.base = 0
        self.finish_dstep = 0
        self.unclip_dstep = 0
        self.rem_key = 0
        self.client: object = None


@dataclasses.dataclass
class Step:
    """What one scheduler iteration did.

    Attributes:
        kind: ``PREFILL``, ``DECODE`` or ``IDLE``.
        start: Simulated start time.
        end: Simulated end time.
        steps: Decode steps covered (1 for a prefill forward).
        joined: Requests that got their first token of this round at ``end``.
        finished: Requests that finished at ``end``.
        retracted: Requests sent back to the queue before this step.
        admitted: Requests in their first prefill forward (the end of their queue time).
        new_tokens: Prompt tokens computed (prefill).
        cached_tokens: Prompt tokens served from the prefix cache (prefill).
        batch: Requests in the forward (new ones for prefill, running ones for decode).
    """

    kind: int
    start: float
    end: float
    steps: int = 0
    joined: list[Request] = dataclasses.field(default_factory=list)
    finished: list[Request] = dataclasses.field(default_factory=list)
    retracted: list[Request] = dataclasses.field(default_factory=list)
    admitted: list[Request] = dataclasses.field(default_factory=list)
    new_tokens: int = 0
    cached_tokens: int = 0
    batch: int = 0
