"""Why an input gives no output: the reject reasons of ingest, feature extraction and the API, declared once.

Each reason is a short name (what ingest's `rejects.parquet`, a features directory's `rejects.parquet` and
`VideoError.reason` hold) with how the API answers an upload refused for it: its error tag, its HTTP status and its
message, a template around the detail. Code names a reason by its constant (`reasons.TOO_SHORT`), never by a string,
so a reason that is not declared here fails at import, in any test; tests/test_seams.py checks that no reason is
raised or compared as a bare string.

Adding a reason is adding its constant and one entry in `REASONS`; ingest's report orders its columns by this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    """What a reason means, and how the API refuses an upload for it: its HTTP status (None: the API never does), its
    error tag (empty: the reason's own name) and its message, a template around the detail."""

    meaning: str
    status: int | None = None
    tag: str = ""
    template: str = "{detail}"

    def message(self, detail: str) -> str:
        return self.template.format(detail=detail)


MISSING = "missing"
EMPTY = "empty"
MISSING_LABEL = "missing_label"
UNREADABLE = "unreadable"
NO_VIDEO_STREAM = "no_video_stream"
TOO_SHORT = "too_short"
DECODE_ERROR = "decode_error"
NO_FRAMES = "no_frames"

# In the order the steps of ingest can produce them (its report's columns follow it).
REASONS: dict[str, Reason] = {
    MISSING: Reason("listed (in a manifest) but not found"),
    EMPTY: Reason("zero bytes, or a video stream without frames", 422, "empty_video", "empty video: {detail}"),
    MISSING_LABEL: Reason("a labeled source's row without a label"),
    UNREADABLE: Reason("cannot be opened: corrupt, truncated header, not a media file, a refused container", 422,
                       "unreadable_video", "unreadable video: {detail}"),
    NO_VIDEO_STREAM: Reason("media without video (audio only, subtitles, cover art)", 422,
                            template="no video stream (audio only?): {detail}"),
    TOO_SHORT: Reason("fewer frames decode than one clip spans (the detail says how many decode)", 422,
                      "video_too_short"),
    DECODE_ERROR: Reason("opens, but no frame decodes (a cut file keeps, and is measured by, what decodes)", 422,
                         template="decode error (truncated or corrupt?): {detail}"),
    NO_FRAMES: Reason("no frames where they were asked for (a shard part without the video's clips, a start frame "
                      "past the end)"),
}


def reason(name: str) -> Reason:
    """The declaration of a reason; a name not declared here is a KeyError naming the declared ones."""
    try:
        return REASONS[name]
    except KeyError:
        raise KeyError(f"unknown reject reason {name!r}; declared: {', '.join(REASONS)}") from None


def api_tag(name: str) -> str:
    return reason(name).tag or name
