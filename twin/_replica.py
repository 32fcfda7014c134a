"""One SGLang scheduler (one DP replica) as a discrete-event model.

Each call to ``Replica.step`` is one scheduler iteration of SGLang 0.5.5 (research note §2):
try to build a prefill batch (strict priority, ``PrefillAdder`` rules, one chunked request at
a time, optional mixed decode), else run decode for every running request, retracting
requests first when the KV pool cannot hold the next token.

Running requests are kept as aggregates so a decode step costs O(1): every running request
gains one token per decode step, so a request's progress is ``dstep - base`` and the batch's
summed context grows by the batch size. A decode "run" jumps over many identical steps at once,
up to the next finish, the next arrival (``until``) or the end of the KV pool.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random

from twin import _perf
from twin._admission import PeakCheck
from twin._facts import fact
from twin._radix import Node, RadixCache
from twin._request import (
    ABORTED,
    CHUNKED,
    DECODE,
    DONE,
    IDLE,
    PREFILL,
    RUNNING,
    WAITING,
    Request,
    Step,
)
from twin._resolve import EngineConfig

_CLIP = int(fact("clip_max_new_tokens"))
_RETRACT_STEPS = int(fact("retract_decode_steps"))
_LPM_MAX_QUEUE = int(fact("lpm_fcfs_queue_len"))


class Replica:
    """One scheduler with its KV pool, running batch and waiting queue.

    Args:
        config: Resolved engine configuration.
        perf: Step-time model of ``config``.
        cache: Prefix cache (only when requests carry token ids and the cache is on).
        seed: Seed of the ``random`` schedule policy.
    """

    def __init__(
        self,
        config: EngineConfig,
        perf: _perf.PerfModel,
        cache: RadixCache | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.perf = perf
        self.cache = cache
        self._rng = random.Random(seed)
        self._seq = itertools.count()
        self.clock = 0.0
        self.dstep = 0
        self.waiting: list[Request] = []
        self.running: dict[int, Request] = {}
        self.chunked: Request | None = None
        self._finish_heap: list[tuple[int, int, Request]] = []
        self._unclip_heap: list[tuple[int, int, Request]] = []
        self._ctx_off = 0
        self._used_off = 0
        self._chunk_alloc = 0
        self._rem_key_sum = 0
        self._unclipped = 0
        self._clipped = 0
        self.batch_is_full = False
        self.ratio_init = min(fact("init_new_token_ratio") * config.conservativeness, 1.0)
        self.ratio_min = self.ratio_init * fact("min_new_token_ratio_factor")
        self._ratio_decay = (self.ratio_init - self.ratio_min) / fact(
            "new_token_ratio_decay_steps"
        )
        self.ratio = self.ratio_init
        self.retracted_total = 0
        self.last_retracted = 0
        # The server's --fault cold-prefill: seconds the first prefill forward of more than
        # ``cold_above`` tokens takes beyond the model.
        self.cold_prefill_s = 0.0
        self.cold_above = 0
        # With the overlap scheduler a decode step launches the next one before its result
        # is read (sglang 0.5.5 Scheduler.event_loop_overlap): true after a decode step.
        self._after_decode = False

    # ----- public state -----

    def busy(self) -> bool:
        """Whether anything is queued, being prefilled or running."""
        return bool(self.waiting or self.running or self.chunked is not None)

    def add(self, req: Request) -> None:
        """Queues a request (it is considered at the next iteration).

        Args:
            req: The request; its ``arrival`` should not be after ``clock``.
        """
        req.state = WAITING
        self.waiting.append(req)

    def generated(self, req: Request) -> int:
        """Tokens a request has generated so far.

        Args:
            req: A request of this replica.

        Returns:
            The count.
        """
        if req.state == RUNNING:
            return self.dstep - req.base
        return req.generated

    def used_tokens(self) -> int:
        """KV tokens held by running and chunked requests (incl. locked cache)."""
        locked = self.cache.locked if self.cache is not None else 0
        return self._used_off + len(self.running) * self.dstep + self._chunk_alloc + locked

    def token_usage(self) -> float:
        """SGLang's token usage: (total - available - evictable) / total."""
        return self.used_tokens() / self.config.max_total_tokens

    def context_tokens(self) -> int:
        """Summed context length of the running batch."""
        return self._ctx_off + len(self.running) * self.dstep

    def abort(self, req: Request) -> None:
        """Removes a request wherever it is (client went away) and frees its KV.

        Args:
            req: A request of this replica.
        """
        if req.state == WAITING:
            self.waiting.remove(req)
        elif req.state == CHUNKED:
            self._chunk_alloc -= req.prefilled
            self.chunked = None
            self._unlock(req)
        elif req.state == RUNNING:
            self._leave(req)
            self._unlock(req)
            self.batch_is_full = False
        req.state = ABORTED

    # ----- memory -----

    def _free_for_alloc(self) -> int:
        # available + evictable = total - private - locked cache
        return self.config.max_total_tokens - self.used_tokens()

    def _allocate(self, tokens: int) -> None:
        cache = self.cache
        if cache is None or tokens <= 0:
            return
        used = self._used_off + len(self.running) * self.dstep + self._chunk_alloc
        available = self.config.max_total_tokens - used - cache.total
        if available < tokens:
            cache.evict(tokens - available)

    def _unlock(self, req: Request) -> None:
        if self.cache is not None and req.node is not None:
            self.cache.lock(req.node, -1)
        req.node = None

    def _reserve(self) -> float:
        # Tokens the running batch is expected to still need: ratio * sum(min(rem, CLIP)).
        heap, d = self._unclip_heap, self.dstep
        while heap and heap[0][0] <= d:
            entry, _, req = heapq.heappop(heap)
            if req.state == RUNNING and req.unclip_dstep == entry:
                self._clipped -= 1
                self._unclipped += 1
                self._rem_key_sum += req.rem_key
                req.unclip_dstep = 0
        remaining = _CLIP * self._clipped + self._rem_key_sum - self._unclipped * d
        return self.ratio * remaining

    # ----- running batch bookkeeping -----

    def _join(self, req: Request) -> None:
        d = self.dstep
        req.state = RUNNING
        req.base = d - req.generated
        self._ctx_off += req.prefill_len - d
        self._used_off += req.prefill_len - req.prefix_len - d
        req.finish_dstep = req.base + req.output_len
        heapq.heappush(self._finish_heap, (req.finish_dstep, next(self._seq), req))
        req.rem_key = req.max_new + req.base
        if req.rem_key - d > _CLIP:
            req.unclip_dstep = req.rem_key - _CLIP
            self._clipped += 1
            heapq.heappush(self._unclip_heap, (req.unclip_dstep, next(self._seq), req))
        else:
            req.unclip_dstep = 0
            self._unclipped += 1
            self._rem_key_sum += req.rem_key
        self.running[req.rid] = req

    def _leave(self, req: Request) -> None:
        d = self.dstep
        del self.running[req.rid]
        joined_at = req.base + req.generated
        self._ctx_off -= req.prefill_len - joined_at
        self._used_off -= req.prefill_len - req.prefix_len - joined_at
        if req.unclip_dstep:
            self._clipped -= 1
        else:
            self._unclipped -= 1
            self._rem_key_sum -= req.rem_key
        req.generated = d - req.base

    def _finish(self, req: Request, now: float) -> None:
        req.state = DONE
        req.done_at = now
        cache = self.cache
        if cache is not None and req.token_ids is not None:
            cache.insert(req.token_ids)
        self._unlock(req)

    # ----- the iteration -----

    def step(self, until: float = math.inf, max_steps: int = 1 << 40) -> Step:
        """Runs one scheduler iteration starting at ``clock``.

        Args:
            until: Simulated time of the next outside event (an arrival); a decode run stops
                at the first step boundary at or after it.
            max_steps: Most decode steps to cover in one call (1 for real-time serving).

        Returns:
            What happened; ``clock`` is moved to its end.
        """
        start = self.clock
        if self._after_decode and self.waiting and self.perf.overlap:
            # Waiting requests (new ones, or ones the last step freed memory for) are
            # prefilled after the decode step already launched, with those that arrive
            # meanwhile.
            self._after_decode = False
            if self.running:
                return self._run_decode(start, math.inf, 1)
        batch = self._schedule_prefill()
        self._after_decode = batch is None and bool(self.running)
        if batch is not None:
            return self._run_prefill(batch, start)
        if not self.running:
            return Step(IDLE, start, start)
        return self._run_decode(start, until, max_steps)

    def _order_waiting(self) -> None:
        policy, waiting = self.config.schedule_policy, self.waiting
        if policy == "lof":
            waiting.sort(key=lambda r: -r.max_new)
        elif policy == "random":
            self._rng.shuffle(waiting)
        elif policy in ("lpm", "dfs-weight") and self.cache is not None:
            if len(waiting) <= _LPM_MAX_QUEUE:
                waiting.sort(key=lambda r: -self._match(r)[0])

    def _match(self, req: Request) -> tuple[int, Node | None]:
        if self.cache is None or req.token_ids is None:
            return 0, None
        return self.cache.match(req.token_ids[: req.prefill_len - 1])

    def _peak_states(self) -> PeakCheck:
        d, ratio = self.dstep, self.ratio
        lefts, occupied = [], []
        for r in self.running.values():
            gen = d - r.base
            left = r.max_new * (1.0 if r.ignore_eos else ratio) - gen
            if left > 0:
                lefts.append(left)
                occupied.append(r.input_len + gen)
        return PeakCheck(lefts, occupied)

    def _schedule_prefill(self) -> list[tuple[Request, int, bool]] | None:
        config = self.config
        if (self.batch_is_full or not self.waiting) and self.chunked is None:
            return None
        running_bs = len(self.running)
        cap = config.max_running_requests
        if running_bs >= cap and self.chunked is None:
            self.batch_is_full = True
            return None
        mixed = running_bs if config.mixed_chunk and running_bs else 0
        rem_input = config.max_prefill_tokens - mixed
        chunk = config.chunked_prefill_size
        rem_chunk = chunk - mixed if chunk is not None else None
        free = self._free_for_alloc()
        rem_total = free - self._reserve() - mixed
        cur_rem = free - mixed
        items: list[tuple[Request, int, bool]] = []
        chunked = self.chunked
        if chunked is not None:
            left = chunked.prefill_len - chunked.prefix_len - chunked.prefilled
            n = left if rem_chunk is None or left <= rem_chunk else max(rem_chunk, 1)
            items.append((chunked, n, n == left))
            rem_total -= n + min(chunked.max_new - chunked.generated, _CLIP)
            cur_rem -= n
            rem_input -= n
            if rem_chunk is not None:
                rem_chunk -= n
        taken = 0
        if self.waiting and not (chunked is not None and not items[0][2]):
            self._order_waiting()
            # SGLang takes a stricter peak-memory path for ignore_eos without radix cache.
            peak: PeakCheck | None = None
            for req in self.waiting:
                if running_bs + len(items) >= cap:
                    self.batch_is_full = True
                    break
                if rem_input <= 0 or (rem_chunk is not None and rem_chunk <= 0):
                    break
                prefix, node = self._match(req) if req.prefilled == 0 else (req.prefix_len, None)
                extend = req.prefill_len - prefix
                need = extend + min(req.max_new - req.generated, _CLIP)
                alone = not items and not running_bs
                if req.ignore_eos and not config.radix_cache:
                    if peak is None:
                        peak = self._peak_states()
                    fits = peak.add_and_check(
                        req.max_new - req.generated,
                        req.input_len + req.generated,
                        cur_rem - req.input_len,
                    )
                    if not fits and not alone:
                        self.batch_is_full = True
                        break
                elif need >= rem_total and not alone:
                    self.batch_is_full = True
                    break
                if extend > rem_input and items:
                    break
                req.prefix_len = prefix
                if node is not None and self.cache is not None:
                    self.cache.lock(node, 1)
                    req.node = node
                taken += 1
                if rem_chunk is None or extend <= rem_chunk:
                    items.append((req, extend, True))
                    rem_total -= need
                    cur_rem -= extend
                    rem_input -= extend
                    if rem_chunk is not None:
                        rem_chunk -= extend
                    if rem_total <= 0:
                        self.batch_is_full = True
                        break
                else:
                    items.append((req, rem_chunk, False))
                    break
            if taken:
                del self.waiting[:taken]
        if not items:
            return None
        self._allocate(sum(n for _, n, _ in items))
        return items

    def _run_prefill(self, items: list[tuple[Request, int, bool]], start: float) -> Step:
        perf = self.perf
        tokens = attention = 0.0
        cached = finishing = 0
        for req, n, completes in items:
            done_before = req.prefix_len + req.prefilled
            attention += perf.attention(n, done_before)
            tokens += n
            if req.prefilled == 0:
                cached += req.prefix_len
            finishing += completes
        running = self.running
        decode_bs = len(running) if self.config.mixed_chunk else 0
        context = self.context_tokens() if decode_bs else 0
        duration = perf.prefill_time(
            int(tokens), attention, finishing, len(items), decode_bs, context
        )
        if self.cold_prefill_s and tokens > self.cold_above:
            duration += self.cold_prefill_s
            self.cold_prefill_s = 0.0
        end = start + duration
        self.clock = end
        step = Step(
            PREFILL, start, end, 1, new_tokens=int(tokens), cached_tokens=cached, batch=len(items)
        )
        if decode_bs:
            self._allocate(decode_bs)
            self.dstep += 1
            self._pop_finished(step, end)
        self.chunked = None
        for req, n, completes in items:
            if req.scheduled < 0:  # once: SGLang keeps a retracted request's first entry
                req.scheduled = start
                step.admitted.append(req)
            req.prefilled += n
            if not completes:
                req.state = CHUNKED
                self._chunk_alloc += n
                self.chunked = req
                continue
            if req.state == CHUNKED:
                self._chunk_alloc -= req.prefilled - n
            req.generated += 1
            if req.first_token < 0:
                req.first_token = end
            step.joined.append(req)
            if req.generated >= req.output_len:
                req.generated = req.output_len
                self._finish(req, end)
                step.finished.append(req)
            else:
                self._join(req)
        return step

    def _pop_finished(self, step: Step, now: float) -> None:
        heap, d = self._finish_heap, self.dstep
        while heap and heap[0][0] <= d:
            _, _, req = heapq.heappop(heap)
            if req.state == RUNNING and req.finish_dstep <= d:
                self._leave(req)
                self._finish(req, now)
                step.finished.append(req)
        if step.finished:
            self.batch_is_full = False

    def _next_finish(self) -> int:
        heap = self._finish_heap
        while heap:
            d, _, req = heap[0]
            if req.state == RUNNING and req.finish_dstep == d:
                return d - self.dstep
            heapq.heappop(heap)
        return 1 << 40

    def _retract(self) -> list[Request]:
        # SGLang retract_decode: fewest generated tokens first, longest prompt among equals,
        # until the pool has retract_decode_steps tokens of headroom per remaining request.
        d = self.dstep
        order = sorted(
            self.running.values(), key=lambda r: (d - r.base, -r.input_len), reverse=True
        )
        retracted = []
        while len(order) > 1 and self._free_for_alloc() < _RETRACT_STEPS * len(order):
            req = order.pop()
            self._leave(req)
            self._unlock(req)
            req.prefill_len = req.input_len + req.generated
            req.prefilled = 0
            req.prefix_len = 0
            req.state = WAITING
            retracted.append(req)
        self.waiting.extend(retracted)
        left = self.running.values()
        decoded = sum(d - r.base for r in left)
        max_new = sum(r.max_new for r in left)
        self.ratio = min(1.0, (decoded + _RETRACT_STEPS * len(left)) / max(max_new, 1))
        self.retracted_total += len(retracted)
        self.last_retracted = len(retracted)
        self.batch_is_full = False
        return retracted

    def _run_decode(self, start: float, until: float, max_steps: int) -> Step:
        retracted: list[Request] = []
        bs = len(self.running)
        free = self._free_for_alloc()
        if free < bs:
            retracted = self._retract()
            bs = len(self.running)
            free = self._free_for_alloc()
        perf = self.perf
        gpu, cpu = perf.decode_coeffs(bs)
        context = self.context_tokens()
        steps = max(1, min(max_steps, self._next_finish(), free // bs))
        if until < math.inf and steps > 1:
            steps = min(
                steps,
                _perf.steps_until(
                    gpu, cpu, perf.decode_kv_per_token, context, bs, until - start, perf.overlap
                ),
            )
        duration = _perf.run_time(
            gpu, cpu, perf.decode_kv_per_token, context, bs, steps, perf.overlap
        )
        self._allocate(bs * steps)
        self.dstep += steps
        decays = steps - 1 if retracted else steps
        self.ratio = max(self.ratio - decays * self._ratio_decay, self.ratio_min)
        end = start + duration
        self.clock = end
        step = Step(DECODE, start, end, steps, retracted=retracted, batch=bs)
        self._pop_finished(step, end)
        if perf.overlap and not self.running:
            # The step launched before the whole batch was seen to finish still runs.
            kv = perf.decode_kv_per_token
            self.clock += _perf.run_time(gpu, cpu, kv, context + bs * steps, bs, 1, True)
        return step
