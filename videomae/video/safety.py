"""What may be read, and how: container sniffing, the demuxer allow-list, and the errors of every video reader.

Only the local file is read. libavformat also opens formats that point at *other* files or URLs (HLS
playlists, ffconcat lists, SDP descriptions, DASH/IMF manifests, image2 file-name patterns); an untrusted
upload or a crawled file must not make the server read its own paths or open connections. So every open
through PyAV or ffprobe passes `protocol_whitelist=file` and a demuxer allow-list (`ALLOWED_DEMUXERS`), and
decord, which cannot be restricted, is only handed files whose first bytes and PyAV's demuxer agree on a
recognised binary container (`decord_may_read`). Paths are made absolute first (`local_name`), so a name like
`concat:a|b` or `-i` is a file name.

Errors are `VideoError`s with a short `reason` (declared in `videomae.reasons`): `empty` (0 bytes), `unreadable`
(cannot be opened, or a refused container), `no_video_stream`, `decode_error`. Details never contain the
file's path (they reach API clients and shared reject tables).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from videomae.reasons import EMPTY, UNREADABLE


class VideoError(RuntimeError):
    """A file that cannot be probed or decoded. `reason` is one of `videomae.reasons.REASONS` (empty, unreadable,
    no_video_stream, decode_error); `detail` is for people and never holds the path."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------------- what is read

# Demuxers that may read a file: self-contained containers, raw elementary streams and single-image pipes (ingest
# probes stills and drops them as too short). Everything else is refused, in particular hls, dash, concat, sdp,
# rtp/rtsp, imf and image2 (file-name patterns), which open other files or URLs named inside the file, and
# tty/ansi, which render any text file as "video". av_match_list matches any name of a multi-name demuxer
# ("mov" covers "mov,mp4,m4a,3gp,3g2,mj2").
ALLOWED_DEMUXERS = (
    "mov", "matroska", "avi", "flv", "ogg", "mpeg", "mpegts", "mpegvideo", "asf", "gif", "ivf", "nut",
    "h264", "hevc", "m4v", "obu", "mjpeg", "yuv4mpegpipe", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe",
)  # fmt: skip
OPEN_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_DEMUXERS)}

SNIFF_BYTES = 512  # what sniff_container needs to see (an MPEG-TS file is recognised by its second packet)
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}
# sniff_container's families -> the PyAV demuxer that must agree before decord gets the file.
_SNIFFED_DEMUXER = {"mp4": "mov", "matroska": "matroska", "avi": "avi", "flv": "flv", "ogg": "ogg",
                    "mpeg-ps": "mpeg", "mpegts": "mpegts", "gif": "gif"}  # fmt: skip
# Text formats that name other files or URLs: refused before any demuxer sees them, with a clear detail.
_REFERENCING = ((b"#EXTM3U", "an HLS playlist"), (b"ffconcat", "an ffconcat list"), (b"v=0", "an SDP description"),
                (b"<?xml", "an XML manifest (DASH/IMF?)"), (b"<MPD", "a DASH manifest"))  # fmt: skip


def sniff_container(head: bytes) -> str | None:
    """The container family the first bytes of a file start like (pass at least SNIFF_BYTES), or None.

    Only self-contained binary video containers are named: "mp4" (ISO-BMFF: mp4, mov, m4v, 3gp), "matroska"
    (mkv, webm), "avi", "flv", "ogg", "mpeg-ps", "mpegts", "gif". Text (playlists, lists, manifests) and
    anything else is None.
    """
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:1] == b"\x47" and len(head) > 188 and head[188] == 0x47:
        return "mpegts"  # a sync byte at the start of the first two 188-byte packets
    return None


def sniff_file(path: str | os.PathLike) -> str | None:
    """`sniff_container` on the file's first bytes."""
    with open(path, "rb") as f:
        return sniff_container(f.read(SNIFF_BYTES))


def local_name(path: str | os.PathLike) -> str:
    # Absolute, so that libavformat and ffprobe see a file name, never a protocol ("concat:", "http:") or option.
    return os.path.abspath(os.fspath(path))


def scrub(text: str, path: str) -> str:
    """Decoder messages quote the file name; keep server paths out of details."""
    for p in sorted({path, os.path.realpath(path)}, key=len, reverse=True):
        text = text.replace(f"{p}: ", "").replace(p, "<file>")
    return text


def check_head(path: str) -> bytes:
    """The first bytes, after refusing empty files and text formats that name other files."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        raise VideoError(UNREADABLE, e.strerror or type(e).__name__) from None
    if not head:
        raise VideoError(EMPTY, "0 bytes")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for magic, what in _REFERENCING:
        if text.startswith(magic):
            raise VideoError(UNREADABLE, f"refused: {what} refers to other files or URLs; only self-contained "
                                           "video files are read")  # fmt: skip
    return head


@contextmanager
def open_av(path: str):
    """PyAV container restricted to the local file and the allowed demuxers; open failures are VideoErrors."""
    import av

    try:
        # metadata_errors: a tag that is not UTF-8 must not make a readable file unreadable (or crash the caller).
        container = av.open(path, options=OPEN_OPTIONS, metadata_errors="replace")
    except av.error.ArgumentError:  # EINVAL: the probed demuxer is not on the allow-list
        raise VideoError(UNREADABLE, "not an allowed video container") from None
    except Exception as e:  # av.error.* (InvalidDataError, ...), OSError: whatever the untrusted bytes cause
        raise VideoError(UNREADABLE, scrub(f"{type(e).__name__}: {av_message(e)}", path)) from None
    with container:
        yield container


def av_message(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)  # av errors: strerror has no file name


def decord_may_read(head: bytes, format_name: str, video_streams: int) -> bool:
    """Whether decord (unrestricted libavformat) may open the file: the first bytes and PyAV's restricted demuxer
    (`format_name`, from a container opened with `open_av`) must agree on a recognised binary container. decord also
    chooses the stream itself, so only files with one video stream qualify (streams.pick_stream decides the rest)."""
    wanted = _SNIFFED_DEMUXER.get(sniff_container(head) or "")
    return wanted is not None and wanted in format_name.split(",") and video_streams == 1
