"""POST /embed, /reconstruct, /search: aliases of the /v1 routes without the version prefix (the paths the project's
description names). Each is the /v1 route's own endpoint, options, answers, auth and limits, registered once more
under the bare path; the OpenAPI document lists them as aliases (docs/api.md "Unversioned aliases")."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from api.routes import API_PREFIX, embed, reconstruct, search

ALIASED = (embed, reconstruct, search)

router = APIRouter()

for _module in ALIASED:
    for _route in _module.router.routes:
        assert isinstance(_route, APIRoute) and _route.path.startswith(API_PREFIX), _route
        router.add_api_route(
            _route.path.removeprefix(API_PREFIX), _route.endpoint, methods=sorted(_route.methods),
            response_model=_route.response_model, responses=_route.responses, openapi_extra=_route.openapi_extra,
            dependencies=_route.dependencies,  # the /v1 router's API key check
            tags=["aliases"], operation_id=f"{_route.name}_unversioned",
            summary=f"Alias of {_route.path}", description=f"The same endpoint as `POST {_route.path}`: the same "
                                                           "options, answers, errors, auth and limits.")
