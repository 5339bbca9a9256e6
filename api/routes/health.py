"""/livez (the process answers), /readyz (the model is loaded and the batcher runs), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import MetricsDep, require_key
from api.errors import error_body
from api.schemas import ErrorResponse, Health

router = APIRouter(tags=["health"])


@router.get("/livez", response_model=Health)
async def livez() -> Health:
    # Answered on the event loop, never behind the model thread: it stays fast while batches run.
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorResponse}})
async def readyz(request: Request):
    host = getattr(request.app.state, "host", None)
    if host is None or not host.ready:
        return JSONResponse(error_body("not_ready", "the model is not loaded"), status_code=503,
                            headers={"Retry-After": "5"})
    return Health(status="ready")


@router.get("/metrics", dependencies=[Depends(require_key)], response_class=Response,
            responses={200: {"content": {"text/plain": {}}}, 401: {"model": ErrorResponse}})
async def metrics(m: MetricsDep) -> Response:
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
