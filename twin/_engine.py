"""The scheduler model in (scaled) real time: one asyncio task per DP replica.

Simulated time ``t`` maps to wall time ``origin + t / time_scale``. Each replica task runs
one scheduler iteration, sleeps until the iteration's end in wall time and then hands the new
tokens to the requests' streams. Sleeps target a fixed origin, so lateness never accumulates.
The HTTP layer reports how late each request's first chunk reached the socket compared with
its simulated time (timer oversleep plus the server's own processing); the engine wakes that
much earlier, so that what clients measure, times the time scale, matches the simulation.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Sequence

from twin import _perf, _replica, _request
from twin._facts import fact
from twin._frontend import Frontend
from twin._metrics import ServerMetrics
from twin._radix import RadixCache
from twin._resolve import EngineConfig

_log = logging.getLogger("twin.scheduler")


class Stream:
    """Delivery state of one request on the HTTP side.

    Attributes:
        req: The scheduler request.
        queue: ``(tokens, finished, sim_time)`` items, one per chunk to send.
        sent: Tokens handed to the queue so far.
        sent_at: Simulated time of the last chunk.
        streaming: Whether the client streams (otherwise only the end is delivered).
        log_metrics: Whether the tokenizer's metrics count it (not for health checks).
        received: Simulated time the HTTP handler received it.
    """

    __slots__ = (
        "log_metrics", "queue", "received", "replica", "req", "sent", "sent_at", "streaming"
    )

    def __init__(
        self,
        req: _request.Request,
        replica: int,
        streaming: bool,
        log_metrics: bool,
        received: float,
    ) -> None:
        self.req = req
        self.received = received
        self.replica = replica
        self.streaming = streaming
        self.log_metrics = log_metrics
        self.queue: asyncio.Queue[tuple[int, bool, float]] = asyncio.Queue()
        self.sent = 0
        self.sent_at = 0.0


class ClockWatch:
    """How far the replica loops run behind their virtual clocks, in wall seconds.

    All replicas share one event loop, so the engine is behind while any replica is; time
    behind is counted once however many replicas are.

    Attributes:
        behind_s: Wall seconds spent behind by more than ``clock_lag_tolerance_s``.
    """

    def __init__(self, replicas: int) -> None:
        self._tolerance = fact("clock_lag_tolerance_s")
        self._lags = [0.0] * replicas
        self._checked = time.monotonic()
        self.behind_s = 0.0

    @property
    def lag(self) -> float:
        """The largest lag of a replica at its last check (0 when idle or on time)."""
        return max(self._lags)

    def check(self, index: int, lag: float) -> float:
        """Records a replica's lag after an iteration; returns wall seconds newly behind.

        Args:
            index: The replica.
            lag: Wall time now minus the wall time of the iteration's simulated end.
        """
        now = time.monotonic()
        self._lags[index] = max(lag, 0.0)
        worst = self.lag
        added = 0.0
        if worst > self._tolerance:
            # Lag grows at most as fast as wall time: it crossed the tolerance no earlier
            # than worst - tolerance ago, and the previous check saw the state until then.
            added = min(now - self._checked, worst - self._tolerance)
        self.behind_s += added
        self._checked = now
        return added

    def idle(self, index: int) -> None:
        """Notes that a replica waits for work: it cannot be behind."""
        self._lags[index] = 0.0
        if not any(self._lags):
            self._checked = time.monotonic()


class Engine:
    """DP replicas behind round-robin, served in scaled real time.

    Args:
        config: Resolved configuration.
        time_scale: Simulated seconds per wall second.
        metrics: Prometheus metrics, or ``None`` when ``--enable-metrics`` is off.
        decode_log_interval: Decode steps between "Decode batch" log lines.
        seed: Seed of the ``random`` schedule policy.

    Attributes:
        gen_throughput: Generated tokens per simulated second of each replica, as of its
            last "Decode batch" log line.
        clock: How far the replica loops run behind their virtual clocks.
        last_output: Wall time (``time.monotonic``) of the last output of any request.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        time_scale: float,
        metrics: ServerMetrics | None,
        decode_log_interval: int,
        seed: int = 0,
    ) -> None:
        self.config = config
        self.scale = time_scale
        self.metrics = metrics
        perf = _perf.PerfModel(config)
        self.replicas = [
            _replica.Replica(config, perf, RadixCache() if config.radix_cache else None, seed + i)
            for i in range(config.dp)
        ]
        self._pending: list[list[tuple[float, int, _request.Request]]] = [
            [] for _ in self.replicas
        ]
        self._wake = [asyncio.Event() for _ in self.replicas]
        self._ids = itertools.count()
        self._rr = 0
        self._frontend = Frontend()
        self._interval = config.stream_interval
        self._log_every = decode_log_interval
        # Wall seconds chunks are delivered early to cancel the server's own latency.
        self._lead = 0.0004
        self.origin = time.monotonic()
        self.gen_throughput = [0.0] * len(self.replicas)
        self.clock = ClockWatch(len(self.replicas))
        self.last_output = 0.0
        self._force_interval = int(fact("force_stream_interval"))

    def now(self) -> float:
        """Current simulated time."""
        return (time.monotonic() - self.origin) * self.scale

    def submit(
        self,
        *,
        received: float,
        input_ids: Sequence[int],
        max_new: int,
        output_len: int,
        ignore_eos: bool,
        streaming: bool,
        log_metrics: bool = True,
    ) -> Stream:
        """Queues a request on the next replica (round-robin).

        Args:
            received: Simulated time the HTTP handler received it.
            input_ids: Prompt token ids.
            max_new: ``max_tokens``.
            output_len: Tokens it will generate.
            ignore_eos: The request's ``ignore_eos``.
            streaming: Whether every chunk or only the end is delivered.
            log_metrics: Whether the tokenizer's metrics count it.

        Returns:
            Its stream.
        """
        index = self._rr
        self._rr = (index + 1) % len(self.replicas)
        ids = tuple(input_ids)
        req = _request.Request(
            next(self._ids),
            len(ids),
            output_len,
            max_new,
            self._frontend.admit(received, len(ids)),
            ignore_eos,
            ids,
        )
        stream = Stream(req, index, streaming, log_metrics, received)
        req.client = stream
        heapq.heappush(self._pending[index], (req.arrival, req.rid, req))
        self._wake[index].set()
        return stream

    def abort(self, stream: Stream) -> None:
        """Drops a request whose client went away.

        Args:
            stream: Its stream.
        """
        req = stream.req
        if req.state in (_request.DONE, _request.ABORTED):
            return
        if self.metrics is not None and stream.log_metrics:
            self.metrics.num_aborted_requests.inc()
        pending = self._pending[stream.replica]
        entry = next((e for e in pending if e[2] is req), None)
        if entry is not None:
            pending.remove(entry)
            heapq.heapify(pending)
            req.state = _request.ABORTED
        else:
            self.replicas[stream.replica].abort(req)

    def flush_cache(self) -> bool:
        """Empties the prefix caches when nothing runs (SGLang's ``/flush_cache``).

        Returns:
            Whether the caches were flushed.
        """
        if any(r.busy() for r in self.replicas):
            return False
        for replica in self.replicas:
            if replica.cache is not None:
                replica.cache = RadixCache()
        return True

    async def run(self) -> None:
        """Runs all replicas until cancelled."""
        await asyncio.gather(*(self._run(i) for i in range(len(self.replicas))))

    def wall(self, sim_time: float) -> float:
        """Wall-clock (``time.monotonic``) time of a simulated time."""
        return self.origin + sim_time / self.scale

    def note_lag(self, lag: float) -> None:
        """Records how late (wall seconds) a chunk reached the socket; steers ``_lead``.

        Args:
            lag: ``time.monotonic()`` after the write minus ``wall(chunk's sim time)``.
        """
        # Integral control: the lead converges to the mean raw lag, so lags average zero.
        self._lead = min(max(self._lead + 0.2 * lag, 0.0), 0.003)

    async def _sleep_until(self, sim_time: float) -> None:
        delay = self.wall(sim_time) - time.monotonic() - self._lead
        await asyncio.sleep(delay if delay > 0 else 0)

    async def _run(self, index: int) -> None:
        replica, pending, wake = self.replicas[index], self._pending[index], self._wake[index]
        tag = f"DP{index} TP0" if len(self.replicas) > 1 else "TP0"
        log_state = {"steps": 0, "tokens": 0, "since": 0.0}
        clock = self.clock
        while True:
            if not replica.busy():
                clock.idle(index)
                while pending and pending[0][2].state == _request.ABORTED:
                    heapq.heappop(pending)
                if not pending:
                    wake.clear()
                    await wake.wait()
                    continue
                first = pending[0][0]
                delay = self.wall(first) - time.monotonic() - self._lead
                if delay > 0:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), delay)
                    continue
                replica.clock = max(replica.clock, first)
            while pending and pending[0][0] <= replica.clock:
                _, _, req = heapq.heappop(pending)
                if req.state != _request.ABORTED:
                    replica.add(req)
            step = replica.step(max_steps=1)
            if step.kind == _request.IDLE:
                await asyncio.sleep(0)
                continue
            await self._sleep_until(step.end)
            behind = clock.check(index, time.monotonic() - self.wall(step.end))
            self._deliver(replica, step)
            self._report(index, step, tag, log_state)
            if self.metrics is not None:
                self.metrics.clock_lag.set(clock.lag)
                if behind:
                    self.metrics.clock_behind.inc(behind)

    def _deliver(self, replica: _replica.Replica, step: _request.Step) -> None:
        now, interval, metrics = step.end, self._interval, self.metrics
        for req in step.finished:
            stream = req.client
            if not isinstance(stream, Stream):
                continue
            self._push(stream, req.output_len, True, now)
            if metrics is not None and stream.log_metrics:
                metrics.e2e.observe(now - stream.received)
                metrics.prompt_tokens.inc(req.input_len)
                metrics.generation_tokens.inc(req.output_len)
                metrics.cached_tokens.inc(req.prefix_len)
                metrics.num_requests.inc()
        dstep, force = replica.dstep, self._force_interval
        for req in replica.running.values():
            stream = req.client
            if not isinstance(stream, Stream):
                continue
            generated = dstep - req.base
            if stream.streaming:
                due = generated > stream.sent and (
                    stream.sent == 0 or generated - stream.sent >= interval
                )
            else:
                # SGLang outputs a non-streamed request every force_stream_interval tokens:
                # its tokenizer metrics (TTFT too) see those outputs, the client does not.
                due = generated // force > stream.sent // force
            if due:
                self._push(stream, generated, False, now)

    def _push(self, stream: Stream, generated: int, finished: bool, now: float) -> None:
        metrics = self.metrics if stream.log_metrics else None
        tokens = generated - stream.sent
        self.last_output = time.monotonic()
        if metrics is not None and tokens > 0:
            if stream.sent == 0:
                metrics.ttft.observe(now - stream.received)
            else:
                gap = (now - stream.sent_at) / tokens
                for _ in range(tokens):
                    metrics.itl.observe(gap)
        stream.sent = generated
        stream.sent_at = now
        if stream.streaming or finished:
            stream.queue.put_nowait((tokens, finished, now))

    def _report(self, index: int, step: _request.Step, tag: str, state: dict[str, float]) -> None:
        replica = self.replicas[index]
        config, metrics = self.config, self.metrics
        queued = len(replica.waiting)
        if step.retracted:
            _log.info(
                "[%s] KV cache pool is full. Retract requests. #retracted_reqs: %d, "
                "#new_token_ratio: %.4f",
                tag,
                len(step.retracted),
                replica.ratio,
            )
        if step.kind == _request.PREFILL:
            _log.info(
                "[%s] Prefill batch. #new-seq: %d, #new-token: %d, #cached-token: %d, "
                "token usage: %.2f, #running-req: %d, #queue-req: %d",
                tag,
                step.batch,
                step.new_tokens,
                step.cached_tokens,
                replica.token_usage(),
                len(replica.running),
                queued,
            )
            if metrics is not None:
                scheduler = metrics.schedulers[index]
                total = step.new_tokens + step.cached_tokens
                scheduler.cache_hit_rate.set(step.cached_tokens / total if total else 0.0)
                for req in step.admitted:
                    for histogram in scheduler.queue_time:
                        histogram.observe(req.scheduled - req.arrival)
                self._update_gauges(index, None)
            return
        state["steps"] += step.steps
        state["tokens"] += step.batch * step.steps
        if state["steps"] < self._log_every:
            return
        elapsed = step.end - state["since"]
        throughput = state["tokens"] / elapsed if elapsed > 0 else 0.0
        graph = 0 < step.batch <= (config.cuda_graph_bs[-1] if config.cuda_graph_bs else 0)
        _log.info(
            "[%s] Decode batch. #running-req: %d, #token: %d, token usage: %.2f, "
            "cuda graph: %s, gen throughput (token/s): %.2f, #queue-req: %d",
            tag,
            len(replica.running),
            replica.used_tokens(),
            replica.token_usage(),
            graph,
            throughput,
            queued,
        )
        state.update(steps=0, tokens=0, since=step.end)
        self.gen_throughput[index] = throughput
        if metrics is not None:
            metrics.schedulers[index].is_cuda_graph.set(1.0 if graph else 0.0)
            self._update_gauges(index, throughput)

    def _update_gauges(self, index: int, throughput: float | None) -> None:
        assert self.metrics is not None
        scheduler, replica = self.metrics.schedulers[index], self.replicas[index]
        scheduler.num_running_reqs.set(len(replica.running))
        scheduler.num_queue_reqs.set(len(replica.waiting))
        scheduler.num_used_tokens.set(replica.used_tokens())
        scheduler.token_usage.set(replica.token_usage())
        scheduler.num_retracted_reqs.set(replica.last_retracted)
        if throughput is not None:
            scheduler.gen_throughput.set(throughput)
