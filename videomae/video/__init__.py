"""Video I/O shared by ingest, the API and the trainer, one module per job:

- `safety`: what may be read (content sniffing, the demuxer allow-list, local files only) and `VideoError`;
- `probing`: `probe(path_or_bytes)` -> `VideoInfo`, container and stream facts (PyAV, ffprobe as the fallback);
- `decoding`: `decode_frames(path, indices)` -> uint8 (T, H, W, 3) (decord, PyAV as the fallback), `count_frames`;
- `frames`: frame-index helpers (`clip_indices`, the one definition) and the frame transforms the clip shards store
  (`resize_frames_short_side`, `encode_jpeg`, `decode_jpeg(s)`).

The names below are the public surface (`from videomae import video; video.probe(...)`).
"""

from videomae.video.decoding import count_frames, decode_frames
from videomae.video.frames import (
    clip_indices,
    decode_jpeg,
    decode_jpegs,
    encode_jpeg,
    frame_indices_at_times,
    resize_frames_short_side,
)
from videomae.video.probing import VideoInfo, probe
from videomae.video.safety import ALLOWED_DEMUXERS, SNIFF_BYTES, VideoError, sniff_container, sniff_file

__all__ = [
    "ALLOWED_DEMUXERS", "SNIFF_BYTES", "VideoError", "VideoInfo", "clip_indices", "count_frames", "decode_frames",
    "decode_jpeg", "decode_jpegs", "encode_jpeg", "frame_indices_at_times", "probe", "resize_frames_short_side",
    "sniff_container", "sniff_file",
]
