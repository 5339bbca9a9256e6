"""POST /v1/embed: a video upload -> per-clip and pooled features (JSON, or npz arrays)."""

from __future__ import annotations

import io
from typing import Annotated

import numpy as np
from fastapi import Query, Request
from fastapi.responses import Response

from api.deps import AdmittedHost
from api.embedding import embed_video
from api.routes import UPLOAD_ERRORS, v1_router
from api.schemas import EmbedOptions, EmbedResponse
from api.upload import UPLOAD_BODY, received_upload

router = v1_router(tags=["inference"])

_NPZ = {200: {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/EmbedResponse"}},
                          "application/x-npz": {}},
              "description": "application/json by default; application/x-npz with format=npz"}}


@router.post("/embed", response_model=EmbedResponse, responses={**UPLOAD_ERRORS, **_NPZ},
             openapi_extra={"requestBody": UPLOAD_BODY})
async def embed(request: Request, opts: Annotated[EmbedOptions, Query()], host: AdmittedHost):
    async with received_upload(request, host.settings) as path, host.deadline():
        body = await embed_video(host, path, opts)
    if opts.format == "json":
        return body
    return Response(_npz(body), media_type="application/x-npz")


def _npz(body: EmbedResponse) -> bytes:
    """The same numbers as the JSON, as float32 arrays (no float-to-text round trip, ~4x smaller)."""
    buf = io.BytesIO()
    dim = body.dim
    np.savez(buf, embedding=np.asarray(body.embedding, dtype=np.float32),
             clips=np.asarray([c.embedding for c in body.clips], dtype=np.float32).reshape(-1, dim),
             start_frame=np.asarray([c.start_frame for c in body.clips], dtype=np.int64),
             end_frame=np.asarray([c.end_frame for c in body.clips], dtype=np.int64))
    return buf.getvalue()
