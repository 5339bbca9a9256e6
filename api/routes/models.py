"""GET /v1/models: what is served (no server paths: the id is derived from the architecture)."""

from __future__ import annotations

from api.deps import HostDep
from api.routes import v1_router
from api.schemas import ErrorResponse, ModelList

router = v1_router(tags=["models"])


@router.get("/models", response_model=ModelList,
            responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def list_models(host: HostDep) -> ModelList:
    return ModelList(models=[host.info])
