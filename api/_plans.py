"""``/api/plans``: capacity plans, and studies that verify their best layouts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from api._body import document_body, read_document
from api._routes import ServiceDep, require_token
from service import Service, StudyView
from tuner.plan import PlanResult, plan_from_dict

__all__ = ["PLAN_BODY", "router"]

router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

PLAN_BODY = document_body("PlanSpec", "a plan")
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid bearer token (when the service has one)."},
    413: {"description": "The body is larger than 1 MiB."},
    415: {"description": "The body is neither `application/json` nor YAML."},
    422: {"description": "The plan is invalid; `errors` lists each bad field with its reason."},
}


@router.post("/plans", summary="Plan capacity", openapi_extra=PLAN_BODY, responses=_RESPONSES)
async def create_plan(request: Request, service: ServiceDep) -> dict[str, Any]:
    """The cheapest GPUs, layout (tp x replicas) and flags that serve the plan's load within
    its SLO, predicted by the twin's estimator: every layout that meets it, cheapest first,
    and the rest with why they lost (`autotuner plan --json` prints the same). Seconds to a
    minute; one plan at a time per service."""
    return (await _planned(request, service)).to_dict()


Count = Annotated[int, Query(ge=1, le=20, description="How many of the best layouts to "
                             "measure (one study each).")]


@router.post("/plans/verify", status_code=201, summary="Verify a plan's best layouts",
             openapi_extra=PLAN_BODY, responses=_RESPONSES)
async def verify_plan(request: Request, service: ServiceDep, count: Count = 3
                      ) -> dict[str, Any]:
    """Plan, then queue one study per layout among the `count` best that the plan's
    `verify.backend` can run (the twin by default): one replica at its share of the load.
    Each study's description keeps the planned figures; its page shows what it measures."""
    result = await _planned(request, service)
    records = await run_in_threadpool(service.verify_plan, result, count)
    views: list[StudyView] = [await run_in_threadpool(service.view, r) for r in records]
    return {"plan": result.to_dict(), "studies": [v.model_dump(mode="json") for v in views]}


async def _planned(request: Request, service: Service) -> PlanResult:
    """The plan the body describes, validated and run off the event loop."""
    data = await read_document(request, "a plan")
    spec = await run_in_threadpool(plan_from_dict, data, source="the request body")
    return await run_in_threadpool(service.plan, spec)
