"""Receive the multipart field `file` straight into a temp file, enforcing the size limit chunk by chunk.

The body is never held in memory: each chunk from the socket goes through python-multipart's streaming parser and
the `file` part's bytes are appended to a temp file as they arrive, so an oversized upload is refused (413) once
the limit is crossed, not after it has been read. The temp file has a neutral suffix: the container is decided by
probing the content, never by the client's file name. The file is deleted when the request is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from api.errors import ApiError
from api.settings import Settings

FIELD = "file"
_MAX_PARTS = 16  # a video and a few stray fields at most; more is abuse of the parser
_MAX_OTHER_PART_BYTES = 64 * 1024

# The OpenAPI description of the body, attached to the routes (the route reads the stream itself).
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FIELD],
                "properties": {FIELD: {"type": "string", "format": "binary",
                                       "description": "the video; any container ffprobe recognises"}},
            }
        }
    },
}


class _FilePart:
    """Callbacks for python-multipart: route the `file` part to disk, count everything else."""

    def __init__(self, sink, limit: int):
        self.sink = sink
        self.limit = limit
        self.file_bytes = 0
        self.other_bytes = 0
        self.parts = 0
        self.found = False
        self.finished = False
        self.names: list[str] = []  # the other fields' names (a few), for the missing_file message
        self._in_file = False
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_cb,
            "on_header_value": self._header_value_cb,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise ApiError(400, "bad_multipart", f"more than {_MAX_PARTS} parts in the form")
        self._headers = {}
        self._header_field = self._header_value = b""

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        is_file = params.get(b"name") == FIELD.encode()
        if not is_file and len(self.names) < 4:
            self.names.append(params.get(b"name", b"").decode("utf-8", "replace")[:40])
        if is_file and self.found:
            raise ApiError(400, "bad_multipart", f"more than one '{FIELD}' field")
        self._in_file = is_file
        self.found = self.found or is_file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._in_file:
            self.file_bytes += n
            if self.file_bytes > self.limit:
                raise ApiError(413, "upload_too_large", f"the upload exceeds {self.limit} bytes")
            self.sink.write(data[start:end])
        else:
            # Discarded, and bounded only by the whole body's limit (`_stream_into`): a video sent under another
            # field name must get 422 missing_file, which names the field, not 413.
            self.other_bytes += n

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.finished = True


def _boundary(request: Request) -> bytes:
    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data":
        raise ApiError(415, "unsupported_media_type",
                       f"send the video as multipart/form-data with a '{FIELD}' field")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "bad_multipart", "multipart/form-data without a valid boundary")
    return boundary


async def _stream_into(request: Request, part: _FilePart, boundary: bytes, limit: int) -> None:
    parser = MultipartParser(boundary, part.callbacks())
    # The whole body, not only the file, is bounded: multipart framing adds a few hundred bytes.
    body_limit = limit + _MAX_OTHER_PART_BYTES + 16 * 1024
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise ApiError(413, "upload_too_large", f"the upload exceeds {limit} bytes")
            parser.write(chunk)
    except FormParserError as e:
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {e}") from None
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away during the upload") from None


@contextlib.asynccontextmanager
async def received_upload(request: Request, settings: Settings) -> AsyncIterator[Path]:
    """`async with received_upload(request, settings) as path:` the uploaded file on local disk, deleted on exit."""
    limit = settings.max_upload_bytes
    boundary = _boundary(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + _MAX_OTHER_PART_BYTES + 16 * 1024:
        # Refuse before reading a byte when the client announces the size.
        raise ApiError(413, "upload_too_large", f"the upload exceeds {limit} bytes")
    fd, name = tempfile.mkstemp(prefix="videomae-upload-", suffix=".bin", dir=settings.tmp_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as sink:
            part = _FilePart(sink, limit)
            try:
                async with asyncio.timeout(settings.upload_timeout_s):
                    await _stream_into(request, part, boundary, limit)
            except TimeoutError:
                raise ApiError(408, "upload_timeout",
                               f"the upload took longer than {settings.upload_timeout_s:g} s") from None
        if not part.finished:
            raise ApiError(400, "bad_multipart", "the multipart body ended before its closing boundary")
        if not part.found:
            seen = f" (it has: {', '.join(repr(n) for n in part.names)})" if part.names else ""
            raise ApiError(422, "missing_file", f"the form has no '{FIELD}' field{seen}: send the video as '{FIELD}'")
        if part.file_bytes == 0:
            raise ApiError(400, "empty_file", f"the '{FIELD}' field is empty")
        yield path
    finally:
        path.unlink(missing_ok=True)
