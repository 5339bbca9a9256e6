"""HTTP routes, thin: options and dependencies in the signature; the work is in api/embedding.py, reconstruction.py.

Every module of this package defines `router` (with its own prefix and dependencies) and the app serves them all
(`routers()`, called by api/main.py): an endpoint is added by adding a module here. A module whose work runs on the
model registers its batch function with `api.engine.operation`.
"""

import importlib
import pkgutil

from fastapi import APIRouter, Depends

from api.deps import require_key
from api.schemas import ErrorResponse

API_PREFIX = "/v1"
_E = {"model": ErrorResponse}
# Every error the upload endpoints may answer, for the OpenAPI document (clients and the schemathesis fuzz read it).
UPLOAD_ERRORS = {400: _E, 401: _E, 408: _E, 409: _E, 413: _E, 415: _E, 422: _E, 503: _E}


def v1_router(**kwargs) -> APIRouter:
    """A router under /v1 whose every route needs the API key (when keys are configured)."""
    return APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_key)], **kwargs)


def routers() -> list[APIRouter]:
    """The `router` of every module in this package, in name order."""
    return [importlib.import_module(f"{__name__}.{m.name}").router for m in pkgutil.iter_modules(__path__)]
