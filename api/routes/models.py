"""GET /v1/models: what is served (no server paths: the id is derived from the architecture)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import HostDep
from api.schemas import ModelList

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelList)
async def list_models(host: HostDep) -> ModelList:
    return ModelList(models=[host.info])
