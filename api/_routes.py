"""The REST routes under ``/api``: studies, trials, events (SSE), best config and CSV."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api._body import document_body, read_document
from api._errors import AuthError
from service import BestConfig, Service, StudyView, trials_csv
from tuner.exceptions import TunerError
from tuner.spec import spec_from_dict
from tuner.store import EventRecord, StudyRecord, TrialRecord

__all__ = ["SESSION_COOKIE", "router"]

# Items one page of trials or events may hold; without a limit, trials come all at once and
# events 100,000 to a page (a study of a thousand trials writes about ten thousand).
MAX_PAGE = 1000
MAX_EVENTS = 100_000
# The cookie POST /api/session sets, for clients that cannot send headers (EventSource).
SESSION_COOKIE = "autotuner_session"


def _service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(_service)]


def require_token(request: Request, service: ServiceDep,
                  authorization: Annotated[str | None, Header()] = None,
                  session: Annotated[str | None, Cookie(
                      alias=SESSION_COOKIE, description="Set by `POST /api/session`, for "
                      "clients that cannot send headers (EventSource).")] = None) -> None:
    """Refuse the request unless it carries the service's token (when one is set).

    The token is read from the ``Authorization`` header, or proven by the session cookie;
    never from the URL, which proxies, browsers and access logs keep.
    """
    if not service.token:
        return
    given = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else None
    if service.check_token(given) or (given is None and service.check_session(session)):
        return
    hint = (" (a token in the URL is never accepted: URLs end up in logs)"
            if "token" in request.query_params else "")
    raise AuthError("a valid bearer token is required: send 'Authorization: Bearer <token>' "
                    f"(the AUTOTUNER_TOKEN the service was started with){hint}")


router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

_SPEC_BODY = document_body("StudySpec", "a study spec")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token (when the service has one)."},
    404: {"description": "No such study."},
}


@router.post("/session", status_code=204, summary="Start a cookie session",
             responses=_ERRORS)
def start_session(request: Request, service: ServiceDep) -> Response:
    """Set an HttpOnly, SameSite=Strict cookie that stands for the bearer token, for clients
    that cannot send an `Authorization` header on later calls (a browser's `EventSource`).

    Call it with the token in the header; `DELETE /api/session` ends the session.
    """
    response = Response(status_code=204)
    if service.token:
        response.set_cookie(SESSION_COOKIE, service.session_value(), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https",
                            path="/api")
    return response


@router.delete("/session", status_code=204, summary="End the cookie session",
               responses=_ERRORS)
def end_session() -> Response:
    """Clear the session cookie."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/api", httponly=True, samesite="strict")
    return response


@router.get("/health", summary="Service health")
def health(service: ServiceDep) -> dict[str, Any]:
    """Whether the service is up, and where its store is."""
    manager = service.manager
    return {"status": "ok", "store": str(manager.store.path), "gpus": manager.gpus,
            "ray_started": manager.ray_started, "ray_dashboard": manager.dashboard_url,
            "active": manager.active_ids()}


@router.get("/studies", summary="List studies", responses=_ERRORS)
def list_studies(service: ServiceDep) -> list[StudyView]:
    """Every study in the store, newest first, with progress and best trial."""
    return [service.view(record) for record in service.manager.store.list_studies()]


@router.post("/studies", status_code=201, summary="Create a study and queue it",
             openapi_extra=_SPEC_BODY,
             responses={**_ERRORS,
                        413: {"description": "The body is larger than 1 MiB."},
                        415: {"description": "The body is neither `application/json` nor "
                              "YAML (`application/yaml`)."},
                        422: {"description": "The spec is invalid; `errors` lists "
                              "each bad field path with its reason."}})
async def create_study(request: Request, service: ServiceDep) -> StudyView:
    """Validate the body as a `StudySpec`, record the study, and queue it to run.

    The study starts when fewer than the service's limit of studies are running; its trials
    share the service's GPU pool with every other study.
    """
    data = await read_document(request, "a study spec")
    # Validation can take a second (a grid of 100,000 points): never on the event loop.
    spec = await run_in_threadpool(spec_from_dict, data, source="the request body",
                                   base_dir=service.manager.datasets_dir)
    record = await run_in_threadpool(service.manager.submit, spec)
    return await run_in_threadpool(service.view, record)


@router.get("/studies/{study_id}", summary="Get a study", responses=_ERRORS)
def get_study(study_id: str, service: ServiceDep) -> StudyView:
    """State, progress and best trial so far of one study (its spec included)."""
    return service.view(service.manager.store.get_study(study_id))


Limit = Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="Items per page (at "
                                    f"most {MAX_PAGE}); default: all of them.")]
Cursor = Annotated[int, Query(ge=0, le=2**53, description="Start after this item: the "
                              "`X-Next-Cursor` of the previous page (default: from the first).")]


@router.get("/studies/{study_id}/trials", summary="List a study's trials", responses=_ERRORS)
def list_trials(study_id: str, service: ServiceDep, request: Request, response: Response,
                limit: Limit = None, cursor: Cursor = 0) -> list[TrialRecord]:
    """The trials in creation order, each with its params, state, score and levels.

    With `limit`, one page: when more follow, the `X-Next-Cursor` header holds the `cursor`
    of the next page and `Link` its URL (`rel="next"`).
    """
    store = service.manager.store
    store.get_study(study_id)
    trials = store.list_trials(study_id, after=cursor, limit=None if limit is None else limit + 1)
    return _page(request, response, trials, limit, lambda t: t.number)


@router.get("/studies/{study_id}/events.json", summary="List a study's events",
            responses=_ERRORS)
def list_events(study_id: str, service: ServiceDep, request: Request, response: Response,
                limit: Limit = None, cursor: Cursor = 0) -> list[EventRecord]:
    """The stored events, oldest first, paged like the trials (the cursor is a sequence
    number, as `after` of the event stream)."""
    store = service.manager.store
    store.get_study(study_id)
    size = limit or MAX_EVENTS
    events = store.events(study_id, after=cursor, limit=size + 1)
    return _page(request, response, events, size, lambda e: e.seq)


def _page(request: Request, response: Response, items: list[Any], limit: int | None,
          key: Callable[[Any], int]) -> list[Any]:
    """The first ``limit`` of ``items`` (read one further to know whether more follow), with
    the next page's cursor in ``X-Next-Cursor`` and ``Link``."""
    if limit is None or len(items) <= limit:
        return items
    page = items[:limit]
    cursor = str(key(page[-1]))
    response.headers["X-Next-Cursor"] = cursor
    url = request.url.include_query_params(cursor=cursor, limit=limit)
    response.headers["Link"] = f'<{url}>; rel="next"'
    return page


@router.post("/studies/{study_id}/stop", status_code=202, summary="Stop a study",
             responses={**_ERRORS, 409: {"description": "The study runs in another process."}})
def stop_study(study_id: str, service: ServiceDep) -> StudyView:
    """Stop a running study (no new trials; running ones end; every server goes) or drop a
    queued one. The study ends as `stopped` and can be resumed."""
    return service.view(service.manager.stop(study_id))


@router.post("/studies/{study_id}/resume", status_code=202, summary="Resume a study",
             responses={**_ERRORS, 409: {"description": "Running, queued or completed."}})
def resume_study(study_id: str, service: ServiceDep) -> StudyView:
    """Queue a stopped or failed study to run again; trials that finished are kept."""
    return service.view(service.manager.resume(study_id))


@router.delete("/studies/{study_id}", status_code=204, summary="Delete a study",
               responses={**_ERRORS, 409: {"description": "The study is running."}})
def delete_study(study_id: str, service: ServiceDep) -> Response:
    """Delete a study that is not running, with its trials and events."""
    service.manager.delete(study_id)
    return Response(status_code=204)


def _existing(study_id: str, service: ServiceDep) -> StudyRecord:
    return service.manager.store.get_study(study_id)


@router.get("/studies/{study_id}/events", response_class=EventSourceResponse,
            summary="Stream a study's events (SSE)", responses=_ERRORS)
async def study_events(
    study_id: str,
    service: ServiceDep,
    record: Annotated[StudyRecord, Depends(_existing)],
    after: Annotated[int | None, Query(ge=0, description="Send events after this sequence "
                                       "number (default: from the first).")] = None,
    last_event_id: Annotated[str | None, Header(description="Set by EventSource on "
                                                "reconnect; wins over `after`.")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: `study_started`, `trial_pending`, `trial_started`,
    `trial_warmed_up`, `level_measured`, `trial_finished`, `trial_failed`, `study_finished`.

    Each event's `id` is its sequence number and its `data` the stored event as JSON
    (`seq`, `study_id`, `at`, `kind`, `trial_id`, `data`). Resume with `Last-Event-ID` or
    `?after=`. Comments keep idle connections alive. The stream ends once the study has
    finished and every event was sent.
    """
    pos = after or 0
    if last_event_id and last_event_id.strip().isdigit():
        pos = int(last_event_id.strip())
    del record  # checked to exist before the stream starts
    async for event in service.hub.listen(study_id, pos, idle=service.keepalive_s):
        if event is not None:
            pos = event.seq
            yield _sse(event)
            if event.kind != "study_finished":
                continue
        if await asyncio.to_thread(_over, service, study_id):
            # the poller may not have seen the last events yet: send them from the store
            rest = await asyncio.to_thread(service.manager.store.events, study_id, pos,
                                           1_000_000)
            for event in rest:
                yield _sse(event)
            return
        if event is None:
            yield ServerSentEvent(comment="keep-alive")


def _sse(event: EventRecord) -> ServerSentEvent:
    return ServerSentEvent(id=str(event.seq), event=event.kind,
                           data=event.model_dump(mode="json"))


def _over(service: Service, study_id: str) -> bool:
    """Whether a study will send no more events (finished and not queued again, or gone)."""
    try:
        record = service.manager.store.get_study(study_id)
    except TunerError:  # deleted meanwhile
        return True
    return record.state.is_finished() and not service.manager.is_active(study_id)


@router.get("/studies/{study_id}/result", summary="Get what a study measured",
            responses=_ERRORS)
def get_result(study_id: str, service: ServiceDep) -> dict[str, Any]:
    """The study's result as the CLI's `--json` prints it: state, best trial with its launch
    text, every trial with its reason, the confirmation verdict, Pareto front, importance."""
    return service.result(study_id)


@router.get("/studies/{study_id}/best", summary="Get the best configuration",
            responses={**_ERRORS, 404: {"description": "No such study, or no best trial yet."}})
def get_best(study_id: str, service: ServiceDep) -> BestConfig:
    """The best trial so far and exactly how to launch it: a command line (twin, local) or an
    OME InferenceService manifest (ome)."""
    return service.best(study_id)


@router.get("/studies/{study_id}/best/download", summary="Download the best configuration",
            response_class=Response, responses={
                **_ERRORS, 200: {"content": {"text/x-shellscript": {}, "application/yaml": {}},
                                 "description": "The launch command or manifest, as a file."}})
def download_best(study_id: str, service: ServiceDep) -> Response:
    """The launch command (`.sh`) or InferenceService YAML (`.yaml`) of the best trial."""
    best = service.best(study_id)
    return Response(best.text if best.text.endswith("\n") else best.text + "\n",
                    media_type=best.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{best.filename}"'})


@router.get("/studies/{study_id}/trials.csv", summary="Download the trials as CSV",
            response_class=Response, responses={
                **_ERRORS, 200: {"content": {"text/csv": {}},
                                 "description": "One row per trial and measured level."}})
def download_trials(study_id: str, service: ServiceDep) -> Response:
    """Trials as CSV: one row per trial and measured level, with `param.<name>` columns and
    every level metric."""
    service.manager.store.get_study(study_id)
    text = trials_csv(service.manager.store.list_trials(study_id))
    return Response(text, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{study_id}-trials.csv"'})
