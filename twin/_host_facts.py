"""The facts of the host side of a server (scheduler CPU time, and the HTTP and tokenizer
front end requests pass before they reach the scheduler), with their units and sources;
merged into ``twin._facts.FACTS``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from twin._fact_types import FITTED_TO_ANCHORS, Fact

__all__ = ["HOST_FACTS"]

HOST_FACTS: Mapping[str, Fact] = MappingProxyType(
    {
        # --- scheduler CPU (hidden by the overlap scheduler while below GPU time) ---
        "cpu_step_s": Fact(
            0.5e-3,
            "s",
            "scheduler CPU time per iteration",
            "derived: lmsys 2024-12-04 blog, overlap gave 1.1x (CPU ~10% of a step)",
        ),
        "cpu_per_req_s": Fact(
            40e-6,
            "s",
            "scheduler/detokenizer CPU time per running request and step",
            f"{FITTED_TO_ANCHORS}: the 0.3.0 offline runs (no overlap scheduler then)",
            calibrated=True,
        ),
        "cpu_stream_s": Fact(
            10e-6,
            "s",
            "CPU time per streamed chunk and request (divided by --stream-interval)",
            "derived: note §1 'higher --stream-interval raises throughput'",
        ),
        # --- front end: HTTP server and TokenizerManager, one process ---
        "frontend_s": Fact(
            2e-3,
            "s",
            "HTTP + IPC latency before a request reaches the scheduler, beyond the front "
            "end's own CPU time (frontend_request_s, tokenize_s_per_token)",
            "note §3: TTFT includes 'tokenizer/HTTP (~ms)'",
        ),
        "frontend_request_s": Fact(
            0.5e-3,
            "s",
            "front-end CPU time per request besides tokenization (request parsing and "
            "normalisation, object creation, send to the scheduler); one process serves "
            "requests one at a time, so requests sent together reach the scheduler apart",
            "derived: FastAPI/uvicorn request handling, about half a millisecond of a core; "
            "sglang#6553: the TokenizerManager is a single-core bottleneck at high "
            "concurrency (hence --tokenizer-worker-num)",
        ),
        "tokenize_s_per_token": Fact(
            0.5e-6,
            "s/token",
            "front-end CPU time per prompt token to tokenize a text prompt",
            "measured: HF tokenizers (Rust) encode ~0.49 us/token on one core of the "
            "development machine (the twin's bundled tokenizer, 7,000-token text)",
        ),
    }
)
