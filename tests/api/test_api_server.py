"""The API against a real uvicorn server: features equal the library's, reconstructions are the library's loss and
draw the documented layout, a trained model beats a random one, keys are enforced, health and metrics answer."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
import torch
from api_helpers import API_KEY, OTHER_KEY, library_clip, start_server, stop_server, upload
from PIL import Image

import videomae
from videomae.pictures import prediction_panels
from videomae.transforms import sliding_windows, to_uint8_frames
from videomae.video import probe

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------------------------------------------ models
def test_models_describes_the_served_model(server):
    with server.client() as c:
        r = c.get("/v1/models")
    assert r.status_code == 200
    (m,) = r.json()["models"]
    assert m["preset"] == "nano" and m["model_type"] == "pretrain"
    assert (m["num_frames"], m["img_size"], m["feature_dim"]) == (8, 64, 96)
    assert m["can_reconstruct"] is True
    assert "/" not in m["id"]  # no server path leaks into the description


# ------------------------------------------------------------------------------------------------------- embed
@pytest.mark.parametrize("video", ["testsrc", "real", "mandelbrot_webm"])
def test_embed_equals_library_forward(server, videos, trained_model, video):
    path = videos[video]
    with server.client() as c:
        r = c.post("/v1/embed", files=upload(path, "x.bin"), params={"frame_stride": 2, "window_stride": 6})
    assert r.status_code == 200, r.text
    body = r.json()
    n = probe(path).num_frames
    starts = sliding_windows(n, 8, 2, 6)
    assert [cl["start_frame"] for cl in body["clips"]] == starts
    assert body["dim"] == 96 and len(body["embedding"]) == 96 and body["num_frames"] == n
    clips = torch.stack([library_clip(path, 8, 2, s, 64) for s in starts])
    with torch.inference_mode():
        expected = trained_model.forward_pooled(clips)  # (K, C)
    got = torch.tensor([cl["embedding"] for cl in body["clips"]])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(body["embedding"]), expected.mean(0), atol=1e-5, rtol=1e-4)
    assert body["clips"][-1]["end_frame"] == min(starts[-1] + 14, n - 1)


def test_embed_is_deterministic(server, videos):
    with server.client() as c:
        a = c.post("/v1/embed", files=upload(videos["real"])).json()
        b = c.post("/v1/embed", files=upload(videos["real"])).json()
    assert a == b


def test_embed_pooling_and_normalisation(server, videos):
    with server.client() as c:
        raw = c.post("/v1/embed", files=upload(videos["long"]), params={"window_stride": 20}).json()
        mx = c.post("/v1/embed", files=upload(videos["long"]),
                    params={"window_stride": 20, "pool": "max", "normalize": "true"}).json()
        short = c.post("/v1/embed", files=upload(videos["long"]),
                       params={"window_stride": 20, "include_clips": "false"}).json()
    per_clip = torch.tensor([cl["embedding"] for cl in raw["clips"]])
    assert len(raw["clips"]) == len(sliding_windows(100, 8, 1, 20)) > 1
    want = torch.nn.functional.normalize(per_clip.amax(0), dim=0)
    torch.testing.assert_close(torch.tensor(mx["embedding"]), want, atol=1e-5, rtol=1e-4)
    norms = torch.tensor([cl["embedding"] for cl in mx["clips"]]).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    assert short["clips"] == [] and short["embedding"] == raw["embedding"]


def test_embed_npz_carries_the_same_numbers(server, videos):
    params = {"frame_stride": 2, "window_stride": 6}
    with server.client() as c:
        js = c.post("/v1/embed", files=upload(videos["testsrc"]), params=params).json()
        r = c.post("/v1/embed", files=upload(videos["testsrc"]), params={**params, "format": "npz"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npz"
    arrays = np.load(io.BytesIO(r.content))
    assert arrays["clips"].dtype == np.float32 and arrays["clips"].shape == (len(js["clips"]), 96)
    np.testing.assert_array_equal(arrays["embedding"], np.asarray(js["embedding"], dtype=np.float32))
    np.testing.assert_array_equal(arrays["clips"], np.asarray([cl["embedding"] for cl in js["clips"]], np.float32))
    assert arrays["start_frame"].tolist() == [cl["start_frame"] for cl in js["clips"]]


def test_concurrent_requests_are_micro_batched(server, videos):
    """Four clients at once: each gets the answer it gets alone, and some forward ran more than one clip."""
    with server.client() as c:
        alone = c.post("/v1/embed", files=upload(videos["testsrc"]), params={"frame_stride": 4}).json()
        before = _batch_hist(c.get("/metrics").text)
    results, barrier = [None] * 4, threading.Barrier(4)

    def call(i):
        with server.client() as c:
            barrier.wait()
            results[i] = c.post("/v1/embed", files=upload(videos["testsrc"]), params={"frame_stride": 4})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for r in results:
        assert r.status_code == 200
        torch.testing.assert_close(torch.tensor(r.json()["embedding"]), torch.tensor(alone["embedding"]),
                                   atol=1e-5, rtol=1e-4)
    with server.client() as c:
        after = _batch_hist(c.get("/metrics").text)
    count, total = after[0] - before[0], after[1] - before[1]
    assert count >= 1 and total == 4 and total / count > 1, (count, total)


def _batch_hist(text: str) -> tuple[float, float]:
    values = {}
    for line in text.splitlines():
        if line.startswith('videomae_api_batch_size_count{op="embed"}'):
            values["count"] = float(line.split()[-1])
        if line.startswith('videomae_api_batch_size_sum{op="embed"}'):
            values["sum"] = float(line.split()[-1])
    return values.get("count", 0.0), values.get("sum", 0.0)


# ------------------------------------------------------------------------------------------------- reconstruct
def _library_loss(model, path, start, stride, seed, masking):
    clip = library_clip(path, 8, stride, start, 64)[None]
    enc, dec = videomae.sample_masks(masking, model.cfg.grid, 1, seed)
    with torch.inference_mode():
        loss, _ = model(clip, torch.from_numpy(enc), torch.from_numpy(dec))
    return clip[0], enc[0], dec[0], float(loss)


def test_reconstruct_png_layout(server, videos, trained_model):
    with server.client() as c:
        r = c.post("/v1/reconstruct", files=upload(videos["real"]), params={"seed": 3, "start": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert img.shape == (5 * 64, 8 * 64, 3)  # rows: original, masked, reconstruction, prediction, error
    clip, enc, dec, loss = _library_loss(trained_model, videos["real"], 2, 2, 3, videomae.MaskingConfig(decoder="none"))
    frames = to_uint8_frames(clip)  # (T, S, S, 3)
    np.testing.assert_array_equal(img[:64], np.concatenate(list(frames), axis=1))
    # Row 1: a hidden cube is grey; a visible one is the original. Tube masking: the same cubes in every frame.
    hidden = enc.reshape(4, 4, 4)[0]  # (h, w) of the first temporal slice
    r0, c0 = np.argwhere(hidden)[0]
    r1, c1 = np.argwhere(~hidden)[0]
    tile = img[64:128, :64]
    assert (tile[r0 * 16:(r0 + 1) * 16, c0 * 16:(c0 + 1) * 16] == 128).all()
    np.testing.assert_array_equal(tile[r1 * 16:(r1 + 1) * 16, c1 * 16:(c1 + 1) * 16],
                                  frames[0][r1 * 16:(r1 + 1) * 16, c1 * 16:(c1 + 1) * 16])
    # Row 2: visible cubes are copied from the input, hidden ones predicted (not grey).
    rec_tile = img[128:192, :64]
    np.testing.assert_array_equal(rec_tile[r1 * 16:(r1 + 1) * 16, c1 * 16:(c1 + 1) * 16],
                                  frames[0][r1 * 16:(r1 + 1) * 16, c1 * 16:(c1 + 1) * 16])
    assert not (rec_tile[r0 * 16:(r0 + 1) * 16, c0 * 16:(c0 + 1) * 16] == 128).all()
    # Rows 3 and 4, videomae/pictures.py's views of the same prediction: visible cubes as in row 1.
    with torch.inference_mode():
        _, pred = trained_model(clip[None], torch.from_numpy(enc)[None], torch.from_numpy(dec)[None])
    views = prediction_panels(clip, torch.from_numpy(enc), torch.from_numpy(dec), pred[0], 2, 16)
    for row, name in ((3, "prediction"), (4, "error")):
        expected = (views[name] * 255).round().astype(np.uint8)  # (T, S, S, 3)
        np.testing.assert_allclose(img[row * 64:(row + 1) * 64].astype(int),
                                   np.concatenate(list(expected), axis=1).astype(int), atol=1)
    assert float(r.headers["x-reconstruction-loss"]) == pytest.approx(loss, rel=1e-4)


@pytest.mark.parametrize("decoder", ["none", "running_cell"])
def test_reconstruct_json_is_the_library_loss(server, videos, trained_model, decoder):
    params = {"format": "json", "seed": 7, "decoder_mask": decoder, "mask_ratio": 0.75}
    with server.client() as c:
        r = c.post("/v1/reconstruct", files=upload(videos["testsrc"]), params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    masking = videomae.MaskingConfig(encoder_ratio=0.75, decoder=decoder)
    _, enc, dec, loss = _library_loss(trained_model, videos["testsrc"], 0, 2, 7, masking)
    assert body["loss"] == pytest.approx(loss, rel=1e-4)
    assert (body["num_hidden"], body["num_decoded"], body["num_scored"]) == (enc.sum(), dec.sum(), (enc & dec).sum())
    assert body["psnr"] > 0 and body["frame_indices"] == list(range(0, 16, 2))
    png = Image.open(io.BytesIO(base64.b64decode(body["image_png_base64"])))
    assert png.size == (8 * 64, 5 * 64)


def test_trained_model_reconstructs_better_than_random(server, tmp_path, model_dirs, videos):
    """The same clip, masks and seed through two servers: the trained nano's loss is below the random one's."""
    rand = start_server(tmp_path, {"VIDEOMAE_MODEL": str(model_dirs["random"])}, command="python -m api")
    try:
        params = {"format": "json", "seed": 11, "start": 6}
        with rand.client(key=None) as c:  # no keys configured on this one: open on loopback
            random_body = c.post("/v1/reconstruct", files=upload(videos["testsrc"]), params=params).json()
        with server.client() as c:
            trained_body = c.post("/v1/reconstruct", files=upload(videos["testsrc"]), params=params).json()
    finally:
        stop_server(rand)
    assert trained_body["loss"] < 0.9 * random_body["loss"], (trained_body["loss"], random_body["loss"])
    assert trained_body["psnr"] > random_body["psnr"]


def test_model_without_decoder_refuses_reconstruction(tmp_path, model_dirs, videos):
    clf = start_server(tmp_path, {"VIDEOMAE_MODEL": str(model_dirs["classifier"])})
    try:
        with clf.client(key=None) as c:
            info = c.get("/v1/models").json()["models"][0]
            r = c.post("/v1/reconstruct", files=upload(videos["testsrc"]))
            e = c.post("/v1/embed", files=upload(videos["testsrc"]))
    finally:
        stop_server(clf)
    assert info["can_reconstruct"] is False and info["model_type"] == "classifier"
    assert r.status_code == 409 and r.json()["error"] == "no_decoder" and "decoder" in r.json()["detail"]
    model = videomae.load_model(model_dirs["classifier"]).eval()
    with torch.inference_mode():
        want = model.forward_pooled(library_clip(videos["testsrc"], 8, 1, 0, 64)[None])[0]  # fc_norm(mean)
    torch.testing.assert_close(torch.tensor(e.json()["clips"][0]["embedding"]), want, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------------ access, health
@pytest.mark.parametrize("key", [None, "wrong-key-0123456789abcdef", "Basic Zm9vOmJhcg=="])
def test_keys_are_required(server, videos, key):
    headers = {}
    if key == "Basic Zm9vOmJhcg==":
        headers = {"Authorization": key}
    elif key:
        headers = {"Authorization": f"Bearer {key}"}
    with server.client(key=None) as c:
        for method, url in (("GET", "/v1/models"), ("POST", "/v1/embed"), ("POST", "/v1/reconstruct"),
                            ("GET", "/metrics")):
            r = c.request(method, url, headers=headers, files=upload(videos["testsrc"]) if method == "POST" else None)
            assert r.status_code == 401, (url, r.status_code)
            assert r.json()["error"] in ("missing_api_key", "invalid_api_key")
            assert r.headers["www-authenticate"] == "Bearer"
    with server.client(key=OTHER_KEY) as c:  # every configured key works
        assert c.get("/v1/models").status_code == 200


def test_health_endpoints_need_no_key(server, videos):
    with server.client(key=None) as c:
        assert c.get("/livez").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
    with server.client(key=API_KEY) as c:
        # One model call and one listing of our own, so the metrics below do not depend on other tests having run.
        assert c.post("/v1/embed", files=upload(videos["testsrc"]), params={"frame_stride": 4}).status_code == 200
        assert c.get("/v1/models").status_code == 200
        text = c.get("/metrics").text
    assert "videomae_api_requests_total" in text and "videomae_api_request_seconds_bucket" in text
    assert "videomae_api_batch_size_bucket" in text
    # Requests are labelled by their route, not lumped into `other` (included routers must be known routes).
    assert 'route="/v1/models"' in text and 'route="/livez"' in text
