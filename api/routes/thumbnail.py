"""GET /v1/search/thumbnail: a JPEG of an indexed clip's middle frame, from the video the index names for it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import Response

from api.deps import AdmittedHost
from api.routes import v1_router
from api.schemas import ErrorResponse, ThumbnailOptions
from api.thumbnails import clip_thumbnail

router = v1_router(tags=["search"])
_E = {"model": ErrorResponse}


@router.get("/search/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the frame as a JPEG"},
                       401: _E, 404: _E, 409: _E, 422: _E, 503: _E})
async def thumbnail(opts: Annotated[ThumbnailOptions, Query()], host: AdmittedHost) -> Response:
    async with host.deadline():
        jpeg = await clip_thumbnail(host, opts)
    # The same clip of the same index is the same picture: let the browser keep it (private: it needed a key).
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
