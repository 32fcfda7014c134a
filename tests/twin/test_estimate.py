"""Tests of twin.estimate: the scheduler model in virtual time responds like SGLang."""

from __future__ import annotations

import time
from typing import Any

import pytest

import twin
from twin import _estimate

MODEL = "Llama-3.1-8B-Instruct"


def _run(
    server_args: dict[str, Any] | None = None, *, gpu: str = "H100", **workload: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    result = twin.estimate({"model_path": MODEL, **(server_args or {})}, gpu=gpu, **workload)
    return result["aggregated_metrics"], result["scheduler"]


def _output_tput(metrics: dict[str, Any]) -> float:
    return float(metrics["mean_output_throughput_tokens_per_s"])


def test_result_has_genai_bench_shape() -> None:
    metrics, scheduler = _run(scenario="D(1024,256)", concurrency=8)
    for key in (
        "scenario",
        "num_concurrency",
        "run_duration",
        "requests_per_second",
        "mean_output_throughput_tokens_per_s",
        "mean_input_throughput_tokens_per_s",
        "mean_total_tokens_throughput_tokens_per_s",
        "num_requests",
        "num_completed_requests",
        "num_error_requests",
        "error_rate",
        "stats",
    ):
        assert key in metrics
    assert metrics["num_concurrency"] == 8 and metrics["scenario"] == "D(1024,256)"
    assert metrics["num_requests"] == 64  # default max(4 * C, 64)
    for key in (
        "ttft",
        "tpot",
        "e2e_latency",
        "output_latency",
        "num_input_tokens",
        "num_output_tokens",
    ):
        assert set(metrics["stats"][key]) >= {
            "min",
            "max",
            "mean",
            "stddev",
            "sum",
            "p25",
            "p50",
            "p75",
            "p90",
            "p95",
            "p99",
        }
    assert metrics["stats"]["num_output_tokens"]["mean"] == 256
    assert scheduler["max_total_num_tokens"] > 0


def test_more_concurrency_more_throughput_and_tpot() -> None:
    low, _ = _run(scenario="D(512,128)", concurrency=2)
    high, _ = _run(scenario="D(512,128)", concurrency=32)
    assert _output_tput(high) > 5 * _output_tput(low)
    assert high["stats"]["tpot"]["mean"] > low["stats"]["tpot"]["mean"]


def test_max_running_requests_caps_throughput() -> None:
    free, _ = _run(scenario="D(1024,256)", concurrency=64, max_requests=256)
    capped, scheduler = _run(
        {"max_running_requests": 8}, scenario="D(1024,256)", concurrency=64, max_requests=256
    )
    assert scheduler["peak_running_requests"] == 8
    assert _output_tput(capped) < 0.5 * _output_tput(free)
    assert capped["stats"]["ttft"]["mean"] > 5 * free["stats"]["ttft"]["mean"]


def test_larger_kv_pool_admits_more_and_retracts_less() -> None:
    work: dict[str, Any] = {"scenario": "D(1024,512)", "concurrency": 64, "max_requests": 256}
    small, small_sched = _run({"mem_fraction_static": 0.3}, **work)
    large, large_sched = _run({"mem_fraction_static": 0.85}, **work)
    assert small_sched["num_retractions"] > 0 and large_sched["num_retractions"] == 0
    assert large_sched["peak_running_requests"] > small_sched["peak_running_requests"]
    assert _output_tput(large) > _output_tput(small)


def test_chunked_prefill_size_changes_ttft() -> None:
    work: dict[str, Any] = {"scenario": "D(4096,128)", "concurrency": 8, "max_requests": 64}
    small, _ = _run({"chunked_prefill_size": 512}, **work)
    large, _ = _run({"chunked_prefill_size": 8192}, **work)
    assert small["stats"]["ttft"]["mean"] > 1.1 * large["stats"]["ttft"]["mean"]


def test_disabling_cuda_graph_slows_decode() -> None:
    graph, _ = _run(scenario="D(256,256)", concurrency=16)
    eager, _ = _run({"disable_cuda_graph": True}, scenario="D(256,256)", concurrency=16)
    assert eager["stats"]["tpot"]["mean"] > 1.15 * graph["stats"]["tpot"]["mean"]


def test_tensor_parallel_is_faster_per_request_for_70b() -> None:
    def latency(tp: int, gpu: str, **extra: object) -> float:
        metrics, _ = _run(
            {"model_path": "Llama-3.1-70B-Instruct", "tp_size": tp, **extra},
            gpu=gpu,
            scenario="D(1024,256)",
            concurrency=1,
            max_requests=4,
        )
        return float(metrics["stats"]["e2e_latency"]["mean"])

    assert latency(2, "H200") < 0.7 * latency(1, "H200", mem_fraction_static=0.95)
    assert latency(4, "H100") < 0.7 * latency(2, "H100", mem_fraction_static=0.9)
    assert latency(8, "H100") < latency(4, "H100")


def test_fp8_kv_cache_doubles_tokens() -> None:
    work: dict[str, Any] = {"scenario": "D(1024,512)", "concurrency": 128, "max_requests": 256}
    bf16, bf16_sched = _run({"mem_fraction_static": 0.4}, **work)
    fp8, fp8_sched = _run({"mem_fraction_static": 0.4, "kv_cache_dtype": "fp8_e4m3"}, **work)
    assert fp8_sched["max_total_num_tokens"] == pytest.approx(
        2 * bf16_sched["max_total_num_tokens"], abs=2
    )
    assert _output_tput(fp8) > _output_tput(bf16)


def test_fp8_weights_speed_up_decode_and_free_memory() -> None:
    work: dict[str, Any] = {"scenario": "D(512,256)", "concurrency": 1, "max_requests": 4}
    bf16, bf16_sched = _run(**work)
    fp8, fp8_sched = _run({"quantization": "fp8"}, **work)
    assert fp8["stats"]["tpot"]["mean"] < 0.75 * bf16["stats"]["tpot"]["mean"]
    assert fp8_sched["max_total_num_tokens"] > 1.1 * bf16_sched["max_total_num_tokens"]


def test_data_parallel_replicas_add_throughput() -> None:
    one, _ = _run(scenario="D(512,256)", concurrency=256, max_requests=512)
    two, _ = _run({"dp_size": 2}, scenario="D(512,256)", concurrency=256, max_requests=512)
    assert _output_tput(two) > 1.5 * _output_tput(one)


@pytest.mark.parametrize("policy", ["lpm", "random", "lof", "dfs-weight", "priority"])
def test_every_policy_runs(policy: str) -> None:
    metrics, _ = _run({"schedule_policy": policy}, scenario="N(300,100)/(100,50)", concurrency=16)
    assert metrics["num_completed_requests"] == 64


def test_modes_and_determinism() -> None:
    offline, _ = _run(scenario="U(100,1000)/(10,300)", num_prompts=200)
    assert offline["num_completed_requests"] == 200 and offline["num_concurrency"] == 200
    again, _ = _run(scenario="U(100,1000)/(10,300)", num_prompts=200)
    assert again == offline
    other, _ = _run(scenario="U(100,1000)/(10,300)", num_prompts=200, seed=1)
    assert other != offline
    rate, _ = _run(scenario="D(128,64)", request_rate=5.0, max_requests=100)
    assert rate["request_rate"] == 5.0 and 15 < rate["run_duration"] < 25


def test_how_users_start_decides_ttft() -> None:
    # Issue 14: users started together (genai-bench's default spawn rate, bench_serving
    # --max-concurrency, aiperf) keep their 1024-token prefills in waves; started one a second
    # they spread out.
    load = {"scenario": "D(1024,256)", "concurrency": 16, "max_requests": 64}
    default, _ = _run(**load)
    burst, _ = _run(**load, spawn_rate=float("inf"))
    assert default == burst  # genai-bench's default: as many users per second as there are
    ramp, _ = _run(**load, spawn_rate=1.0)
    assert burst["stats"]["ttft"]["mean"] > 4 * ramp["stats"]["ttft"]["mean"]
    # The front end passes simultaneous requests on one at a time: the first of a wave is
    # prefilled alone, the rest together after it.
    assert burst["stats"]["ttft"]["min"] < burst["stats"]["ttft"]["p50"] / 5


def test_users_start_in_locusts_batches() -> None:
    # locust's UsersDispatcher: floor(rate) users at a time, floor(rate) / rate s apart.
    assert _estimate._user_starts(5, 2.5) == [0.0, 0.0, 0.8, 0.8, 1.6]
    assert _estimate._user_starts(3, 0.5) == [0.0, 2.0, 4.0]
    assert _estimate._user_starts(3, None) == [0.0, 0.0, 0.0]


def test_bursty_arrivals_queue_more_than_poisson() -> None:
    load = {"scenario": "D(1024,256)", "request_rate": 10.0, "max_requests": 300}
    poisson, _ = _run(**load)
    bursty, _ = _run(**load, burstiness=0.2)
    even, _ = _run(**load, burstiness=20.0)
    assert bursty["stats"]["ttft"]["p99"] > poisson["stats"]["ttft"]["p99"] \
        > even["stats"]["ttft"]["p99"]


def test_requests_longer_than_the_context_fail() -> None:
    metrics, _ = _run(
        {"context_length": 1000}, scenario="D(900,200)", concurrency=2, max_requests=10
    )
    assert metrics["num_error_requests"] == 10 and metrics["error_codes_frequency"] == {400: 10}
    assert metrics["error_rate"] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"concurrency": 2, "num_prompts": 3},
        {"concurrency": 0},
        {"num_prompts": 5, "max_requests": 3},
        {"request_rate": -1.0},
        {"request_rate": 1.0, "spawn_rate": 4.0},
        {"concurrency": 200, "spawn_rate": 1e-300},  # the virtual clock would stall
        {"request_rate": 1e-300},
        {"concurrency": 4, "spawn_rate": 0.0},
        {"concurrency": 4, "burstiness": 0.5},
        {"request_rate": 1.0, "burstiness": -1.0},
        # Counts that would exhaust memory before an answer (a typo, not a workload).
        {"num_prompts": 10**12},
        {"request_rate": 1.0, "max_requests": 10**12},
        {"concurrency": 10**9},
    ],
)
def test_bad_workload_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        twin.estimate({"model_path": MODEL}, scenario="D(10,10)", **kwargs)  # type: ignore[arg-type]


def test_startup_failure_raises_startup_error() -> None:
    with pytest.raises(twin.StartupError) as exc:
        _run({"mem_fraction_static": 0.1}, scenario="D(10,10)", concurrency=1)
    assert exc.value.kind == "oom"
    with pytest.raises(twin.StartupError) as exc:
        _run({"tp_size": 16}, scenario="D(10,10)", concurrency=1)
    assert exc.value.kind == "startup"


def test_speed() -> None:
    # A two-minute workload in well under a second; >= 10,000 requests per CPU-second.
    start = time.process_time()
    metrics, _ = _run(scenario="D(1024,256)", concurrency=16, max_requests=1000)
    short = time.process_time() - start
    assert metrics["run_duration"] > 120 and short < 0.5
    start = time.process_time()
    metrics, _ = _run(scenario="N(480,240)/(300,150)", concurrency=32, max_requests=10_000)
    assert metrics["num_requests"] / (time.process_time() - start) > 10_000


def test_explicit_lengths_stand_in_for_a_scenario() -> None:
    args = {"model_path": "Llama-3.1-8B-Instruct"}
    shaped = twin.estimate(args, scenario="D(300,40)", concurrency=8, max_requests=64)
    given = twin.estimate(args, scenario="D(300,40)", concurrency=8, max_requests=64,
                          lengths=([300, 300], [40, 40]))
    assert given["aggregated_metrics"] == shaped["aggregated_metrics"]
    with pytest.raises(ValueError, match="lengths"):
        twin.estimate(args, scenario="dataset", concurrency=8, lengths=([1, 2], [3]))


def test_without_ignore_eos_outputs_stop_within_the_context() -> None:
    # Dataset mode: no max_tokens, so a request may use the context left; an output longer
    # than that stops at the limit (context 1000 here) instead of failing with HTTP 400.
    args = {"model_path": "Llama-3.1-8B-Instruct", "context_length": 1000}
    result = twin.estimate(args, scenario="dataset", concurrency=4, max_requests=32,
                           lengths=([900], [500]), ignore_eos=False)
    stats = result["aggregated_metrics"]["stats"]["num_output_tokens"]
    assert result["aggregated_metrics"]["num_error_requests"] == 0
    assert stats["max"] == 1000 - 1 - 900 - 1
    with_eos = twin.estimate(args, scenario="D(900,500)", concurrency=4, max_requests=32)
    assert with_eos["aggregated_metrics"]["num_error_requests"] > 0


def test_in_order_lengths_replay_a_bench_serving_run_request_by_request() -> None:
    # bench_serving sends its 80 prompts once each, 16 at a time, and waits for them all;
    # genai-bench's users draw with replacement and it drops what is in flight at the end.
    lengths = twin.bench_serving_random_lengths(1000, 1000, 80)
    args = {"model_path": MODEL}
    replay = twin.estimate(args, scenario="U(1,1000)/(1,1000)", concurrency=16,
                           spawn_rate=float("inf"), lengths=lengths, in_order=True)
    metrics = replay["aggregated_metrics"]
    assert metrics["num_completed_requests"] == 80
    assert metrics["stats"]["num_input_tokens"]["sum"] == 39668  # the page's total
    assert metrics["stats"]["num_output_tokens"]["sum"] == 40725
    drawn = twin.estimate(args, scenario="U(1,1000)/(1,1000)", concurrency=16,
                          spawn_rate=float("inf"), lengths=lengths, max_requests=80)
    assert drawn["aggregated_metrics"]["stats"]["num_input_tokens"]["sum"] != 39668
    # The first ten of the prompts, one at a time: each TTFT is its own prompt's.
    first = twin.estimate(args, scenario="x", concurrency=1, max_requests=10,
                          lengths=lengths, in_order=True)["aggregated_metrics"]["stats"]
    assert first["num_input_tokens"]["sum"] == 6101
    with pytest.raises(ValueError, match="in_order: 81 requests"):
        twin.estimate(args, scenario="x", concurrency=16, max_requests=81,
                      lengths=lengths, in_order=True)
    with pytest.raises(ValueError, match="in_order: give the lengths"):
        twin.estimate(args, scenario="D(10,10)", concurrency=1, in_order=True)
