"""SGLang's admission check for ``ignore_eos`` requests without a radix cache."""

from __future__ import annotations

import numpy as np


class PeakCheck:
    """SGLang's add_one_req_ignore_eos: can the pool hold every request at its peak?

    Requests are assumed to finish in order of tokens left; when the i-th finishes, each of
    the ``n - i`` still running has grown by its own tokens left, and the finished ones have
    freed what they occupied.
    """

    def __init__(self, lefts: list[float], occupied: list[int]) -> None:
        order = np.argsort(lefts, kind="stable")
        self._left = np.asarray(lefts, dtype=float)[order]
        self._occupied = np.asarray(occupied, dtype=float)[order]

    def add_and_check(self, left: float, occupied: int, free: int) -> bool:
        """Adds a candidate request and checks every request still fits at its peak.

        Args:
            left: Tokens the candidate may still generate.
            occupied: KV tokens the candidate holds once prefilled.
            free: KV tokens free for the running requests and the candidate.

        Returns:
            Whether the pool holds them all.
        """
        if left > 0:
            at = int(np.searchsorted(self._left, left, side="right"))
            self._left = np.insert(self._left, at, left)
            self._occupied = np.insert(self._occupied, at, occupied)
        n = len(self._left)
        if n == 0:
            return True
        live = np.arange(n, 0, -1, dtype=float)
        freed = np.concatenate(([0.0], np.cumsum(self._occupied)[:-1]))
        return bool(np.all(free + freed - self._left * live > live))
