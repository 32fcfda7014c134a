"""Expert and data-parallel attention flags: their declaration and SGLang 0.5.5's checks of them.

SGLang's ``--enable-dp-attention`` runs attention data-parallel (``--dp-size`` ranks, each with
its own scheduler and batch, attention tensor-parallel over ``tp / dp`` GPUs) inside one
``--tp-size`` group whose MLP/MoE layers stay tensor-parallel; ``--ep-size`` splits the routed
experts across ranks; ``--moe-a2a-backend deepep`` moves tokens to their experts with
all-to-all and forces ``ep = tp``. The rules below are those of ``ServerArgs.__post_init__``
(``_handle_data_parallelism``, ``_handle_a2a_moe``, ``_handle_eplb_and_dispatch``, the
``moe_dense_tp_size`` check) and of the MoE layer's constructor
(``layers/moe/fused_moe_triton/layer.py``: experts and expert width divide over the ranks).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from twin._catalog import ModelSpec
from twin._errors import StartupError


def add_flags(parser: argparse.ArgumentParser, choices: Callable[[str], Any]) -> None:
    """Declares the modelled expert/dp-attention flags with SGLang's names and defaults.

    Args:
        parser: The launch_server parser (``--dp-size`` is declared by the caller).
        choices: Choices of a flag in SGLang's flag table, by dest name.
    """
    add = parser.add_argument
    add(
        "--enable-dp-attention",
        action="store_true",
        help="attention data-parallel over --dp-size ranks, MLP/MoE tensor-parallel over tp",
    )
    add(
        "--expert-parallel-size",
        "--ep-size",
        "--ep",
        dest="ep_size",
        type=int,
        default=1,
        help="split the routed experts over this many ranks",
    )
    add(
        "--moe-a2a-backend",
        default="none",
        choices=choices("moe_a2a_backend"),
        help="all-to-all token dispatch for MoE (deepep, mooncake: ep_size becomes tp_size)",
    )
    add(
        "--deepep-mode",
        default="auto",
        choices=choices("deepep_mode"),
        help="DeepEP kernels: normal (no CUDA graphs), low_latency or auto",
    )


def check_args(args: argparse.Namespace) -> None:
    """SGLang 0.5.5's ``__post_init__`` refusals of these flags (no model needed).

    Args:
        args: Parsed arguments.

    Raises:
        ValueError: A combination SGLang refuses; the message is SGLang's.
    """
    if args.ep_size < 1:
        raise ValueError("--expert-parallel-size must be >= 1")
    dp_attention = args.enable_dp_attention and args.dp_size > 1
    if dp_attention and args.tp_size % args.dp_size:
        raise ValueError(
            "AssertionError: assert self.tp_size % self.dp_size == 0 "
            f"(--tp-size {args.tp_size}, --dp-size {args.dp_size} with --enable-dp-attention)"
        )
    if getattr(args, "enable_dp_lm_head", False) and not dp_attention:
        raise ValueError(
            "AssertionError: Please enable dp attention when setting enable_dp_lm_head. "
        )
    if getattr(args, "moe_dense_tp_size", None) not in (1, None):
        raise ValueError("AssertionError: moe_dense_tp_size only support 1 and None currently")
    if getattr(args, "enable_eplb", False) and effective_ep(args) <= 1:
        raise ValueError("AssertionError: assert self.ep_size > 1 (--enable-eplb)")


def effective_ep(args: argparse.Namespace) -> int:
    """``ep_size`` after SGLang's adjustment: an all-to-all backend sets it to ``tp_size``."""
    return int(args.tp_size if args.moe_a2a_backend != "none" else args.ep_size)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one configuration spreads a model over its GPUs.

    Attributes:
        dp_attention: Whether attention is data-parallel (``--enable-dp-attention``, dp > 1).
        attn_tp: GPUs one attention instance is split over (``tp / dp`` with dp-attention).
        ep: Ranks the routed experts are split over.
        a2a: Whether MoE tokens move by all-to-all (``--moe-a2a-backend`` set).
        gpus: GPUs the whole server needs.
        cuda_graph: False when DeepEP's normal mode turns CUDA graphs off.
    """

    dp_attention: bool
    attn_tp: int
    ep: int
    a2a: bool
    gpus: int
    cuda_graph: bool


def layout(args: argparse.Namespace, model: ModelSpec) -> Layout:
    """Resolves the parallel layout and applies the model-dependent start-up checks.

    Args:
        args: Validated launch_server arguments.
        model: The model.

    Returns:
        The layout.

    Raises:
        StartupError: SGLang would fail to start (experts or expert width do not divide).
    """
    tp = args.tp_size
    dp_attention = bool(args.enable_dp_attention and args.dp_size > 1)
    ep = effective_ep(args)
    if model.is_moe:
        if ep > tp or tp % ep:
            # parallel_state.initialize_model_parallel takes moe_tp = tp // ep: 0 or a
            # group layout that does not tile the tp ranks.
            raise StartupError(
                f"AssertionError: --ep-size {ep} must divide --tp-size {tp} (SGLang forms "
                f"expert groups of tp_size // ep_size = {tp // ep} ranks)",
                "startup",
            )
        if model.experts % ep:
            raise StartupError(
                f"AssertionError: assert num_experts % self.moe_ep_size == 0 "
                f"({model.experts} experts, ep_size {ep})",
                "startup",
            )
        if model.moe_intermediate % (tp // ep):
            raise StartupError(
                "AssertionError: assert intermediate_size % self.moe_tp_size == 0 "
                f"(moe_intermediate_size {model.moe_intermediate}, moe_tp_size {tp // ep})",
                "startup",
            )
    deepep_normal = args.moe_a2a_backend == "deepep" and args.deepep_mode == "normal"
    return Layout(
        dp_attention=dp_attention,
        attn_tp=tp // args.dp_size if dp_attention else tp,
        ep=ep if model.is_moe else 1,
        a2a=args.moe_a2a_backend != "none" and model.is_moe,
        gpus=tp if dp_attention else tp * args.dp_size,
        cuda_graph=not deepep_normal,
    )
