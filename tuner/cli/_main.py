"""``autotuner``: run studies, look at them, and export their winners."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from tuner import StudyResult, check_cluster, default_store_path, launch_text, objective
from tuner.backends import BACKENDS, make
from tuner.cli import _calibrate, _flags, _plan, _workload
from tuner.exceptions import SpecError, TunerError
from tuner.spec import SEARCH_ALGORITHMS, StudySpec, load_spec, override, spec_from_dict
from tuner.store import Store, open_store
from tuner.study import create_study, run_study

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``autotuner`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    # Left out when given nowhere (the parsers share these options; see _parser).
    args.store = getattr(args, "store", None)
    args.debug = getattr(args, "debug", False)
    debug = args.debug or os.environ.get("OME_TUNER_DEBUG") == "1"
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("ray", "optuna", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not debug else logging.INFO)
    try:
        return int(args.command(args) or 0)
    except TunerError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, SpecError) else 1


def _parser() -> argparse.ArgumentParser:
    # The global options work before or after the command: given after it, they override.
    # Their defaults stay SUPPRESS in every parser (which share the option objects), so a
    # subparser never overwrites a value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        type=Path,
        default=argparse.SUPPRESS,
        help="study store (SQLite); default $AUTOTUNER_HOME/autotuner.db",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and Ray's logs",
    )
    parser = argparse.ArgumentParser(
        prog="autotuner",
        description="Find the best SGLang serving flags for a model, a workload and SLOs.",
        parents=[common],
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    add = functools.partial(commands.add_parser, parents=[common])

    run = add("run", help="run a study from a spec file")
    run.add_argument("spec", type=Path, help="study spec (YAML or JSON)")
    run.add_argument("--backend", choices=sorted(BACKENDS))
    run.add_argument("--search", choices=sorted(SEARCH_ALGORITHMS))
    run.add_argument("--max-trials", type=int)
    run.add_argument("--seed", type=int)
    run.add_argument(
        "--ray-address",
        default=None,
        help="run trials on this Ray cluster (default: RAY_ADDRESS, else local)",
    )
    run.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    run.set_defaults(command=_run)

    resume = add("resume", help="continue a study whose driver died")
    resume.add_argument("study")
    resume.add_argument("--ray-address", default=None)
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(command=_resume)

    listing = add("list", help="list studies")
    listing.set_defaults(command=_list)

    show = add("show", help="show a study's trials and winner")
    show.add_argument("study")
    show.add_argument("--json", action="store_true")
    show.set_defaults(command=_show)

    export = add("export", help="print the winning launch command / manifest")
    export.add_argument("study")
    export.add_argument("-o", "--output", type=Path, help="write to this file")
    export.add_argument(
        "--runtime",
        action="store_true",
        help="ome: also a ClusterServingRuntime with the winning flags baked in",
    )
    export.add_argument(
        "--base-runtime",
        type=Path,
        default=None,
        help="ome: the study's runtime as a YAML file, instead of the cluster's",
    )
    export.set_defaults(command=_export)

    serve = add("serve", help="serve the REST API and the browser app")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; any but loopback needs AUTOTUNER_TOKEN (or --insecure)",
    )
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--gpus", type=int, default=8, help="GPU units of the local Ray pool that studies share"
    )
    serve.add_argument(
        "--max-running", type=int, default=2, help="studies run at once; the others queue"
    )
    serve.add_argument(
        "--ray-dashboard",
        action="store_true",
        help="start Ray with its dashboard (needs the dashboard extra)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="listen beyond loopback with no token (only behind a proxy that authenticates)",
    )
    serve.add_argument(
        "--resume-interrupted",
        action="store_true",
        help="resume studies whose driver is gone (found at start-up and later) "
        "instead of waiting for a user to resume them",
    )
    serve.set_defaults(command=_serve)

    check = add(
        "cluster-check",
        help="list the Ray cluster's nodes and units, and check each can run a spec's trials",
    )
    check.add_argument("spec", type=Path, help="the study spec whose backend to check")
    check.add_argument("--ray-address", default=None, help="default: RAY_ADDRESS, else local")
    check.add_argument("--json", action="store_true")
    check.set_defaults(command=_cluster_check)

    render = add("render", help="print what a trial with given params runs")
    render.add_argument("spec", type=Path)
    render.add_argument("--params", default="{}", help="JSON, e.g. '{\"tp_size\": 2}'")
    render.set_defaults(command=_render)

    _flags.register(add)
    _workload.register(add)
    _plan.register(add)
    _calibrate.register(add)
    return parser


def _store(args: argparse.Namespace) -> Store:
    return open_store(args.store or default_store_path())


def _run(args: argparse.Namespace) -> int:
    spec = override(
        load_spec(args.spec),
        backend=args.backend,
        algorithm=args.search,
        max_trials=args.max_trials,
        seed=args.seed,
    )
    store = _store(args)
    study = create_study(spec, store=store)
    return _drive(args, spec, store, study.study_id, resume=False)


def _resume(args: argparse.Namespace) -> int:
    store = _store(args)
    study = store.get_study(args.study)
    return _drive(args, spec_from_dict(study.spec), store, study.study_id, resume=True)


def _drive(
    args: argparse.Namespace, spec: StudySpec, store: Store, study_id: str, resume: bool
) -> int:
    from tuner.cli._progress import LiveView

    console = Console(stderr=True)
    console.print(
        f"study [bold]{study_id}[/] ({spec.backend.kind} backend, "
        f"{spec.search.algorithm} search, up to {spec.max_trials} trials)"
    )
    for caution in spec.cautions():
        console.print(f"[yellow]warning:[/] {caution}", highlight=False)
    view = LiveView(store, spec, console)
    view.start(study_id)
    try:
        result = run_study(
            spec, store=store, study_id=study_id, resume=resume, ray_address=args.ray_address
        )
    finally:
        view.stop()
    _print_outcome(console, result)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    return 0 if result.study.state.value in ("completed", "stopped") else 1


def _print_outcome(console: Console, result: StudyResult) -> None:
    state = result.study.state.value
    best = result.best
    if result.study.message:
        console.print(f"[red]study {state}:[/] {result.study.message}")
    from tuner.cli._progress import measurement_warnings

    for line in measurement_warnings([*result.trials, *result.confirmations]):
        console.print(f"[yellow]warning:[/] {line}", highlight=False)
    if best is None:
        console.print(f"study {state}: no configuration met the SLO")
        return
    spec = result.spec
    console.print(
        f"study {state}. best: trial {best.number} {best.params} "
        f"{objective.score_label(spec.objective)}=[bold green]{best.score:.4g}[/]"
    )
    console.print(f"launch: {result.best_launch}", soft_wrap=True, highlight=False)
    _print_analysis(console, result)


def _print_analysis(console: Console, result: StudyResult) -> None:
    from tuner.cli._progress import confirmation_table, pareto_table

    verdict = result.confirmation
    if verdict is not None:
        console.print(confirmation_table(result.spec, verdict))
        console.print(f"confirmation: {verdict.reason}")
    if result.pareto:
        console.print(pareto_table(result.spec, result.pareto))
    if result.importance:
        ranked = ", ".join(f"{name} {share:.0%}" for name, share in result.importance.items())
        console.print(f"parameter importance: {ranked}", highlight=False)


def _list(args: argparse.Namespace) -> int:
    from tuner.cli._progress import studies_table

    Console().print(studies_table(_store(args).list_studies()))
    return 0


def _result(args: argparse.Namespace) -> StudyResult:
    return StudyResult.load(_store(args), args.study)


def _show(args: argparse.Namespace) -> int:
    from tuner.cli._progress import trials_table

    result = _result(args)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    console = Console()
    trials = [*result.trials, *result.confirmations]  # re-runs show as "re-run of #N"
    console.print(trials_table(result.spec, trials, result.study.best_trial_id))
    _print_outcome(console, result)
    return 0


def _export(args: argparse.Namespace) -> int:
    result = _result(args)
    best = result.best
    if best is None:
        raise TunerError(
            f"study {args.study} has no winner to export (no trial met the SLO); "
            f"`autotuner show {args.study}` shows why"
        )
    base = yaml.safe_load(args.base_runtime.read_text()) if args.base_runtime else None
    workdir = Path(tempfile.gettempdir())
    backend = make(result.spec, study_id=result.study.study_id, workdir=workdir)
    config = result.spec.server_config(best.params)
    text = backend.export(config, runtime=args.runtime, base_runtime=base).rstrip("\n") + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import webapp  # NiceGUI takes seconds to import: only for this command

    webapp.serve(
        args.host,
        args.port,
        args.store or default_store_path(),
        gpus=args.gpus,
        ray_dashboard=args.ray_dashboard,
        max_running=args.max_running,
        insecure=args.insecure,
        resume_interrupted=args.resume_interrupted,
    )
    return 0


def _cluster_check(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    report = check_cluster(spec, ray_address=args.ray_address)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        console = Console(stderr=False)
        table = Table(title=f"Ray nodes for backend '{spec.backend.kind}'", title_justify="left")
        for column in ("node", "address", "units", "ready"):
            table.add_column(column)
        for node in report["nodes"]:
            table.add_row(node["node_id"][:12], node["address"], str(node["units"]),
                          "yes" if node["problem"] is None else f"no: {node['problem']}")
        console.print(table)
        console.print(report["verdict"])
    return 0 if report["ok"] else 1


def _render(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as e:
        raise SpecError(f"--params is not JSON: {e}") from e
    if not isinstance(params, dict):
        raise SpecError("--params must be a JSON object of flag: value")
    spec.check_params(params)
    print(launch_text(spec, params))
    return 0
