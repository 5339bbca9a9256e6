"""POST /v1/reconstruct: a video upload -> the masked clip's reconstruction (PNG grid, or JSON with the numbers and the
grid or one image per frame)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from api.deps import AdmittedHost
from api.reconstruction import reconstruct_video
from api.routes import UPLOAD_ERRORS, v1_router
from api.schemas import ReconstructOptions, ReconstructResponse
from api.upload import UPLOAD_BODY, received_upload

router = v1_router(tags=["inference"])

_PNG = {200: {"content": {"image/png": {}, "application/json": {"schema": {
    "$ref": "#/components/schemas/ReconstructResponse"}}},
    "description": "image/png by default; application/json with format=json or format=frames"}}


@router.post("/reconstruct", response_model=ReconstructResponse, responses={**UPLOAD_ERRORS, **_PNG},
             openapi_extra={"requestBody": UPLOAD_BODY})
async def reconstruct(request: Request, opts: Annotated[ReconstructOptions, Query()], host: AdmittedHost):
    host.require_decoder()  # before reading the upload: a model without a decoder cannot answer anyway
    async with received_upload(request, host.settings) as path, host.deadline():
        body, png = await reconstruct_video(host, path, opts)
    if opts.format != "png":
        return body
    headers = {"X-Reconstruction-Loss": f"{body.loss:.6g}", "X-Reconstruction-PSNR": f"{body.psnr:.4f}",
               "X-Frame-Indices": ",".join(map(str, body.frame_indices))}
    return Response(png, media_type="image/png", headers=headers)
