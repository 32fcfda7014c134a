"""The twin's server process: logging, simulated start-up and its failures, uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import sys

import uvicorn

from twin import _args, _engine, _gpus, _http, _memory, _profile, _resolve, _tokenizer
from twin._errors import StartupError
from twin._facts import fact

_log = logging.getLogger("twin.server")
# The prompt of SGLang's warm-up request (_execute_server_warmup).
_WARMUP_TEXT = "The capital city of France is"


def _failure_delay(args: argparse.Namespace, error: Exception) -> float:
    # Simulated seconds until SGLang would hit the error: memory errors come after the
    # weights are loaded, argument-like errors during initialisation.
    if not isinstance(error, StartupError) or error.kind != "oom":
        return fact("init_s")
    return _memory.load_seconds(args)


async def _load(state: _http.ServerState) -> bool:
    # SGLang loads weights and captures CUDA graphs before its HTTP server listens: nothing
    # answers (connections are refused) until this returns. False: start-up failed.
    args = state.args
    scale = args.startup_time_scale or args.time_scale
    extra = state.faults.slow_start_s
    _log.info("Load weight begin. avail mem=%.2f GB", _gpus.GPU_TABLE[args.gpu].memory_mib / 1024)
    try:
        config = _resolve.resolve(args)
    except (StartupError, ValueError) as e:
        await asyncio.sleep(_failure_delay(args, e) / scale + extra)
        _log.error("Scheduler hit an exception: %s", e)
        _log.error("Rank 0 scheduler is dead. Please check if there are relevant logs.")
        return False
    model_dir = config.model.path
    tokenizer_dir = pathlib.Path(args.tokenizer_path) if args.tokenizer_path else None
    state.tokenizer = _tokenizer.load_tokenizer(tokenizer_dir, model_dir)
    memory_lines = _memory.log_memory(config)
    await asyncio.sleep(config.load_s / scale + extra)
    for line in memory_lines[:3]:
        _log.info(line)
    if config.cuda_graph_bs:
        _log.info("Capture cuda graph begin. This can take up to several minutes.")
        await asyncio.sleep(config.capture_s / scale)
        _log.info(memory_lines[3])
    _log.info(memory_lines[4])
    await asyncio.sleep((config.startup_s - config.load_s - config.capture_s) / scale)
    state.config = config
    state.engine = _engine.Engine(
        config,
        time_scale=args.time_scale,
        metrics=state.metrics,
        decode_log_interval=args.decode_log_interval,
        seed=args.random_seed or 0,
    )
    return True


async def _warm_up(state: _http.ServerState, server: uvicorn.Server) -> None:
    # SGLang's warm-up thread: once the server answers, one short /generate per DP rank;
    # /health says 503 until it has finished (server status Up).
    args, engine, tokenizer = state.args, state.engine, state.tokenizer
    assert engine is not None and tokenizer is not None
    while not server.started:
        await asyncio.sleep(0.01)
    _log.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", args.host, args.port)
    await asyncio.sleep(fact("warmup_delay_s") / (args.startup_time_scale or args.time_scale))
    ids = tokenizer.encode(_WARMUP_TEXT)
    max_new = int(fact("warmup_max_new_tokens"))
    streams = [
        engine.submit(
            received=engine.now(),
            input_ids=ids,
            max_new=max_new,
            output_len=_tokenizer.natural_length(ids, max_new),
            ignore_eos=False,
            streaming=False,
        )
        for _ in range(args.dp_size)
    ]
    for stream in streams:
        while not (await stream.queue.get())[1]:
            pass
    for replica in engine.replicas:  # larger shapes than the warm-up's meet cold kernels
        replica.cold_prefill_s, replica.cold_above = state.faults.cold_prefill_s, len(ids)
    state.ready = True
    _log.info("The server is fired up and ready to roll!")


def _watch(task: asyncio.Task[None], state: _http.ServerState, server: uvicorn.Server) -> None:
    # A crash of start-up or of the scheduler ends the process with status 1, as a dead
    # SGLang scheduler does, instead of leaving a server that never answers.
    def done(finished: asyncio.Task[None]) -> None:
        if finished.cancelled() or finished.exception() is None:
            return
        error = finished.exception()
        _log.error("Scheduler hit an exception: %r", error, exc_info=error)
        state.exit_code = 1
        server.should_exit = True

    state.tasks.append(task)
    task.add_done_callback(done)


async def _main(state: _http.ServerState) -> None:
    if not await _load(state):
        state.exit_code = 1
        return
    args, engine = state.args, state.engine
    assert engine is not None
    config = uvicorn.Config(
        _http.build_app(state),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="asyncio",
        lifespan="off",
        http=_http.StampingProtocol,
        # Typed int by uvicorn but passed to asyncio.wait_for: half a second keeps the
        # exit on SIGTERM/SIGINT under a second even with streams in flight.
        timeout_graceful_shutdown=0.5,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    _watch(asyncio.create_task(engine.run()), state, server)
    _watch(asyncio.create_task(_warm_up(state, server)), state, server)
    try:
        await server.serve()
    finally:
        for task in state.tasks:
            task.cancel()


def serve(args: argparse.Namespace) -> int:
    """Runs the server until it is stopped or fails to start.

    Args:
        args: Validated launch_server arguments.

    Returns:
        The process exit status: 0 after a normal stop, 1 when start-up failed.
    """
    level = getattr(logging, args.log_level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%Y-%m-%d %H:%M:%S"))
    for name in ("twin", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    _log.info("server_args=ServerArgs(%s)", ", ".join(f"{k}={v!r}" for k, v in vars(args).items()))
    if unmodelled := _args.not_modelled(args):
        _log.warning("Not modelled by the twin (accepted, no effect): %s", ", ".join(unmodelled))
    profile = _profile.load_profile(args.profile) if args.profile else None
    if profile is not None:
        _log.info("Fact profile %s: %s", args.profile, dict(profile.factors))
    state = _http.ServerState(args)
    # Every task of the loop copies this context: the profile holds for the whole process.
    with _profile.using_profile(profile):
        asyncio.run(_main(state))
    return state.exit_code
