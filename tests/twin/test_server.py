"""Tests of the twin's HTTP server: SGLang's API, start-up, logs, faults and signals."""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from tests.twin import support
from twin import _metrics, _tokenizer

MODEL = "Llama-3.1-8B-Instruct"


def _events(response: httpx.Response) -> list[dict[str, object]]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[6:]))
    return events


@pytest.fixture(scope="module")
def server() -> object:
    with support.running_twin(
        "--model-path",
        f"meta-llama/{MODEL}",
        "--time-scale",
        "20",
        "--served-model-name",
        "twin-model",
        "--enable-metrics",
        "--stream-interval",
        "4",
        "--context-length",
        "4096",
    ) as url:
        yield url


def _server_args_fields(wheel: Any) -> set[str]:
    module = wheel.module("sglang/srt/server_args.py")
    cls = next(n for n in module.body if isinstance(n, ast.ClassDef) and n.name == "ServerArgs")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}  # type: ignore[union-attr]


def test_models_health_and_server_info(server: str, sglang_wheel: Any) -> None:
    models = httpx.get(f"{server}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["twin-model"]
    assert httpx.get(f"{server}/health").status_code == 200
    assert httpx.get(f"{server}/health_generate").status_code == 200
    for path in ("/get_server_info", "/server_info"):
        info = httpx.get(f"{server}{path}").json()
        assert info["max_total_num_tokens"] > 400_000
        assert info["max_req_input_len"] == 4096 - 1 - 5
        assert info["version"] == "0.5.5" and info["gpu"] == "H100"
        assert info["time_scale"] == 20.0 and info["stream_interval"] == 4
        assert info["mem_fraction_static"] == pytest.approx(0.835)
        assert info["chunked_prefill_size"] == 8192 and info["cuda_graph_max_bs"] == 256
        assert info["model_path"] == f"meta-llama/{MODEL}"
        # As SGLang's get_server_info: every ServerArgs field, the scheduler's report, one
        # internal state per DP rank (server args again, throughput, memory in GB), version.
        fields = _server_args_fields(sglang_wheel)
        assert len(fields) > 250 and fields <= set(info)
        assert info["status"] == "ready"
        (internal,) = info["internal_states"]
        assert fields <= set(internal) and internal["last_gen_throughput"] >= 0
        memory = internal["memory_usage"]
        assert set(memory) == {"weight", "kvcache", "token_capacity", "graph"}
        assert memory["token_capacity"] == info["max_total_num_tokens"]
        assert memory["weight"] == pytest.approx(14.96, abs=0.5)  # 8B bf16, GB
        host = info["twin_host"]
        assert set(host) == {"clock_lag_s", "clock_behind_s_total"}
        assert host["clock_behind_s_total"] >= 0


def test_chat_stream_usage_and_stream_interval(server: str) -> None:
    messages = [{"role": "user", "content": "Shall I compare thee to a summer's day?"}]
    body = {
        "model": "twin-model",
        "messages": messages,
        "max_tokens": 9,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response)
    # As SGLang 0.5.5's serving_chat: a role chunk, the content (the first token at once,
    # then groups of --stream-interval 4, no finish reason), a finish-reason chunk, usage.
    choices = [e["choices"][0] for e in events if e["choices"]]  # type: ignore[index]
    assert choices[0]["delta"]["role"] == "assistant" and choices[0]["delta"]["content"] == ""
    content = [c["delta"]["content"] for c in choices[1:-1]]
    assert [len(text.split()) for text in content] == [1, 4, 4]
    assert all(c["finish_reason"] is None for c in choices[:-1])
    assert choices[-1]["finish_reason"] == "length" and choices[-1]["delta"]["content"] is None
    assert events[-1]["choices"] == [] and all(e["usage"] is None for e in events[:-1])
    usage = events[-1]["usage"]
    prompt = len(_tokenizer.load_tokenizer().encode_chat(messages))
    assert usage == {
        "prompt_tokens": prompt,
        "completion_tokens": 9,  # type: ignore[comparison-overlap]
        "total_tokens": prompt + 9,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
    }
    body["stream_options"] = {"include_usage": False}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body) as response:
        assert all(e["usage"] is None for e in _events(response))


def test_non_streaming_and_completions(server: str) -> None:
    chat = httpx.post(
        f"{server}/v1/chat/completions",
        json={
            "model": "twin-model",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "ignore_eos": True,
        },
    ).json()
    assert chat["object"] == "chat.completion" and chat["usage"]["completion_tokens"] == 5
    assert chat["choices"][0]["message"]["content"]
    text = httpx.post(
        f"{server}/v1/completions",
        json={"prompt": "once upon a time", "max_tokens": 3, "ignore_eos": True},
    ).json()
    assert text["object"] == "text_completion" and text["usage"]["completion_tokens"] == 3
    ids = httpx.post(
        f"{server}/v1/completions",
        json={"prompt": list(range(100)), "max_tokens": 2, "ignore_eos": True},
    ).json()
    assert ids["usage"]["prompt_tokens"] == 100


def test_early_stop_without_ignore_eos_is_deterministic(server: str) -> None:
    body = {"prompt": "tell me a story about a twin", "max_tokens": 600}
    first = httpx.post(f"{server}/v1/completions", json=body).json()
    second = httpx.post(f"{server}/v1/completions", json=body).json()
    tokens = first["usage"]["completion_tokens"]
    assert 1 <= tokens <= 512 and tokens == second["usage"]["completion_tokens"]


def test_bad_requests(server: str) -> None:
    too_long = httpx.post(
        f"{server}/v1/completions", json={"prompt": list(range(5000)), "max_tokens": 2}
    )
    assert too_long.status_code == 400 and "context length" in too_long.json()["message"]
    assert httpx.post(f"{server}/v1/chat/completions", json={"messages": []}).status_code == 400
    assert httpx.post(f"{server}/v1/completions", content=b"{").status_code == 400


def test_metrics_and_prefix_cache(server: str) -> None:
    body = {"prompt": list(range(1000, 3000)), "max_tokens": 2, "ignore_eos": True}
    httpx.post(f"{server}/v1/completions", json=body)
    httpx.post(f"{server}/v1/completions", json=body)
    samples = support.metric_samples(server)
    tokenizer = {"model_name": "twin-model"}
    scheduler = {**tokenizer, "engine_type": "unified", "tp_rank": "0", "pp_rank": "0"}
    labels: dict[str, dict[str, str]] = {}
    for name, sample_labels, _ in samples:
        labels[name] = {k: v for k, v in sample_labels.items() if k != "le"}
    # SGLang's tokenizer metrics carry the model name only; its scheduler metrics the ranks.
    for name in (
        "sglang:prompt_tokens_total",
        "sglang:generation_tokens_total",
        "sglang:cached_tokens_total",
        "sglang:num_requests_total",
        "sglang:time_to_first_token_seconds_bucket",
        "sglang:inter_token_latency_seconds_bucket",
        "sglang:e2e_request_latency_seconds_bucket",
    ):
        assert labels[name] == tokenizer, name
    for name in (
        "sglang:num_running_reqs",
        "sglang:num_queue_reqs",
        "sglang:token_usage",
        "sglang:num_used_tokens",
        "sglang:gen_throughput",
        "sglang:cache_hit_rate",
        "sglang:num_retracted_reqs",
        "sglang:queue_time_seconds_bucket",
        "twin:clock_lag_seconds",
        "twin:clock_behind_seconds_total",
    ):
        assert labels[name] == scheduler, name
    ttft = sorted(
        float(lab["le"])
        for name, lab, _ in samples
        if name == "sglang:time_to_first_token_seconds_bucket"
    )
    assert ttft == [*_metrics.TTFT_BUCKETS, float("inf")]
    values = {name: value for name, _, value in samples}
    assert values["sglang:cache_hit_rate"] > 0.9
    assert values["sglang:queue_time_seconds_count"] >= 2
    assert httpx.post(f"{server}/flush_cache").status_code == 200


def test_completions_default_and_native_generate(server: str) -> None:
    # CompletionRequest.max_tokens defaults to 16; /generate's max_new_tokens to 128.
    text = httpx.post(f"{server}/v1/completions", json={"prompt": "hi", "ignore_eos": True})
    assert text.json()["usage"]["completion_tokens"] == 16
    body = {"text": "The capital of France is", "sampling_params": {"ignore_eos": True}}
    out = httpx.post(f"{server}/generate", json=body).json()
    meta = out["meta_info"]
    assert meta["completion_tokens"] == 128 == len(out["output_ids"])
    assert meta["finish_reason"] == {"type": "length", "length": 128}
    assert meta["prompt_tokens"] == len(_tokenizer.load_tokenizer().encode(body["text"]))
    assert meta["e2e_latency"] > 0 and out["text"]
    body = {"input_ids": list(range(50)), "sampling_params": {"max_new_tokens": 9}}
    with httpx.stream("POST", f"{server}/generate", json={**body, "stream": True}) as response:
        events = _events(response)
    # Cumulative text, new ids per output, the finish reason on the last one.
    texts = [e["text"] for e in events]
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:], strict=False))
    assert (
        sum(len(e["output_ids"]) for e in events) == events[-1]["meta_info"]["completion_tokens"]
    )
    assert [e["meta_info"]["finish_reason"] is None for e in events[:-1]] == [True] * (
        len(events) - 1
    )
    assert events[-1]["meta_info"]["finish_reason"]["type"] in ("length", "stop")
    bad = httpx.post(f"{server}/generate", json={"sampling_params": {}})
    assert bad.status_code == 400 and "input_ids" in bad.json()["error"]["message"]


def test_start_up_no_listener_then_503_until_warm() -> None:
    port = support.free_port()
    proc = support.launch(
        [
            "--model-path",
            MODEL,
            "--port",
            str(port),
            "--time-scale",
            "5",
            "--startup-time-scale",
            "8",
            "--enable-metrics",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # SGLang: no listener while loading, /health 503 with no body until the warm-up
        # request is done (/metrics already served), then 200.
        seen: list[str] = []
        deadline = time.monotonic() + 30
        while "200" not in seen and time.monotonic() < deadline:
            try:
                health = httpx.get(f"{url}/health", timeout=5)
            except httpx.ConnectError:
                seen.append("refused")
                time.sleep(0.05)
                continue
            seen.append(str(health.status_code))
            if health.status_code == 503:
                assert health.content == b""
                seen.append(f"metrics {httpx.get(f'{url}/metrics').status_code}")
            time.sleep(0.005)
        phases = [p for i, p in enumerate(seen) if i == 0 or seen[i - 1] != p]
        assert phases[0] == "refused" and phases[-1] == "200", phases
        assert "503" in phases and "metrics 200" in phases and "refused" not in phases[1:]
        httpx.post(
            f"{url}/v1/completions",
            json={"prompt": list(range(100, 150)), "max_tokens": 90, "ignore_eos": True},
        )
    finally:
        log = support.stop(proc)
    for line in (
        "Load weight end.",
        "KV Cache is allocated. #tokens: ",
        "Capture cuda graph end.",
        "The server is fired up and ready to roll!",
        "Prefill batch. #new-seq: 1, #new-token: 50",
        "Decode batch. #running-req: 1",
    ):
        assert line in log, line


_FAILURES = [
    (
        ["--mem-fraction-static", "0.1"],
        "Not enough memory. Please try to increase --mem-fraction-static.",
    ),
    (["--mem-fraction-static", "0.99"], "CUDA out of memory"),
    (["--tp", "3"], "not divisible by tp_size (3)"),
    (["--tp", "4", "--dp-size", "4"], "invalid device ordinal"),
    (["--model-path", "Qwen2.5-7B-Instruct", "--tp", "8"], "tp_size (8)"),
]


def test_start_up_failures_exit_1() -> None:
    # Launched together: each process pays ~1 s of imports.
    procs = [
        support.launch(
            [
                "--model-path",
                MODEL,
                "--port",
                str(support.free_port()),
                "--startup-time-scale",
                "1000",
                *flags,
            ]
        )
        for flags, _ in _FAILURES
    ]
    for proc, (_, needle) in zip(procs, _FAILURES, strict=True):
        assert proc.wait(timeout=30) == 1
        assert needle in support.stop(proc)


def test_bad_flags_exit_2() -> None:
    cases = [
        (["--tp-size", "two"], "invalid int value"),
        (["--speculative-magic"], "unrecognized arguments: --speculative-magic"),
    ]
    procs = [support.launch(["--model-path", MODEL, *flags]) for flags, _ in cases]
    for proc, (_, needle) in zip(procs, cases, strict=True):
        assert proc.wait(timeout=30) == 2
        assert needle in support.stop(proc)


def test_fault_crash_after() -> None:
    port = support.free_port()
    proc = support.launch(
        [
            "--model-path",
            MODEL,
            "--port",
            str(port),
            "--startup-time-scale",
            "1000",
            "--time-scale",
            "50",
            "--fault",
            "crash-after=2",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        support.wait_ready(url, proc)
        body = {"prompt": "hi", "max_tokens": 2, "ignore_eos": True}
        for _ in range(2):
            assert httpx.post(f"{url}/v1/completions", json=body).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{url}/v1/completions", json=body)
        assert proc.wait(timeout=10) == 1
    finally:
        assert "injected fault crash-after=2" in support.stop(proc)


def test_fault_http500_rate() -> None:
    with support.running_twin(
        "--model-path", MODEL, "--time-scale", "50", "--fault", "http500-rate=0.5"
    ) as url:
        codes = [
            httpx.post(f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code
            for _ in range(30)
        ]
        assert 3 <= codes.count(500) <= 27 and set(codes) == {200, 500}
        assert httpx.get(f"{url}/health").status_code == 200


def test_fault_cold_prefill_slows_the_first_real_batch_once() -> None:
    # 2 s of server time at --time-scale 20: 100 ms of wall time, once, after the warm-up
    # and the /health probes (prompts of a token or a few).
    with support.running_twin(
        "--model-path", MODEL, "--time-scale", "20", "--fault", "cold-prefill=2"
    ) as url:
        body = {"prompt": "x " * 200, "max_tokens": 1}
        ttfts = []
        for _ in range(3):
            started = time.monotonic()
            assert httpx.post(f"{url}/v1/completions", json=body).status_code == 200
            ttfts.append((time.monotonic() - started) * 20)
        assert ttfts[0] > 2.0, ttfts  # neither the warm-up nor /health took the cost away
        assert max(ttfts[1:]) < ttfts[0] - 1.5, ttfts  # paid once


def test_fault_hang_and_slow_start() -> None:
    port = support.free_port()
    start = time.monotonic()
    proc = support.launch(
        [
            "--model-path",
            MODEL,
            "--port",
            str(port),
            "--startup-time-scale",
            "1000",
            "--fault",
            "slow-start=1.5",
        ]
    )
    try:
        support.wait_ready(f"http://127.0.0.1:{port}", proc)
        assert time.monotonic() - start > 1.5
    finally:
        support.stop(proc)
    port = support.free_port()
    proc = support.launch(
        [
            "--model-path",
            MODEL,
            "--port",
            str(port),
            "--startup-time-scale",
            "1000",
            "--fault",
            "hang",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # until the port is open: then it connects and never answers
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
                continue
            except httpx.ReadTimeout:
                break
            raise AssertionError("a hanging twin answered")
    finally:
        support.stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_promptly(sig: signal.Signals) -> None:
    port = support.free_port()
    proc = support.launch(
        ["--model-path", MODEL, "--port", str(port), "--startup-time-scale", "1000"]
    )
    url = f"http://127.0.0.1:{port}"

    def stream() -> None:
        body = {"prompt": "x", "max_tokens": 10_000, "ignore_eos": True, "stream": True}
        try:
            with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as r:
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError:
            pass

    try:
        support.wait_ready(url, proc)
        threading.Thread(target=stream, daemon=True).start()
        time.sleep(0.5)
        start = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=5)
        assert time.monotonic() - start < 1.5
    finally:
        support.stop(proc)


def test_data_parallel_server() -> None:
    with support.running_twin(
        "--model-path",
        MODEL,
        "--dp-size",
        "2",
        "--tp",
        "2",
        "--time-scale",
        "50",
        "--enable-metrics",
    ) as url:
        info = httpx.get(f"{url}/get_server_info").json()
        assert len(info["internal_states"]) == 2 and info["dp_size"] == 2
        for _ in range(4):
            response = httpx.post(
                f"{url}/v1/completions", json={"prompt": "x", "max_tokens": 3, "ignore_eos": True}
            )
            assert response.json()["usage"]["completion_tokens"] == 3
        samples = support.metric_samples(url)
    # SGLang's schedulers: gauges per DP rank from TP rank 0; queue time from every rank.
    ranks = {
        name: {(lab.get("dp_rank"), lab["tp_rank"]) for n, lab, _ in samples if n == name}
        for name in ("sglang:num_running_reqs", "sglang:queue_time_seconds_count")
    }
    assert ranks["sglang:num_running_reqs"] == {("0", "0"), ("1", "0")}
    assert ranks["sglang:queue_time_seconds_count"] == {
        ("0", "0"),
        ("0", "1"),
        ("1", "0"),
        ("1", "1"),
    }


def test_launch_module_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twin.launch_server", "--help"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    for flag in (
        "--mem-fraction-static",
        "--chunked-prefill-size",
        "--cuda-graph-max-bs",
        "--time-scale",
        "--fault",
        "--gpu",
        "--num-gpus",
    ):
        assert flag in result.stdout


def test_api_key_is_required_when_set() -> None:
    with support.running_twin("--model-path", MODEL, "--api-key", "sesame") as url:
        body = {"prompt": "x", "max_tokens": 1}
        assert httpx.post(f"{url}/v1/completions", json=body).status_code == 401
        ok = httpx.post(
            f"{url}/v1/completions", json=body, headers={"Authorization": "Bearer sesame"}
        )
        assert ok.status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200
