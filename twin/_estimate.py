"""Fast estimates: the scheduler model in virtual time, driven like genai-bench drives a server."""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from twin import _args, _perf, _profile, _replica, _request, _resolve, _stats, _workload
from twin._frontend import Frontend


def request_error(config: _resolve.EngineConfig, input_len: int, max_new: int) -> str | None:
    """The HTTP 400 message SGLang gives a request that cannot be served, if any.

    Args:
        config: Resolved configuration.
        input_len: Prompt tokens.
        max_new: ``max_tokens``.

    Returns:
        The message, or ``None`` when the request is valid.
    """
    if input_len >= config.context_len:
        return (
            f"The input ({input_len} tokens) is longer than the model's context length "
            f"({config.context_len} tokens)."
        )
    if input_len + max_new >= config.context_len:
        return (
            f"Requested token count exceeds the model's maximum context length of "
            f"{config.context_len} tokens. You requested a total of "
            f"{input_len + max_new} tokens: {input_len} tokens from the input messages and "
            f"{max_new} tokens for the completion. Please reduce the number of tokens in "
            "the input messages or the completion to fit within the limit."
        )
    if input_len > config.max_req_input_len:
        return (
            f"Input length ({input_len} tokens) exceeds the maximum allowed length "
            f"({config.max_req_input_len} tokens). Use a shorter input or enable "
            "--allow-auto-truncate."
        )
    return None


def simulate(
    config: _resolve.EngineConfig,
    *,
    scenario: str,
    concurrency: int | None,
    request_rate: float | None,
    num_prompts: int | None,
    max_requests: int | None,
    seed: int,
    lengths: tuple[Sequence[int] | np.ndarray, Sequence[int] | np.ndarray] | None = None,
    ignore_eos: bool = True,
    spawn_rate: float | None = None,
    burstiness: float = 1.0,
    in_order: bool = False,
) -> dict[str, Any]:
    """Runs a workload through the scheduler model in virtual time.

    Args:
        config: Resolved configuration.
        scenario: genai-bench traffic scenario (only a label when ``lengths`` is given).
        concurrency: Closed-loop clients (genai-bench's ``--num-concurrency``).
        request_rate: Poisson arrivals per second.
        num_prompts: Requests all sent at time 0 (``bench_serving --request-rate inf``).
        max_requests: Requests to complete (concurrency) or to send (request rate).
        seed: Seed of length sampling, arrivals and the ``random`` policy.
        lengths: See :func:`estimate`.
        ignore_eos: See :func:`estimate`.
        spawn_rate: See :func:`estimate`.
        burstiness: See :func:`estimate`.
        in_order: See :func:`estimate`.

    Returns:
        ``{"aggregated_metrics": {...}, "scheduler": {...}}``: genai-bench's aggregated
        metrics, and scheduler statistics of the run (retractions, peak running requests,
        peak token usage, KV pool size, running-request cap).
    """
    rng = np.random.default_rng(seed)
    replayed = len(lengths[0]) if in_order and lengths is not None else None
    if concurrency is not None:
        total = max_requests or replayed or max(4 * concurrency, 64)
        # genai-bench's users keep sending until ``total`` requests complete and it drops the
        # ones still in flight; bench_serving sends each prompt once and waits for them all.
        issue = total if replayed else total + concurrency
        sends = _user_starts(concurrency, spawn_rate)
    elif request_rate is not None:
        total = max_requests or replayed or max(64, min(10_000, math.ceil(60 * request_rate)))
        issue = total
        if burstiness == 1.0:
            gaps = rng.exponential(1.0 / request_rate, total)
        else:  # bench_serving --burstiness: gamma gaps of the same mean, shape = burstiness
            gaps = rng.gamma(burstiness, 1.0 / (request_rate * burstiness), total)
        sends = np.cumsum(gaps).tolist()
    else:
        assert num_prompts is not None
        total = issue = num_prompts
        sends = [0.0] * total
    if lengths is None:
        inputs, outputs = _workload.sample_lengths(scenario, issue, rng)
    elif replayed:
        inputs, outputs = np.asarray(lengths[0])[:issue], np.asarray(lengths[1])[:issue]
    else:
        # genai-bench's dataset mode: random.choice over the prompts, with replacement.
        picks = rng.integers(0, len(lengths[0]), issue)
        inputs, outputs = np.asarray(lengths[0])[picks], np.asarray(lengths[1])[picks]
    in_list, out_list = inputs.tolist(), outputs.tolist()
    if ignore_eos:
        max_list = out_list
    else:
        # No max_tokens sent: SGLang's init_req_max_new_tokens fills the context, and the
        # model stops by itself within that (as the twin server does).
        room = min(config.context_len - 1, config.max_total_tokens - 1)
        max_list = [max(1, room - n - 1) for n in in_list]
        out_list = [min(o, m) for o, m in zip(out_list, max_list, strict=True)]

    perf = _perf.PerfModel(config)
    replicas = [_replica.Replica(config, perf, None, seed + i) for i in range(config.dp)]
    frontend = Frontend()
    sent_at: dict[int, float] = {}
    arrivals: list[tuple[float, int, _request.Request]] = []
    ids = itertools.count()
    issued = 0
    errors: dict[int, int] = {}
    finished = 0
    end_time = 0.0
    ttft: list[float] = []
    e2e: list[float] = []
    done_in: list[int] = []
    done_out: list[int] = []
    closed = concurrency is not None

    # Sends not yet made, in time order: the front end must see requests in the order they
    # are sent, so a scheduled send goes before any later one a finished request makes.
    scheduled = collections.deque(sends)

    def send(at: float) -> None:
        while scheduled and scheduled[0] <= at:
            send_one(scheduled.popleft())
        send_one(at)

    def send_one(at: float) -> None:
        # A closed-loop client whose request is rejected sends its next one at once.
        nonlocal issued, finished, end_time
        while issued < issue and finished < total:
            i = issued
            issued += 1
            if request_error(config, in_list[i], max_list[i]) is None:
                arrival = frontend.admit(at, in_list[i])
                req = _request.Request(
                    i, in_list[i], out_list[i], max_list[i], arrival, ignore_eos
                )
                sent_at[i] = at
                heapq.heappush(arrivals, (req.arrival, next(ids), req))
                return
            errors[400] = errors.get(400, 0) + 1
            finished += 1
            end_time = max(end_time, at)
            if not closed or finished >= total:
                return

    rr = 0
    dp = len(replicas)
    peak_running = 0
    peak_usage = 0.0
    while finished < total:
        next_arrival = arrivals[0][0] if arrivals else math.inf
        next_send = scheduled[0] if scheduled else math.inf
        busy = (
            [r for r in replicas if r.busy()]
            if dp > 1
            else (replicas if replicas[0].busy() else [])
        )
        if busy:
            replica = min(busy, key=lambda r: r.clock) if dp > 1 else busy[0]
            clock = replica.clock
        else:
            clock = math.inf
        if next_send <= min(next_arrival, clock):
            if next_send == math.inf:
                break
            send_one(scheduled.popleft())
            continue
        if next_arrival <= clock:
            _, _, req = heapq.heappop(arrivals)
            target = replicas[rr]
            rr = (rr + 1) % dp
            if not target.busy():
                target.clock = max(target.clock, req.arrival)
            target.add(req)
            continue
        until = min(next_arrival, next_send)
        if dp > 1:
            until = min([until] + [r.clock for r in busy if r is not replica])
        step = replica.step(until)
        if step.kind == _request.IDLE:
            raise RuntimeError("scheduler model stalled with queued requests")
        peak_running = max(peak_running, len(replica.running))
        peak_usage = max(peak_usage, replica.token_usage())
        for req in step.finished:
            sent = sent_at.pop(req.rid)
            ttft.append(req.first_token - sent)
            e2e.append(req.done_at - sent)
            done_in.append(req.input_len)
            done_out.append(req.output_len)
            finished += 1
            end_time = max(end_time, req.done_at)
            if finished >= total:
                break
            if closed and issued < issue:
                send(req.done_at)

    if concurrency is not None:
        level = concurrency
    elif num_prompts is not None:
        level = num_prompts
    else:
        level = 0
    metrics = _stats.aggregate(
        scenario=scenario,
        concurrency=level,
        duration=end_time,
        ttft=np.asarray(ttft),
        e2e=np.asarray(e2e),
        num_input=np.asarray(done_in, dtype=float),
        num_output=np.asarray(done_out, dtype=float),
        error_codes=errors,
    )
    if request_rate is not None:
        metrics["request_rate"] = request_rate
    scheduler = {
        "num_retractions": sum(r.retracted_total for r in replicas),
        "peak_running_requests": peak_running,
        "peak_token_usage": peak_usage,
        "max_total_num_tokens": config.max_total_tokens,
        "max_running_requests": config.max_running_requests,
    }
    return {"aggregated_metrics": metrics, "scheduler": scheduler}


def _user_starts(users: int, spawn_rate: float | None) -> list[float]:
    """When each closed-loop user sends its first request (s), as genai-bench's locust starts
    them: ``floor(rate)`` users at once (at least one) every ``floor(rate) / rate`` seconds
    (locust/dispatch.py ``UsersDispatcher``), at ``spawn_rate`` users per second (default: as
    many as there are users, genai-bench's default, so all start together); an infinite
    rate starts them all at once too (bench_serving --max-concurrency, aiperf, genai-perf).

    Users started together send together; the front end (:class:`twin._frontend.Frontend`)
    then spaces their requests by its CPU time per request, so the scheduler's first prefill
    takes the first request alone and the next one the rest.
    """
    rate = spawn_rate if spawn_rate is not None else users
    if math.isinf(rate):
        return [0.0] * users
    batch = max(1, math.floor(rate))
    return [(i // batch) * batch / rate for i in range(users)]


_DAY_S = 86_400.0
# A closed loop simulates 4 x concurrency requests by default, plus one in flight per user.
MAX_CONCURRENCY = _workload.MAX_REQUESTS // 5


def check_load(
    *,
    concurrency: int | None,
    request_rate: float | None,
    num_prompts: int | None,
    max_requests: int | None,
    spawn_rate: float | None,
    burstiness: float,
) -> None:
    """Refuses a load :func:`simulate` cannot run: exactly one of closed-loop users, a request
    rate or a batch of prompts, each with only its own options.

    Raises:
        ValueError: naming the argument.
    """
    modes = [m for m in (concurrency, request_rate, num_prompts) if m is not None]
    if len(modes) != 1:
        raise ValueError("give exactly one of concurrency, request_rate and num_prompts")
    if concurrency is not None and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY:,}")
    if request_rate is not None and not request_rate > 0:
        raise ValueError("request_rate must be > 0")
    if num_prompts is not None and not 1 <= num_prompts <= _workload.MAX_REQUESTS:
        raise ValueError(f"num_prompts must be between 1 and {_workload.MAX_REQUESTS:,}")
    if spawn_rate is not None and (concurrency is None or not spawn_rate > 0):
        raise ValueError("spawn_rate goes with concurrency and must be > 0 (inf: all at once)")
    # Arrivals days apart would only stall the virtual clock (times near 1e300 stop moving).
    if spawn_rate is not None and concurrency is not None and concurrency / spawn_rate > _DAY_S:
        raise ValueError("spawn_rate: starting the users would take over a day; give at least "
                         f"{concurrency / _DAY_S:.3g} users per second")
    if request_rate is not None and request_rate < 1.0 / _DAY_S:
        raise ValueError(f"request_rate must be at least one a day ({1.0 / _DAY_S:.3g} per s)")
    if burstiness != 1.0 and (request_rate is None or not 0 < burstiness < math.inf):
        raise ValueError("burstiness goes with request_rate and must be a positive number")
    if max_requests is not None and (
        not 1 <= max_requests <= _workload.MAX_REQUESTS or num_prompts is not None
    ):
        raise ValueError(f"max_requests must be between 1 and {_workload.MAX_REQUESTS:,} and "
                         "cannot be combined with num_prompts")


def estimate(
    server_args: Mapping[str, object],
    *,
    gpu: str = "H100",
    scenario: str,
    concurrency: int | None = None,
    request_rate: float | None = None,
    num_prompts: int | None = None,
    max_requests: int | None = None,
    seed: int = 0,
    num_gpus: int = 8,
    lengths: tuple[Sequence[int] | np.ndarray, Sequence[int] | np.ndarray] | None = None,
    ignore_eos: bool = True,
    profile: _profile.Profile | str | os.PathLike[str] | None = None,
    spawn_rate: float | None = None,
    burstiness: float = 1.0,
    in_order: bool = False,
) -> dict[str, Any]:
    """Estimates genai-bench's results for a server configuration, without a server.

    Runs the twin's scheduler and performance model in virtual time (no sleeping), with the
    same argument validation and start-up checks as ``python -m twin.launch_server``.

    Args:
        server_args: launch_server flag values keyed by dest name (``model_path``,
            ``tp_size``, ``mem_fraction_static``, ...); ``model_path`` is required.
        gpu: Simulated GPU (``twin.GPUS``).
        scenario: genai-bench traffic scenario, e.g. ``"D(1024,256)"``.
        concurrency: Closed-loop clients, started at ``spawn_rate`` users per second like
            genai-bench's users, each sending its next request when the previous one
            completes, until ``max_requests`` complete (default ``max(4*C, 64)``); requests
            still in flight then are dropped, as genai-bench does.
        request_rate: Arrivals per second of ``max_requests`` requests (default about a
            minute of traffic, at least 64, at most 10,000): Poisson, or gamma with
            ``burstiness``.
        num_prompts: Requests all sent at time 0 (offline throughput).
        max_requests: See ``concurrency`` and ``request_rate``.
        seed: Seed of the length sampling and arrivals.
        num_gpus: GPUs on the simulated host.
        lengths: Explicit ``(input, output)`` token lengths to draw requests from, uniformly
            with replacement (genai-bench's dataset mode), instead of sampling ``scenario``
            (which is then only the label of the result), e.g. :func:`twin.dataset_lengths`
            of a prompt file.
        in_order: Send each of ``lengths`` once, in order, and wait for every request, as
            SGLang's ``bench_serving`` sends its dataset (e.g.
            :func:`twin.bench_serving_random_lengths`): the run is the first
            ``num_prompts`` / ``max_requests`` of them (default all), and a closed loop drops
            nothing at the end.
        ignore_eos: As genai-bench's scenarios send it (true: each request generates exactly
            its output length); false, as its dataset mode sends: no ``max_tokens``, so each
            request may use the context left, and stops at its output length or there.
        spawn_rate: With ``concurrency``: users started per second, as genai-bench's locust
            starts them (``floor(rate)`` at a time every ``floor(rate) / rate`` s); default
            ``concurrency`` (genai-bench's default ``--spawn-rate``), which like
            ``math.inf`` (SGLang's ``bench_serving --max-concurrency``, aiperf, genai-perf)
            starts them all at once. How users start decides whether their prefills stay in
            synchronised waves or spread out, so it moves TTFT a lot.
        burstiness: With ``request_rate``: the shape of gamma-distributed gaps between
            arrivals (``bench_serving --burstiness``); 1 is Poisson, below 1 burstier,
            above 1 more even.
        profile: A fact profile (:func:`twin.load_profile`), or the path of its file, to
            estimate with; default: the one active in this context (:func:`twin.using_profile`),
            if any.

    Returns:
        ``{"aggregated_metrics": {...}, "scheduler": {...}, "not_modelled": [...]}``: the
        first is shaped like the ``aggregated_metrics`` of a genai-bench result file (times
        in seconds); the second holds scheduler statistics a real server would only show in
        its logs (``num_retractions``, ``peak_running_requests``, ``peak_token_usage``,
        ``max_total_num_tokens``, ``max_running_requests``); ``not_modelled`` lists the
        flags set that the twin accepts but does not simulate (their effect is missing).

    Raises:
        ValueError: A flag or argument is invalid, or the profile file is (the message names
            it).
        StartupError: The configuration would fail to start (``kind`` is "oom" or "startup").
    """
    if profile is not None and not isinstance(profile, _profile.Profile):
        profile = _profile.load_profile(profile)
    check_load(concurrency=concurrency, request_rate=request_rate, num_prompts=num_prompts,
               max_requests=max_requests, spawn_rate=spawn_rate, burstiness=burstiness)
    if lengths is None:
        _workload.sample_lengths(scenario, 0, np.random.default_rng(0))
    elif len(lengths[0]) != len(lengths[1]) or len(lengths[0]) == 0:
        raise ValueError("lengths: give equally long, non-empty input and output lengths")
    if in_order:
        sent = num_prompts or max_requests
        if lengths is None:
            raise ValueError("in_order: give the lengths to send in order")
        if sent is not None and sent > len(lengths[0]):
            raise ValueError(f"in_order: {sent} requests asked for, but only "
                             f"{len(lengths[0])} lengths given to send once each")
    args = _args.parse_mapping(server_args, gpu=gpu, num_gpus=num_gpus)
    # No profile given: keep the caller's active one (using_profile(None) would drop it).
    with _profile.using_profile(profile) if profile else contextlib.nullcontext():
        config = _resolve.resolve(args)
        result = simulate(
            config,
            scenario=scenario,
            concurrency=concurrency,
            request_rate=request_rate,
            num_prompts=num_prompts,
            max_requests=max_requests,
            seed=seed,
            lengths=lengths,
            ignore_eos=ignore_eos,
            spawn_rate=spawn_rate,
            burstiness=burstiness,
            in_order=in_order,
        )
    return {**result, "not_modelled": _args.not_modelled(args)}
