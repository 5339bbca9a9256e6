"""GET /v1/index: the served search index and what it was built from (its index.json), or 409 `no_index`."""

from __future__ import annotations

from api.deps import HostDep
from api.routes import v1_router
from api.schemas import ErrorResponse, IndexInfo
from api.search import index_info

router = v1_router(tags=["search"])


@router.get("/index", response_model=IndexInfo,
            responses={401: {"model": ErrorResponse}, 409: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
async def get_index(host: HostDep) -> IndexInfo:
    return index_info(host)
