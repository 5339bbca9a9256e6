"""Containers are recognised by their bytes; text formats that point elsewhere (HLS, ffconcat, SDP) are refused."""

from __future__ import annotations

import pytest

from api.sniff import container_of, sniff_file


@pytest.mark.parametrize(("video", "kind"), [("testsrc", "mp4"), ("mandelbrot_webm", "matroska"), ("real", "mp4"),
                                             ("text_mp4", None), ("hls", None)])
def test_sniff_generated_files(videos, video, kind):
    assert sniff_file(videos[video]) == kind


@pytest.mark.parametrize("head", [b"#EXTM3U\n", b"ffconcat version 1.0\nfile /etc/passwd\n", b"v=0\r\no=- 0 0 IN IP4",
                                  b"", b"\x47short"])
def test_text_and_junk_are_not_containers(tmp_path, head):
    p = tmp_path / "x"
    p.write_bytes(head)
    assert sniff_file(p) is None
    assert container_of(b"RIFF\0\0\0\0AVI LIST") == "avi"
