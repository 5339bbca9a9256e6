"""Video I/O shared by ingest, the API and the trainer, one module per job:

- `safety`: what may be read (content sniffing, the demuxer allow-list, local files only) and `VideoError`;
- `streams`: which video stream is read (`pick_stream`: the first default one, cover art excluded) and which way up
  its frames are shown (`upright`, from the display matrix);
- `probing`: `probe(path_or_bytes)` -> `VideoInfo`, what the container claims (PyAV, ffprobe as the fallback);
- `decoding`: `decode_frames(path, indices)` -> uint8 (T, H, W, 3) upright (decord, PyAV as the fallback),
  `decode_frames_at_times`, and `scan` / `count_frames`, the frames that actually decode. The low-level decode:
  outside this package a user's video is read through `length` (tests/test_seams.py checks it), never by indices
  taken from a container's claim;
- `length`: what is really there: `verify_length` (the claim if its last frame decodes, else a count) -> `Length`,
  and `FrameReader`, which reads by index and re-counts once instead of failing when a claim was wrong;
- `windows`: whole clip windows within the frames that decode (`fitting_windows`, `clip_span`) and why a video holds
  none (`no_window`: the reject reason and the frames that decode), for the API and feature extraction alike;
- `frames`: frame-index helpers (`clip_indices`, the one definition) and the frame transforms the clip shards store
  (`resize_frames_short_side`, `encode_jpeg`, `decode_jpeg(s)`).

The names below are the public surface (`from videomae import video; video.probe(...)`).
"""

from videomae.video.decoding import Pass, count_frames, decode_frames, decode_frames_at_times, scan
from videomae.video.frames import (
    clip_indices,
    decode_jpeg,
    decode_jpegs,
    encode_jpeg,
    frame_indices_at_times,
    resize_frames_short_side,
)
from videomae.video.length import FrameReader, Length, verify_length
from videomae.video.probing import VideoInfo, probe
from videomae.video.safety import ALLOWED_DEMUXERS, SNIFF_BYTES, VideoError, sniff_container, sniff_file
from videomae.video.streams import pick_stream, upright

__all__ = [
    "ALLOWED_DEMUXERS", "SNIFF_BYTES", "FrameReader", "Length", "Pass", "VideoError", "VideoInfo", "clip_indices",
    "count_frames", "decode_frames", "decode_frames_at_times", "decode_jpeg", "decode_jpegs", "encode_jpeg",
    "frame_indices_at_times", "pick_stream", "probe", "resize_frames_short_side", "scan", "sniff_container",
    "sniff_file", "upright", "verify_length",
]
