"""GET / (the page) and GET /ui/{name} (its script and style): a browser client of this API, plain HTML, CSS and
JavaScript shipped in the package (api/static/), no build step and nothing fetched from elsewhere.

The files are public, like /livez: they hold no data, and the page asks for the API key and sends it as the Bearer
header of its own /v1 calls. Only the files of api/static/ are served, by name from a list made at import: a name
is never joined to a path. The Content-Security-Policy keeps the page to this server (scripts, styles, calls) and to
images it makes itself (data: and blob: URLs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from api.errors import ApiError
from api.schemas import ErrorResponse

STATIC = Path(__file__).resolve().parents[1] / "static"
PAGE = "index.html"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8"}
ASSETS = {p.name: MEDIA_TYPES[p.suffix] for p in sorted(STATIC.iterdir()) if p.suffix in MEDIA_TYPES and p.name != PAGE}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}

router = APIRouter(tags=["page"])


def _file(name: str, media_type: str) -> Response:
    return Response((STATIC / name).read_bytes(), media_type=media_type, headers=HEADERS)


@router.get("/", response_class=Response,
            responses={200: {"content": {"text/html": {}}, "description": "the page (docs/api.md \"The page\")"}})
async def page() -> Response:
    return _file(PAGE, MEDIA_TYPES[".html"])


@router.get("/ui/{name}", response_class=Response,
            responses={200: {"content": {t.split(";")[0]: {} for t in set(ASSETS.values())},
                             "description": "the page's script or style"},
                       404: {"model": ErrorResponse}})
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"the page has no file {name[:80]!r}")
    return _file(name, media_type)
