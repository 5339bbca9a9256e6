"""GET /v1/limits: what this server accepts (size, duration, frames, pixels, windows, time), so a client can show the
limits before it uploads. The values are the settings of the same names (api/settings.py)."""

from __future__ import annotations

from api.deps import SettingsDep
from api.routes import v1_router
from api.schemas import ErrorResponse, Limits

router = v1_router(tags=["models"])


@router.get("/limits", response_model=Limits, responses={401: {"model": ErrorResponse}})
async def limits(settings: SettingsDep) -> Limits:
    return Limits(**settings.model_dump(include=set(Limits.model_fields)))
