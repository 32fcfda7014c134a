"""Tests of twin._replica: the SGLang 0.5.5 scheduler rules the twin reproduces."""

from __future__ import annotations

import pytest

from twin import _args, _perf, _replica, _request, _resolve
from twin._radix import RadixCache


def _replica_for(cache: bool = False, **server_args: object) -> _replica.Replica:
    args = _args.parse_mapping({"model_path": "Llama-3.1-8B-Instruct", **server_args})
    config = _resolve.resolve(args)
    return _replica.Replica(config, _perf.PerfModel(config), RadixCache() if cache else None)


def _new(
    rid: int, input_len: int, output_len: int, *, ids: bool = False, ignore_eos: bool = True
) -> _request.Request:
    tokens = list(range(input_len)) if ids else None
    return _request.Request(rid, input_len, output_len, output_len, 0.0, ignore_eos, tokens)


def test_prefill_has_priority_and_first_token_comes_from_prefill() -> None:
    rep = _replica_for()
    rep.add(_new(0, 100, 50))
    step = rep.step()
    assert step.kind == _request.PREFILL and step.joined[0].first_token == step.end
    assert rep.generated(step.joined[0]) == 1
    assert rep.step(max_steps=1).kind == _request.DECODE


@pytest.mark.parametrize("overlap", [True, False])
def test_overlap_scheduler_runs_the_launched_decode_step_before_a_new_prefill(
    overlap: bool,
) -> None:
    # sglang 0.5.5 Scheduler.event_loop_overlap launches step N+1 before it reads step N's
    # result: a request received meanwhile is prefilled after N+1; without overlap, at once.
    rep = _replica_for(disable_overlap_schedule=not overlap)
    rep.add(_new(0, 100, 50))
    rep.step()
    rep.step(max_steps=1)
    rep.add(_new(1, 100, 50))
    rep.add(_new(2, 100, 50))  # several arrivals wait for the one launched step
    kinds = [rep.step(max_steps=1).kind for _ in range(3)]
    if overlap:
        assert kinds == [_request.DECODE, _request.PREFILL, _request.DECODE]
    else:
        assert kinds == [_request.PREFILL, _request.DECODE, _request.DECODE]
    # An idle server starts a prefill at once either way.
    idle = _replica_for(disable_overlap_schedule=not overlap)
    idle.add(_new(0, 100, 50))
    assert idle.step().kind == _request.PREFILL


@pytest.mark.parametrize("overlap", [True, False])
def test_overlap_scheduler_admits_a_waiting_request_one_step_after_a_finish(
    overlap: bool,
) -> None:
    rep = _replica_for(disable_overlap_schedule=not overlap, max_running_requests=2)
    for rid, out in ((0, 5), (1, 50), (2, 50)):
        rep.add(_new(rid, 100, out))
    assert [r.rid for r in rep.step().joined] == [0, 1]  # 2 waits for a slot
    finish = rep.step()
    assert [r.rid for r in finish.finished] == [0]
    kinds = [rep.step(max_steps=1).kind for _ in range(2)]
    # The step launched before request 0 was seen to finish runs before 2's prefill.
    assert kinds == ([_request.DECODE, _request.PREFILL] if overlap else
                     [_request.PREFILL, _request.DECODE])


@pytest.mark.parametrize("overlap", [True, False])
def test_overlap_scheduler_keeps_the_gpu_one_step_after_the_last_finish(overlap: bool) -> None:
    rep = _replica_for(disable_overlap_schedule=not overlap)
    rep.add(_new(0, 100, 20))
    rep.step()
    last = rep.step()
    assert last.finished and not rep.busy()
    step_time = (last.end - last.start) / last.steps
    # The launched step holds the GPU: a request arriving at once is prefilled after it.
    assert rep.clock - last.end == (pytest.approx(step_time, rel=0.1) if overlap else 0.0)


def test_decode_run_jumps_to_the_next_finish() -> None:
    rep = _replica_for()
    rep.add(_new(0, 100, 10))
    rep.add(_new(1, 100, 30))
    rep.step()
    step = rep.step()
    assert step.kind == _request.DECODE and step.steps == 9
    assert [r.rid for r in step.finished] == [0]
    assert rep.step(max_steps=1).steps == 1


def test_chunked_prefill_one_request_at_a_time() -> None:
    rep = _replica_for(chunked_prefill_size=4096)
    rep.add(_new(0, 10_000, 5))
    rep.add(_new(1, 6_000, 5))
    sizes = []
    while rep.chunked is not None or rep.waiting:
        step = rep.step()
        assert step.kind == _request.PREFILL
        sizes.append(step.new_tokens)
    # 4096 + 4096 + (1808 + 2288 of the next one) + its last 3712 tokens
    assert sizes == [4096, 4096, 4096, 3712]


def test_smaller_chunks_take_more_forwards() -> None:
    def forwards(chunk: int) -> int:
        rep = _replica_for(chunked_prefill_size=chunk)
        rep.add(_new(0, 8000, 2))
        count = 0
        while rep.busy():
            count += rep.step().kind == _request.PREFILL
        return count

    assert forwards(1024) == 8 and forwards(8192) == 1


def test_mixed_chunk_decodes_during_prefill() -> None:
    rep = _replica_for(enable_mixed_chunk=True)
    rep.add(_new(0, 100, 50))
    first = rep.step().joined[0]
    rep.add(_new(1, 3000, 50))
    assert rep.step().kind == _request.PREFILL
    assert rep.generated(first) == 2


def test_max_running_requests_caps_the_batch() -> None:
    rep = _replica_for(max_running_requests=3)
    for i in range(5):
        rep.add(_new(i, 50, 100))
    rep.step()
    assert len(rep.running) == 3 and len(rep.waiting) == 2
    assert rep.step().kind == _request.DECODE


def test_new_token_ratio_decays_linearly_to_min() -> None:
    rep = _replica_for(schedule_conservativeness=0.5)
    assert rep.ratio == pytest.approx(0.35)
    rep.add(_new(0, 10, 2000))
    rep.step()
    rep.step(max_steps=300)
    assert rep.ratio == pytest.approx(0.35 - 300 * (0.35 - 0.35 * 0.14) / 600)
    rep.step(max_steps=1000)
    assert rep.ratio == pytest.approx(0.35 * 0.14)


def test_retraction_frees_memory_and_resets_ratio() -> None:
    rep = _replica_for(max_total_tokens=3000)
    old = _new(0, 100, 2000, ignore_eos=False)
    rep.add(old)
    rep.step()
    rep.step(max_steps=199)
    rep.ratio = rep.ratio_min  # an optimistic ratio admits a request that will not fit
    young = _new(1, 100, 1500, ignore_eos=False)
    rep.add(young)
    assert rep.step().kind == _request.DECODE  # the step launched before it arrived
    assert rep.step().kind == _request.PREFILL
    retracted: list[_request.Request] = []
    for _ in range(2000):
        retracted = rep.step(max_steps=1).retracted
        if retracted:
            break
    # Fewest generated tokens first (then the longest prompt) goes back to the queue.
    assert retracted == [young] and young.state == _request.WAITING
    assert young.prefill_len == 100 + young.generated
    # Reset to (decoded + 20 * bs) / max_new over the remaining batch, before this step.
    assert rep.ratio == pytest.approx((rep.generated(old) - 1 + 20) / 2000)
    assert rep.retracted_total == 1


def test_radix_cache_reuses_prefixes() -> None:
    rep = _replica_for(cache=True)
    rep.add(_new(0, 1000, 2, ids=True))
    while rep.busy():
        rep.step()
    rep.add(_new(1, 1000, 2, ids=True))
    step = rep.step()
    assert step.cached_tokens == 999 and step.new_tokens == 1


def test_abort_frees_the_request() -> None:
    rep = _replica_for()
    req = _new(0, 100, 50)
    rep.add(req)
    rep.step()
    used = rep.used_tokens()
    rep.abort(req)
    assert used > 0 and rep.used_tokens() == 0 and not rep.busy()


@pytest.mark.parametrize("policy", ["fcfs", "lpm"])
def test_lpm_serves_the_longest_cached_prefix_first(policy: str) -> None:
    # One request at a time, so the first prefill shows which waiting request the policy
    # picked: fcfs the oldest, lpm the one sharing the longest prefix with the radix cache.
    rep = _replica_for(cache=True, schedule_policy=policy, max_running_requests=1)
    rep.add(_new(0, 1000, 2, ids=True))
    while rep.busy():
        rep.step()
    fresh = _request.Request(1, 500, 2, 2, 0.0, True, list(range(5000, 5500)))
    shared = _new(2, 1000, 2, ids=True)
    rep.add(fresh)
    rep.add(shared)
    step = rep.step()
    expected = {"fcfs": (fresh, 0), "lpm": (shared, 999)}[policy]
    assert (step.admitted[0], step.cached_tokens) == expected
