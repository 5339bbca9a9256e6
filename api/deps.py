"""Annotated dependencies: settings, the API key check, the loaded model and the admission slot."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.engine import ModelHost
from api.errors import ApiError
from api.metrics import Metrics
from api.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="one of VIDEOMAE_API_KEYS, when keys are configured")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def require_key(settings: SettingsDep,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """401 unless `Authorization: Bearer <key>` carries a configured key (no-op when no keys are configured)."""
    if not settings.api_keys:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "missing_api_key", "send 'Authorization: Bearer <key>'", headers=challenge)
    given = credentials.credentials.encode()
    # Compare against every key in constant time, so timing does not tell which prefix matched.
    if not any([hmac.compare_digest(given, k.encode()) for k in settings.api_keys]):
        raise ApiError(401, "invalid_api_key", "the API key is not valid", headers=challenge)


def get_host(request: Request) -> ModelHost:
    host: ModelHost | None = getattr(request.app.state, "host", None)
    if host is None or not host.ready:
        raise ApiError(503, "not_ready", "the model is not loaded", headers={"Retry-After": "5"})
    return host


HostDep = Annotated[ModelHost, Depends(get_host)]


async def admitted_host(host: HostDep) -> AsyncIterator[ModelHost]:
    """The model, with one of the `queue_size` request slots held for the whole request (else 503)."""
    host.admit()
    try:
        yield host
    finally:
        host.release()


AdmittedHost = Annotated[ModelHost, Depends(admitted_host)]
