"""POST /v1/search: the stored clips nearest to an uploaded video, a stored clip (`clip_id`) or video (`video_id`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from api.deps import AdmittedHost
from api.errors import ApiError
from api.routes import UPLOAD_ERRORS, v1_router
from api.schemas import ErrorResponse, SearchOptions, SearchResponse
from api.search import require_index, search_stored, search_upload
from api.upload import UPLOAD_BODY, received_upload

router = v1_router(tags=["search"])

# The body is optional: a stored query (clip_id / video_id) sends none.
_BODY = {**UPLOAD_BODY, "required": False}


@router.post("/search", response_model=SearchResponse, responses={**UPLOAD_ERRORS, 404: {"model": ErrorResponse}},
             openapi_extra={"requestBody": _BODY})
async def search(request: Request, opts: Annotated[SearchOptions, Query()], host: AdmittedHost):
    require_index(host)
    has_body = request.headers.get("content-type", "").startswith("multipart/form-data")
    if opts.clip_id is not None or opts.video_id is not None:
        if has_body:
            raise ApiError(422, "invalid_request", "give one query: an uploaded file, clip_id or video_id")
        async with host.deadline():
            return await search_stored(host, opts)
    if not has_body:
        raise ApiError(422, "missing_query", "give a query: an uploaded video (multipart field 'file'), clip_id or "
                                             "video_id")
    async with received_upload(request, host.settings) as path, host.deadline():
        return await search_upload(host, path, opts)
