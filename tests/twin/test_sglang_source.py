"""The twin's SGLang rules against SGLang's own source, read from the pinned wheel's AST.

Each test finds the statements a twin rule was written from and checks they still say what the
twin implements (constants come from ``twin._facts``), so a new SGLang version that changes a
rule fails here instead of drifting silently. Behaviour is tested in test_resolve.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

from twin import _facts, _metrics
from twin._facts import fact

_SERVER_ARGS = "sglang/srt/server_args.py"


def _function(module: ast.Module, name: str, cls: str | None = None) -> ast.FunctionDef:
    scope: list[ast.stmt] = module.body
    if cls is not None:
        scope = next(n for n in module.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    found = [n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name]
    assert found, f"{cls}.{name} is gone from the wheel"
    return found[0]


def _statements(node: ast.AST) -> Iterator[str]:
    # Every statement below ``node``, unparsed (comments and formatting normalized away).
    for child in ast.walk(node):
        if isinstance(child, ast.stmt):
            yield ast.unparse(child)


def _number(node: ast.expr) -> float:
    # A literal such as 20 * 1024, without evaluating SGLang's code.
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _number(node.left) * _number(node.right)
    value = ast.literal_eval(node)
    assert isinstance(value, (int, float))
    return value


def _g(name: str) -> str:
    # A fact as SGLang writes the number (512, 1.5).
    return f"{fact(name):g}"


def _assigned(body: list[ast.stmt], attr: str, tp_large: dict[str, Any]) -> dict[str, int]:
    # Values a tier branch gives self.<attr>, keyed "small"/"large" by the tp_size test.
    values: dict[str, int] = {}
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.If) and "self.tp_size <" in ast.unparse(node.test):
            tp_large["value"] = _number(node.test.comparators[0])  # type: ignore[attr-defined]
            for key, branch in (("small", node.body), ("large", node.orelse)):
                for stmt in branch:
                    if isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == attr:
                        values[key] = int(_number(stmt.value))
        elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == attr:
            values.setdefault("small", int(_number(node.value)))
            values.setdefault("large", int(_number(node.value)))
    return values


def test_memory_tiers_match_the_wheel(sglang_wheel: Any) -> None:
    method = _function(
        sglang_wheel.module(_SERVER_ARGS), "_handle_gpu_memory_settings", "ServerArgs"
    )
    outer = next(n for n in method.body if isinstance(n, ast.If))
    assert ast.unparse(outer.test) == "gpu_mem is not None"
    tiers, tp_large = [], {}
    branch: ast.stmt | None = outer.body[0]
    while branch is not None:
        assert isinstance(branch, ast.If)
        test = ast.unparse(branch.test)
        if "is_npu()" not in test:  # Ascend tiers: the twin simulates NVIDIA GPUs only
            assert isinstance(branch.test, ast.Compare) and test.startswith("gpu_mem <"), test
            body = branch.body
            tiers.append((_number(branch.test.comparators[0]), body))
        nxt = branch.orelse
        if len(nxt) == 1 and isinstance(nxt[0], ast.If):
            branch = nxt[0]
        else:
            tiers.append((float("inf"), nxt))
            branch = None
    table = []
    for limit, body in tiers:
        chunk = _assigned(body, "self.chunked_prefill_size", tp_large)
        graph = _assigned(body, "self.cuda_graph_max_bs", tp_large)
        table.append(_facts.MemoryTier(limit, chunk["small"], graph["small"], graph["large"]))
    assert tuple(table) == _facts.MEMORY_TIERS
    assert tp_large["value"] == fact("cuda_graph_bs_tp_large")


def test_auto_mem_fraction_static_rule_matches_the_wheel(sglang_wheel: Any) -> None:
    method = _function(
        sglang_wheel.module(_SERVER_ARGS), "_handle_gpu_memory_settings", "ServerArgs"
    )
    block = next(
        n
        for n in ast.walk(method)
        if isinstance(n, ast.If) and ast.unparse(n.test) == "self.mem_fraction_static is None"
    )
    tokens = _g("reserve_min_prefill_tokens")
    per_token = _g("reserve_mib_per_prefill_token")
    # What twin._resolve.auto_mem_fraction_static implements, in order. Not modelled: the
    # speculative-decoding term (the twin leaves the draft model's memory out) and the multimodal
    # adjustment (the catalog has text models only).
    skipped = ("self.speculative_algorithm", "model_config")
    kept = [
        ast.unparse(n)
        for n in block.body
        if not any(word in ast.unparse(n).split("\n")[0] for word in skipped)
    ]
    assert kept == [
        f"reserved_mem = {_g('reserve_base_mib')}",
        "if self.chunked_prefill_size > 0:\n"
        f"    reserved_mem += max(self.chunked_prefill_size, {tokens}) * {per_token}\n"
        "else:\n"
        f"    reserved_mem += max(self.max_prefill_tokens, {tokens}) * {per_token}",
        f"reserved_mem += self.cuda_graph_max_bs * {_g('reserve_mib_per_graph_bs')}",
        f"reserved_mem += self.tp_size * self.pp_size / 8 * {_g('reserve_mib_per_8_ranks')}",
        "if self.enable_dp_attention:\n"
        "    reserved_mem += self.cuda_graph_max_bs * self.dp_size * "
        f"{_g('dp_attn_reserve_mib_per_bs_rank')}\n"
        f"    if self.cuda_graph_max_bs > {_g('dp_attn_reserve_large_bs')}:\n"
        "        reserved_mem += self.cuda_graph_max_bs * self.dp_size * "
        f"{_g('dp_attn_reserve_large_mib_per_bs_rank')}",
        f"if gpu_mem is not None and gpu_mem > {fact('reserve_floor_gpu_mib') / 1024:g} * 1024:"
        f"\n    reserved_mem = max(reserved_mem, {fact('reserve_floor_mib') / 1024:g} * 1024)",
        "self.mem_fraction_static = round((gpu_mem - reserved_mem) / gpu_mem, 3) if gpu_mem "
        "is not None else 0.88",
    ]


def test_capture_sizes_rule_matches_the_wheel(sglang_wheel: Any) -> None:
    method = _function(
        sglang_wheel.module(_SERVER_ARGS), "_generate_cuda_graph_batch_sizes", "ServerArgs"
    )
    branch = next(
        n
        for n in ast.walk(method)
        if isinstance(n, ast.If) and ast.unparse(n.test) == "self.speculative_algorithm is None"
    )
    ranges = " + ".join(
        f"list(range({start}, {'self.cuda_graph_max_bs + 1' if stop is None else stop}, {step}))"
        for start, stop, step in _facts.CUDA_GRAPH_BS_RANGES
    )
    grid = f"capture_bs = {list(_facts.CUDA_GRAPH_BS_LIST)} + {ranges}"
    assert [ast.unparse(s) for s in branch.body] == [grid]
    assert "capture_bs = [bs for bs in capture_bs if bs <= self.cuda_graph_max_bs]" in set(
        _statements(method)
    )
    runner = _function(
        sglang_wheel.module("sglang/srt/model_executor/cuda_graph_runner.py"),
        "get_batch_sizes_to_capture",
    )
    pool = "model_runner.req_to_token_pool.size"
    found = set(_statements(runner))
    for statement in (
        f"if max(capture_bs) > {pool}:\n    capture_bs += [{pool}]",
        f"capture_bs = [bs for bs in capture_bs if bs <= {pool}]",
    ):
        assert statement in found, statement
    init = _function(
        sglang_wheel.module("sglang/srt/model_executor/model_runner.py"),
        "init_memory_pool",
        "ModelRunner",
    )
    pool_rule = (
        "max_num_reqs = min(max(int(self.max_total_num_tokens / self.model_config.context_len"
        f" * {_g('req_pool_per_context')}), {_g('req_pool_min')}), {_g('req_pool_max')})"
    )
    assert pool_rule in set(_statements(init))


_COLLECTOR = "sglang/srt/metrics/collector.py"


def _literal_list(node: ast.AST) -> list[float]:
    value = ast.literal_eval(node)  # type: ignore[arg-type]
    assert isinstance(value, list)
    return [float(v) for v in value]


def test_metric_buckets_match_the_wheel(sglang_wheel: Any) -> None:
    collector = sglang_wheel.module(_COLLECTOR)
    tokenizer = _function(collector, "__init__", "TokenizerMetricsCollector")
    defaults = {
        ast.unparse(n.targets[0]): _literal_list(n.value)
        for n in ast.walk(tokenizer)
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]).startswith("bucket_")
    }
    assert defaults == {
        "bucket_time_to_first_token": list(_metrics.TTFT_BUCKETS),
        "bucket_inter_token_latency": list(_metrics.ITL_BUCKETS),
        "bucket_e2e_request_latency": list(_metrics.E2E_BUCKETS),
    }
    scheduler = _function(collector, "__init__", "SchedulerMetricsCollector")
    queue = next(
        n
        for n in ast.walk(scheduler)
        if isinstance(n, ast.Call)
        and any(
            k.arg == "name" and ast.literal_eval(k.value) == "sglang:queue_time_seconds"
            for k in n.keywords
        )
    )
    buckets = next(k.value for k in queue.keywords if k.arg == "buckets")
    assert _literal_list(buckets) == list(_metrics.QUEUE_BUCKETS)


def _metric_names(module: ast.Module, cls: str) -> set[str]:
    init = _function(module, "__init__", cls)
    return {
        ast.literal_eval(k.value)
        for n in ast.walk(init)
        if isinstance(n, ast.Call)
        for k in n.keywords
        if k.arg == "name"
    }


def test_metric_names_and_labels_match_the_wheel(sglang_wheel: Any) -> None:
    collector = sglang_wheel.module(_COLLECTOR)
    wheel = {
        _metrics.TOKENIZER_LABELS: _metric_names(collector, "TokenizerMetricsCollector"),
        _metrics.SCHEDULER_LABELS: _metric_names(collector, "SchedulerMetricsCollector"),
    }
    served = _metrics.ServerMetrics("m", tp=2, dp=1).registry.collect()
    for family in served:
        name = family.name + ("_total" if family.type == "counter" else "")
        assert family.samples, f"{name} has no labelled series"
        labels = tuple(label for label in family.samples[0].labels if label != "le")
        if name.startswith("twin:"):
            assert labels == _metrics.SCHEDULER_LABELS, name
        else:
            assert name in wheel[labels], f"{name} with labels {labels} is not SGLang's"
    # Where SGLang builds the label sets: the scheduler's (plus dp_rank with DP ranks) and
    # the tokenizer manager's.
    mixin = _function(
        sglang_wheel.module("sglang/srt/managers/scheduler_metrics_mixin.py"),
        "init_metrics",
        "SchedulerMetricsMixin",
    )
    found = set(_statements(mixin))
    keys = ", ".join(f"'{k}': {_LABEL_VALUES[k]}" for k in _metrics.SCHEDULER_LABELS)
    assert f"labels = {{{keys}}}" in found
    assert "if dp_rank is not None:\n    labels['dp_rank'] = dp_rank" in found
    assert "engine_type = 'unified'" in found
    manager = sglang_wheel.module("sglang/srt/managers/tokenizer_manager.py")
    assert "labels = {'model_name': self.server_args.served_model_name}" in set(
        _statements(_function(manager, "__init__", "TokenizerManager"))
    )


_LABEL_VALUES = {
    "model_name": "self.server_args.served_model_name",
    "engine_type": "engine_type",
    "tp_rank": "tp_rank",
    "pp_rank": "pp_rank",
}


def test_trtllm_moe_runner_rule_matches_the_wheel(sglang_wheel: Any) -> None:
    from twin._resolve import _TRTLLM_MOE_QUANT

    adjust = _function(
        sglang_wheel.module(_SERVER_ARGS), "_handle_model_specific_adjustments", "ServerArgs"
    )
    # The DeepSeek-V3 branch: the If whose test names the architecture.
    branch = next(
        n for n in ast.walk(adjust)
        if isinstance(n, ast.If) and "'DeepseekV3ForCausalLM'" in ast.unparse(n.test)
    )
    body = ast.Module(body=branch.body, type_ignores=[])  # not the elif chain after it
    picks = [
        n for n in ast.walk(body)
        if isinstance(n, ast.If)
        and "self.moe_runner_backend = 'flashinfer_trtllm'" in map(ast.unparse, n.body)
    ]
    assert len(picks) == 1, "the DeepSeek flashinfer_trtllm pick moved"
    test = ast.unparse(picks[0].test)
    assert "self.moe_a2a_backend == 'none'" in test
    assert "self.moe_runner_backend == 'auto'" in test
    quants = next(
        n.comparators[0] for n in ast.walk(picks[0].test)
        if isinstance(n, ast.Compare) and ast.unparse(n.left) == "self.quantization"
        and isinstance(n.ops[0], ast.In)
    )
    assert set(ast.literal_eval(quants)) == _TRTLLM_MOE_QUANT
    assert "is_sm100_supported()" in ast.unparse(body)
    kernel = ast.unparse(_function(
        sglang_wheel.module(_SERVER_ARGS), "_handle_moe_kernel_config", "ServerArgs"
    ))
    assert "modelopt_fp4, modelopt_fp8 or fp8 quantization is required for Flashinfer TRTLLM" \
        in kernel
    for quant in _TRTLLM_MOE_QUANT:
        assert f"self.quantization == '{quant}'" in kernel
