"""Thumbnails of indexed clips (`GET /v1/search/thumbnail`): the middle frame of a clip, read from the video file that
the index's row for that clip names, and from nothing else.

The request's only input is a clip id, looked up in the loaded index: an id the index does not hold is a 404 before
any file is touched, and no option takes a path, so a client cannot point the server at a file. The file the row
names (for an index over ingest shards: the source video the clips were cut from) is read as an upload is read: its
content must be a video container (`sniff_file`; a playlist or any text that names other files is refused, never
followed), the library probes and decodes it with its demuxer allow-list, and frames beyond the pixel limits are not
decoded. A file that is gone, is not a video or does not decode there is a 404 `media_unavailable`: the index is
served, its media are not (any more).
"""

from __future__ import annotations

import io

from PIL import Image

from api.engine import ModelHost
from api.errors import ApiError
from api.preprocess import check_size
from api.schemas import ThumbnailOptions
from api.search import require_index
from api.settings import Settings
from videomae import storage
from videomae.video import FrameReader, Length, VideoError, probe, sniff_file

JPEG_QUALITY = 85


def _unavailable(why: str) -> ApiError:
    return ApiError(404, "media_unavailable", f"the clip's video cannot be read here: {why}")


def _within_limits(width: int, height: int, settings: Settings) -> None:
    try:
        check_size(width, height, settings)  # the uploads' pixel limit bounds the decode's memory here too
    except ApiError as e:
        raise _unavailable(e.detail) from None


def middle_frame(row: dict) -> int:
    return (int(row["start_frame"]) + int(row["end_frame"])) // 2


def read_thumbnail(row: dict, settings: Settings, size: int) -> bytes:
    """A JPEG of the clip's middle frame, upright, within `size` x `size` px (aspect kept). Blocks (decodes)."""
    frame = middle_frame(row)
    try:
        with storage.local_file(str(row["uri"])) as path:
            if sniff_file(path) is None:
                raise _unavailable("not a recognised video container")
            info = probe(path)
            _within_limits(info.width, info.height, settings)
            frames = FrameReader(path, Length.claimed(info), rotation=info.rotation).read([frame])  # (1, H, W, 3)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise _unavailable("the file the index names is not there") from None
    except VideoError as e:
        raise _unavailable(e.detail or e.reason) from None
    if frames is None:
        raise _unavailable(f"frame {frame} does not decode")
    _within_limits(frames.shape[2], frames.shape[1], settings)  # the header may lie about the size
    image = Image.fromarray(frames[0])
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


async def clip_thumbnail(host: ModelHost, opts: ThumbnailOptions) -> bytes:
    index = require_index(host)
    if not index.has_clip(opts.clip_id):
        raise ApiError(404, "unknown_clip", "the index has no clip with this clip_id")
    return await host.offload(read_thumbnail, index.clip_row(opts.clip_id), host.settings, opts.size)
