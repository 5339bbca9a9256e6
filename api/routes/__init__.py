"""HTTP routes, thin: options and dependencies in the signature; the work is in api/embedding.py, reconstruction.py."""

from api.schemas import ErrorResponse

_E = {"model": ErrorResponse}
# Every error the upload endpoints may answer, for the OpenAPI document (clients and the schemathesis fuzz read it).
UPLOAD_ERRORS = {400: _E, 401: _E, 408: _E, 409: _E, 413: _E, 415: _E, 422: _E, 503: _E}
