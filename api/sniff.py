"""Recognise the container from the upload's first bytes, before any demuxer sees the file.

Probing by content, not by the file name: the client's extension is ignored. The allow-list exists because
libavformat (behind ffprobe, decord and PyAV) also opens text formats that point at *other* files or URLs: an HLS
playlist (`#EXTM3U`), an ffconcat list or an SDP file would make the server read its own paths or open connections
("no endpoint reads a server-side path"). Only self-contained binary video containers pass.
"""

from __future__ import annotations

from pathlib import Path

_HEAD = 64
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}


def container_of(head: bytes) -> str | None:
    """The container family the bytes start like, or None for anything else."""
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mp4"  # ISO-BMFF: mp4, mov, m4v, 3gp
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"  # mkv, webm
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if head.startswith(b"GIF87a") or head.startswith(b"GIF89a"):
        return "gif"
    if head[:1] == b"\x47" and len(head) > 1:
        return "mpegts"  # sync byte; the second packet is checked in sniff_file
    return None


def sniff_file(path: str | Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(_HEAD)
        kind = container_of(head)
        if kind == "mpegts":
            f.seek(188)
            if f.read(1) != b"\x47":
                return None
    return kind
