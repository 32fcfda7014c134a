"""Architecture facts of the models the twin knows, and loading them from a config.json."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Mapping
from types import MappingProxyType

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

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer's linear layers (norms and biases are negligible)."""
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
        return self.layers * self.layer_params + heads * self.embedding_params

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
)


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
            intermediate=int(config["intermediate_size"]),
            vocab=int(config["vocab_size"]),
            max_position_embeddings=int(config.get("max_position_embeddings") or 4096),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            dtype=str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"),
            path=path,
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
