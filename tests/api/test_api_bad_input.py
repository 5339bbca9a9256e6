"""Bad input gets a 4xx JSON error with a message, never a 500, and the server keeps serving afterwards."""

from __future__ import annotations

import httpx
import pytest
from api_helpers import upload

pytestmark = pytest.mark.slow


def assert_client_error(r: httpx.Response, status: int | tuple[int, ...], error: str | None = None) -> dict:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    if error:
        assert body["error"] == error, body
    return body


@pytest.fixture()
def client(server):
    with server.client() as c:
        yield c
    # Every test leaves a server that still answers a good request.
    with server.client() as c:
        assert c.get("/readyz").status_code == 200
    assert server.alive()


@pytest.mark.parametrize("endpoint", ["/v1/embed", "/v1/reconstruct"])
@pytest.mark.parametrize(("video", "status", "error"), [
    ("text_mp4", 415, "unsupported_media_type"),     # a text file named .mp4
    ("truncated", 422, "unreadable_video"),          # an mp4 cut before its moov atom
    ("audio_only", 422, "no_video_stream"),          # an .mp4 holding only AAC audio
    ("zero_frames", 422, "no_video_stream"),         # a zero-length video: no stream survives muxing
    ("hls", 415, "unsupported_media_type"),          # a playlist pointing at a server-side file
    ("too_long", 422, "video_too_long"),
    ("too_many_frames", 422, "too_many_frames"),
    ("too_large", 422, "resolution_too_large"),
    ("too_many_pixels", 422, "resolution_too_large"),
])
def test_bad_files(client, videos, endpoint, video, status, error):
    body = assert_client_error(client.post(endpoint, files=upload(videos[video])), status, error)
    assert str(videos[video].parent) not in body["detail"]  # no server paths in messages


def test_truncated_after_the_header_serves_the_frames_that_decode(client, videos, tmp_path, trained_model):
    """A fast-start mp4 (moov first) cut in the middle: the container claims 100 frames, a third of them decode. The
    windows that exist are embedded (as the library computes them from those frames); the rest are not invented."""
    import torch
    from api_helpers import ffmpeg

    from videomae.transforms import eval_clip
    from videomae.video import count_frames, decode_frames

    whole = tmp_path / "faststart.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=80x64:rate=25", "-t", "4", "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    n = count_frames(cut)
    r = client.post("/v1/embed", files=upload(cut), params={"window_stride": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["num_frames"], body["header_num_frames"], body["frames_counted"]) == (n, 100, True)
    starts = [c["start_frame"] for c in body["clips"]]
    assert starts == list(range(0, n - 8 + 1, 8)) and body["clips"][-1]["end_frame"] <= n - 1
    clips = torch.stack([eval_clip(decode_frames(cut, list(range(s, s + 8)), backend="pyav"), 64) for s in starts])
    with torch.inference_mode():
        expected = trained_model.forward_pooled(clips)
    torch.testing.assert_close(torch.tensor([c["embedding"] for c in body["clips"]]), expected, atol=1e-5, rtol=1e-4)
    # A start past the frames that decode is refused by name, with the largest start that works.
    r = client.post("/v1/reconstruct", files=upload(cut), params={"start": n - 5, "format": "json"})
    assert f"start at most {n - 15}" in assert_client_error(r, 422, "invalid_request")["detail"]


def test_empty_body(client):
    assert_client_error(client.post("/v1/embed"), 415, "unsupported_media_type")
    r = client.post("/v1/embed", content=b"", headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert_client_error(r, 400, "bad_multipart")


def test_empty_file_and_missing_field(client):
    assert_client_error(client.post("/v1/embed", files={"file": ("a.mp4", b"", "video/mp4")}), 400, "empty_file")
    assert_client_error(client.post("/v1/embed", files={"video": ("a.mp4", b"abc", "video/mp4")}), 422,
                        "missing_file")
    assert_client_error(client.post("/v1/embed", data={"other": "x"}, files={"x": ("a", b"1")}), 422, "missing_file")
    # A real-sized video under the wrong field name is a missing field, not an oversized form (it was 413).
    r = client.post("/v1/embed", files={"video": ("a.mp4", bytes(69 * 1024), "video/mp4")})
    assert_client_error(r, 422, "missing_file")
    assert "'video'" in r.json()["detail"]


def test_malformed_multipart(client):
    body = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc"  # no closing boundary
    r = client.post("/v1/embed", content=body, headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert_client_error(r, 400, "bad_multipart")
    r = client.post("/v1/embed", content=b"garbage", headers={"content-type": "multipart/form-data"})
    assert_client_error(r, 400, "bad_multipart")


def test_oversized_upload_is_refused_while_streaming(client, server):
    """3 MiB against a 2 MiB limit, sent chunked (no Content-Length): refused from the stream itself."""
    boundary = "b0undary"
    sent = {"bytes": 0}

    def body():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'.encode()
        yield head
        for _ in range(48):
            sent["bytes"] += 65536
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        r = client.post("/v1/embed", content=body(), headers=headers)
        assert_client_error(r, 413, "upload_too_large")
    except httpx.WriteError:
        pass  # the server may answer and close before the client finished writing: also a refusal
    # With a Content-Length the refusal comes before the body is read.
    r = client.post("/v1/embed", files={"file": ("big.mp4", b"\0" * (3 * 2**20), "video/mp4")})
    assert_client_error(r, 413, "upload_too_large")
    assert not list(server.log.parent.glob("videomae-upload-*"))  # temp files are gone


@pytest.mark.parametrize(("endpoint", "params", "mentions"), [
    ("/v1/embed", {"clip_len": "abc"}, "clip_len"),
    ("/v1/embed", {"clip_len": "7"}, "clip_len"),  # not a multiple of the tubelet
    ("/v1/embed", {"frame_stride": "0"}, "frame_stride"),
    ("/v1/embed", {"pool": "median"}, "pool"),
    ("/v1/embed", {"normalize": "maybe"}, "normalize"),
    ("/v1/embed", {"window_stride": "-3"}, "window_stride"),
    ("/v1/embed", {"unknown_option": "1"}, "unknown_option"),
    ("/v1/reconstruct", {"mask_ratio": "1.5"}, "mask_ratio"),
    ("/v1/reconstruct", {"mask_ratio": "0.01"}, "mask_ratio"),  # nothing hidden
    ("/v1/reconstruct", {"seed": "-1"}, "seed"),
    ("/v1/reconstruct", {"start": "10000"}, "start"),  # beyond the video
    ("/v1/reconstruct", {"decoder_mask": "running_cell", "decoder_mask_ratio": "0"}, "running-cell"),
    ("/v1/reconstruct", {"format": "gif"}, "format"),
])
def test_wrong_options(client, videos, endpoint, params, mentions):
    body = assert_client_error(client.post(endpoint, files=upload(videos["testsrc"]), params=params), 422)
    assert mentions in body["detail"], body


def test_too_many_clips(client, videos):
    r = client.post("/v1/embed", files=upload(videos["long"]), params={"window_stride": 1, "clip_len": 2})
    assert "window_stride" in assert_client_error(r, 422, "too_many_clips")["detail"]


def test_unknown_routes_and_methods(client):
    assert_client_error(client.get("/v1/nothing"), 404, "not_found")
    assert_client_error(client.get("/v1/embed"), 405, "method_not_allowed")
    assert_client_error(client.get("/etc/passwd"), 404)
