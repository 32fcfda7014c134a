"""Architecture facts of the models the twin knows, and loading them from a config.json."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

_DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "half": 2, "float32": 4, "float": 4}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The architecture numbers that decide compute, memory and KV size.

    Attributes:
        name: Catalog name, or the directory name for a local model.
        architecture: ``architectures[0]`` of config.json.
        layers: ``num_hidden_layers``.
        hidden: ``hidden_size``.
        heads: ``num_attention_heads``.
        kv_heads: ``num_key_value_heads``.
        head_dim: ``head_dim`` (``hidden // heads`` when absent).
        intermediate: ``intermediate_size``.
        vocab: ``vocab_size``.
        max_position_embeddings: Context length the model was trained for.
        tie_word_embeddings: Whether the LM head reuses the embedding matrix.
        dtype: ``torch_dtype`` / ``dtype`` of the checkpoint.
        path: Local directory, when loaded from one.
        experts: Routed experts per MoE layer (``n_routed_experts`` / ``num_experts``); 0 for
            a dense model.
        experts_per_token: Routed experts each token picks (``num_experts_per_tok``).
        shared_experts: Always-active experts per MoE layer (``n_shared_experts``).
        moe_intermediate: Intermediate size of one expert (``moe_intermediate_size``).
        dense_layers: Leading layers with a dense MLP (``first_k_dense_replace``).
        kv_lora_rank: MLA's compressed KV width (``kv_lora_rank``); 0 without MLA.
        q_lora_rank: MLA's compressed query width (``q_lora_rank``; 0: no query LoRA).
        qk_rope_head_dim: MLA's rotary part of a query/key head (``qk_rope_head_dim``).
        qk_nope_head_dim: MLA's non-rotary part of a query/key head (``qk_nope_head_dim``).
        v_head_dim: MLA's value head width (``v_head_dim``).
        quantization: ``quantization_config.quant_method`` of the checkpoint (``fp8`` for
            DeepSeek-V3/R1's block-quantized weights), ``None`` when unquantized.
    """

    name: str
    architecture: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    dtype: str = "bfloat16"
    path: pathlib.Path | None = None
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    moe_intermediate: int = 0
    dense_layers: int = 0
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    quantization: str | None = None

    @property
    def is_moe(self) -> bool:
        """Whether the MLPs after ``dense_layers`` are mixtures of experts."""
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        """Whether attention is multi-head latent attention (a compressed KV cache)."""
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts."""
        return self.layers - self.dense_layers if self.is_moe else 0

    @property
    def dense_mlp_layers(self) -> int:
        """Layers whose MLP is dense: all of a dense model's, a MoE model's prefix."""
        return self.layers - self.moe_layers

    @property
    def attn_params(self) -> int:
        """Parameters of one layer's attention projections."""
        if not self.is_mla:
            q_out = self.heads * self.head_dim
            return self.hidden * (q_out + 2 * self.kv_heads * self.head_dim) + q_out * self.hidden
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        if self.q_lora_rank:
            q = self.hidden * self.q_lora_rank + self.q_lora_rank * self.heads * qk
        else:
            q = self.hidden * self.heads * qk
        kv_a = self.hidden * (self.kv_lora_rank + self.qk_rope_head_dim)
        kv_b = self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim)
        return q + kv_a + kv_b + self.heads * self.v_head_dim * self.hidden

    @property
    def expert_params(self) -> int:
        """Parameters of one expert (gate, up and down projections)."""
        return 3 * self.hidden * self.moe_intermediate

    @property
    def routed_params(self) -> int:
        """Parameters of all routed experts of the model."""
        return self.moe_layers * self.experts * self.expert_params

    @property
    def decoder_params(self) -> int:
        """Parameters of all decoder layers' linear layers (router included)."""
        if not self.is_moe and not self.is_mla:
            return self.layers * self.layer_params
        dense_mlp = 3 * self.hidden * self.intermediate
        shared = self.shared_experts * self.expert_params + self.hidden * self.experts
        return (
            self.layers * self.attn_params
            + self.dense_mlp_layers * dense_mlp
            + self.moe_layers * shared
            + self.routed_params
        )

    @property
    def active_decoder_params(self) -> int:
        """Decoder parameters one token multiplies with (its ``experts_per_token`` experts)."""
        if not self.is_moe:
            return self.decoder_params
        return self.decoder_params - self.routed_params + self.routed_active_params

    @property
    def routed_active_params(self) -> int:
        """Routed-expert parameters one token multiplies with (its ``experts_per_token``)."""
        return self.moe_layers * self.experts_per_token * self.expert_params

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer's linear layers (norms and biases are negligible).

        For a MoE or MLA model this is the per-layer mean of :attr:`decoder_params`.
        """
        if self.is_moe or self.is_mla:
            return self.decoder_params // self.layers
        q_out = self.heads * self.head_dim
        kv_out = 2 * self.kv_heads * self.head_dim
        return (
            self.hidden * (q_out + kv_out)
            + q_out * self.hidden
            + 3 * self.hidden * self.intermediate
        )

    @property
    def embedding_params(self) -> int:
        """Parameters of one vocab x hidden matrix."""
        return self.vocab * self.hidden

    @property
    def total_params(self) -> int:
        """All parameters that are loaded to the GPU."""
        heads = 1 if self.tie_word_embeddings else 2
        return self.decoder_params + heads * self.embedding_params

    @property
    def dtype_bytes(self) -> int:
        """Bytes per weight element of the checkpoint dtype."""
        return _DTYPE_BYTES.get(self.dtype, 2)


def _spec(
    name: str,
    arch: str,
    layers: int,
    hidden: int,
    heads: int,
    kv: int,
    head_dim: int,
    inter: int,
    vocab: int,
    max_pos: int,
    tie: bool,
) -> ModelSpec:
    return ModelSpec(name, arch, layers, hidden, heads, kv, head_dim, inter, vocab, max_pos, tie)


# Mixture-of-experts models, from each one's config.json on the Hugging Face hub
# (https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json,
# .../deepseek-ai/DeepSeek-R1/blob/main/config.json, .../Qwen/Qwen3-30B-A3B/blob/main/config.json,
# .../Qwen/Qwen3-235B-A22B/blob/main/config.json). Written from the published values as known
# to the author, not downloaded (no network here); check them against the hub when in doubt.
# DeepSeek-V3 and R1 share one architecture and ship fp8 weights in 128 x 128 blocks (their
# quantization_config); the multi-token-prediction layer (num_nextn_predict_layers = 1) is
# loaded only for speculative decoding and is left out. head_dim/kv_heads of the MLA models
# are those of the decompressed heads (qk_nope + qk_rope = 192; 128 heads).
_DEEPSEEK_V3: dict[str, Any] = dict(
    architecture="DeepseekV3ForCausalLM",
    layers=61,
    hidden=7168,
    heads=128,
    kv_heads=128,
    head_dim=192,
    intermediate=18432,
    vocab=129280,
    max_position_embeddings=163840,
    tie_word_embeddings=False,
    experts=256,
    experts_per_token=8,
    shared_experts=1,
    moe_intermediate=2048,
    dense_layers=3,
    kv_lora_rank=512,
    q_lora_rank=1536,
    qk_rope_head_dim=64,
    qk_nope_head_dim=128,
    v_head_dim=128,
    quantization="fp8",
)
_QWEN3_MOE: dict[str, Any] = dict(
    architecture="Qwen3MoeForCausalLM",
    head_dim=128,
    kv_heads=4,
    vocab=151936,
    max_position_embeddings=40960,
    tie_word_embeddings=False,
    experts=128,
    experts_per_token=8,
)
_MOE_MODELS = (
    ModelSpec(name="DeepSeek-V3", **_DEEPSEEK_V3),
    ModelSpec(name="DeepSeek-R1", **_DEEPSEEK_V3),
    ModelSpec(
        name="Qwen3-30B-A3B",
        layers=48,
        hidden=2048,
        heads=32,
        intermediate=6144,
        moe_intermediate=768,
        **_QWEN3_MOE,
    ),
    ModelSpec(
        name="Qwen3-235B-A22B",
        layers=94,
        hidden=4096,
        heads=64,
        intermediate=12288,
        moe_intermediate=1536,
        **_QWEN3_MOE,
    ),
)

# From each model's public config.json on the Hugging Face hub (all bfloat16 checkpoints).
MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            _spec(
                "Llama-3.1-8B-Instruct",
                "LlamaForCausalLM",
                32,
                4096,
                32,
                8,
                128,
                14336,
                128256,
                131072,
                False,
            ),
            _spec(
                "Llama-3.1-70B-Instruct",
                "LlamaForCausalLM",
                80,
                8192,
                64,
                8,
                128,
                28672,
                128256,
                131072,
                False,
            ),
            _spec(
                "Llama-3.2-1B-Instruct",
                "LlamaForCausalLM",
                16,
                2048,
                32,
                8,
                64,
                8192,
                128256,
                131072,
                True,
            ),
            _spec(
                "Qwen3-0.6B", "Qwen3ForCausalLM", 28, 1024, 16, 8, 128, 3072, 151936, 40960, True
            ),
            _spec(
                "Qwen3-8B", "Qwen3ForCausalLM", 36, 4096, 32, 8, 128, 12288, 151936, 40960, False
            ),
            _spec(
                "Qwen3-14B", "Qwen3ForCausalLM", 40, 5120, 40, 8, 128, 17408, 151936, 40960, False
            ),
            _spec(
                "Qwen3-32B", "Qwen3ForCausalLM", 64, 5120, 64, 8, 128, 25600, 151936, 40960, False
            ),
            _spec(
                "Qwen2.5-7B-Instruct",
                "Qwen2ForCausalLM",
                28,
                3584,
                28,
                4,
                128,
                18944,
                152064,
                32768,
                False,
            ),
            _spec(
                "Qwen2.5-14B-Instruct",
                "Qwen2ForCausalLM",
                48,
                5120,
                40,
                8,
                128,
                13824,
                152064,
                32768,
                False,
            ),
            _spec(
                "Qwen2.5-32B-Instruct",
                "Qwen2ForCausalLM",
                64,
                5120,
                40,
                8,
                128,
                27648,
                152064,
                32768,
                False,
            ),
            _spec(
                "Qwen2.5-72B-Instruct",
                "Qwen2ForCausalLM",
                80,
                8192,
                64,
                8,
                128,
                29568,
                152064,
                32768,
                False,
            ),
        )
    }
    | {spec.name: spec for spec in _MOE_MODELS}
)


def _optional(config: Mapping[str, object], *keys: str) -> int:
    # The first key present, as an int; 0 when none is.
    for key in keys:
        value = config.get(key)
        if value is not None:
            return int(value)  # type: ignore[call-overload]
    return 0


def _sparse_fields(config: Mapping[str, object]) -> dict[str, object]:
    # MoE and MLA fields of a config.json, named as DeepSeek-V2/V3 and Qwen2/3-MoE name them.
    experts = _optional(config, "n_routed_experts", "num_experts", "num_local_experts")
    quant = config.get("quantization_config")
    fields: dict[str, object] = {
        "experts": experts,
        "experts_per_token": _optional(config, "num_experts_per_tok") if experts else 0,
        "shared_experts": _optional(config, "n_shared_experts") if experts else 0,
        "moe_intermediate": _optional(config, "moe_intermediate_size") if experts else 0,
        "dense_layers": _optional(config, "first_k_dense_replace") if experts else 0,
        "kv_lora_rank": _optional(config, "kv_lora_rank"),
        "q_lora_rank": _optional(config, "q_lora_rank"),
        "qk_rope_head_dim": _optional(config, "qk_rope_head_dim"),
        "qk_nope_head_dim": _optional(config, "qk_nope_head_dim"),
        "v_head_dim": _optional(config, "v_head_dim"),
        "quantization": quant.get("quant_method") if isinstance(quant, dict) else None,
    }
    if experts and not (fields["experts_per_token"] and fields["moe_intermediate"]):
        raise KeyError("num_experts_per_tok / moe_intermediate_size")
    return fields


def _from_config(path: pathlib.Path) -> ModelSpec:
    config = json.loads((path / "config.json").read_text())
    try:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return ModelSpec(
            name=path.name,
            architecture=str((config.get("architectures") or ["unknown"])[0]),
            layers=int(config["num_hidden_layers"]),
            hidden=hidden,
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            intermediate=int(config.get("intermediate_size") or 0),
            vocab=int(config["vocab_size"]),
            max_position_embeddings=int(config.get("max_position_embeddings") or 4096),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            dtype=str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"),
            path=path,
            **_sparse_fields(config),  # type: ignore[arg-type]
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"--model-path: {path / 'config.json'} lacks a field: {e}") from e


def load_model(model_path: str) -> ModelSpec:
    """Finds a model by catalog name, hub-style id or local directory.

    Args:
        model_path: ``--model-path`` value: a local directory with a config.json, a catalog
            name, or ``org/Name`` whose last part is a catalog name (case-insensitive).

    Returns:
        The model's architecture facts.

    Raises:
        ValueError: The model is neither a local directory nor in the catalog.
    """
    path = pathlib.Path(model_path).expanduser()
    if (path / "config.json").is_file():
        return _from_config(path)
    wanted = model_path.rstrip("/").rsplit("/", 1)[-1].lower()
    for name, spec in MODELS.items():
        if name.lower() == wanted:
            return spec
    raise ValueError(
        f"--model-path: {model_path!r} is not a local folder with a config.json and not a "
        f"model the twin knows; known models: {', '.join(MODELS)}"
    )
