"""``/health`` (the process answers) and ``/ready`` (its database and, when configured, Redis
answer too), for load balancers and container health checks. Neither needs a key."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dispatcher.api.errors import error_body
from dispatcher.errors import DispatcherError

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(request.app.state.client.check_services)
    except DispatcherError as exc:
        return JSONResponse(error_body(503, str(exc), code="not_ready"), status_code=503,
                            headers={"retry-after": "1"})
    return JSONResponse({"status": "ready"})
