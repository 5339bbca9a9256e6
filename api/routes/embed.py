"""POST /v1/embed: a video upload -> per-clip and pooled features (JSON)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.deps import AdmittedHost
from api.embedding import embed_video
from api.routes import UPLOAD_ERRORS
from api.schemas import EmbedOptions, EmbedResponse
from api.upload import UPLOAD_BODY, received_upload

router = APIRouter(tags=["inference"])


@router.post("/embed", response_model=EmbedResponse, responses=UPLOAD_ERRORS,
             openapi_extra={"requestBody": UPLOAD_BODY})
async def embed(request: Request, opts: Annotated[EmbedOptions, Query()], host: AdmittedHost) -> EmbedResponse:
    async with received_upload(request, host.settings) as path, host.deadline():
        return await embed_video(host, path, opts)
