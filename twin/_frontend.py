"""The front end a request passes before the scheduler: SGLang's HTTP server and
TokenizerManager, one process that parses and tokenizes requests one at a time.

Requests sent together therefore reach the scheduler one after another, a front end's CPU
time apart; the scheduler starts prefilling the first while the rest are still coming, so a
wave of simultaneous requests splits into a short first prefill and a longer second one.
Both the estimator and the twin's HTTP server charge it, in virtual time, with these facts
(the server's own Python is lighter than SGLang's, and its time is the twin's, not SGLang's).
Tokenization is charged for every prompt, as for the text prompts genai-bench sends.
"""

from __future__ import annotations

from twin._facts import fact


class Frontend:
    """The single front-end process of one server, in virtual time."""

    def __init__(self) -> None:
        self._free = 0.0
        self._per_request = fact("frontend_request_s")
        self._per_token = fact("tokenize_s_per_token")
        self._latency = fact("frontend_s")

    def admit(self, sent: float, input_len: int) -> float:
        """When a request sent at ``sent`` (s) with ``input_len`` prompt tokens reaches the
        scheduler: after the requests before it, its own parsing and tokenization, and the
        HTTP and IPC latency."""
        start = max(sent, self._free)
        self._free = start + self._per_request + self._per_token * input_len
        return self._free + self._latency
