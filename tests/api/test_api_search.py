"""POST /v1/search on a real uvicorn server over an index of features extracted on real Ray (the session fixture
`feature_corpus`), and the parity of those features with /v1/embed's per-clip features."""

from __future__ import annotations

import numpy as np
import pytest
from api_helpers import API_KEY, MAIN_LIMITS, start_server, stop_server, upload

from videomae import features, listing
from videomae.search import SearchIndex

pytestmark = pytest.mark.slow


def _vid(i: int) -> str:
    return listing.make_video_id("corpus", f"videos/v{i}.mp4")


@pytest.fixture(scope="module")
def search_server(feature_corpus, tmp_path_factory):
    root = feature_corpus["root"]
    SearchIndex.build(str(root / "features"), str(root / "index"))
    tmp = tmp_path_factory.mktemp("server-search")
    s = start_server(tmp, {"VIDEOMAE_MODEL": str(root / "model"), "VIDEOMAE_INDEX": str(root / "index"),
                           "VIDEOMAE_API_KEYS": API_KEY, **MAIN_LIMITS})
    yield s
    stop_server(s)


def test_extracted_features_equal_embed_per_clip_features(feature_corpus, search_server):
    """The same windows (8 frames, every 4), crop and model: /v1/embed's clips are the extraction's rows."""
    table = features.read_features(str(feature_corpus["root"] / "features"))
    with search_server.client() as c:
        for i in (0, 3):
            r = c.post("/v1/embed", files=upload(feature_corpus["root"] / "videos" / f"v{i}.mp4"),
                       params={"clip_len": 8, "frame_stride": 1, "window_stride": 4})
            assert r.status_code == 200, r.text
            clips = r.json()["clips"]
            mine = table.filter(np.asarray(table["video_id"].to_pylist()) == _vid(i))
            order = np.argsort(mine["start_frame"].to_numpy())
            assert [c["start_frame"] for c in clips] == mine["start_frame"].to_numpy()[order].tolist()
            assert [c["end_frame"] for c in clips] == mine["end_frame"].to_numpy()[order].tolist()
            # Tolerance: the same float32 ops; batches of different sizes may round differently (seen: 0).
            np.testing.assert_allclose(np.asarray([c["embedding"] for c in clips]),
                                       features.feature_matrix(mine)[order], atol=1e-5, rtol=1e-5)


def test_planted_copy_comes_back_first(feature_corpus, search_server):
    """A re-encoded half-size copy of v0 (not in the index) finds v0, with its place, label and score."""
    with search_server.client() as c:
        r = c.post("/v1/search", files=upload(feature_corpus["root"] / "copy_of_v0.mp4"), params={"k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        top = body["results"][0]
        assert top["video_id"] == _vid(0) and top["label"] == "move left"
        assert top["uri"].endswith("videos/v0.mp4") and 0.9 < top["score"] <= 1.0 + 1e-6
        assert top["end_s"] > top["start_s"] >= 0
        assert body["query"] == {"kind": "upload", "id": None, "windows": 6} and body["index_size"] == 24
        scores = [h["score"] for h in body["results"]]
        assert scores == sorted(scores, reverse=True) and len(scores) == 5
        # One window of the copy: its own window of v0 first.
        r = c.post("/v1/search", files=upload(feature_corpus["root"] / "copy_of_v0.mp4"),
                   params={"k": 3, "start_frame": 8})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["clip_id"] == listing.make_clip_id(_vid(0), 8, 1)


def test_stored_queries(search_server):
    with search_server.client() as c:
        clip = listing.make_clip_id(_vid(1), 4, 1)
        r = c.post("/v1/search", params={"clip_id": clip, "k": 4})
        assert r.status_code == 200, r.text
        assert r.json()["query"] == {"kind": "clip", "id": clip, "windows": 1}
        assert all(h["video_id"] != _vid(1) for h in r.json()["results"])  # its own video left out
        r = c.post("/v1/search", params={"clip_id": clip, "k": 1, "exclude_query_video": False})
        assert r.json()["results"][0]["clip_id"] == clip and r.json()["results"][0]["score"] == pytest.approx(1.0)
        r = c.post("/v1/search", params={"video_id": _vid(2), "k": 3})
        assert r.status_code == 200 and r.json()["query"]["windows"] == 6
        assert len(r.json()["results"]) == 3 and all(h["video_id"] != _vid(2) for h in r.json()["results"])


@pytest.mark.parametrize(("params", "files", "status", "error"), [
    ({"clip_id": "no-such-clip"}, None, 404, "unknown_clip"),
    ({"video_id": "no-such-video"}, None, 404, "unknown_video"),
    ({"clip_id": "a", "video_id": "b"}, None, 422, "invalid_request"),
    ({"k": 0, "video_id": "x"}, None, 422, "invalid_request"),
    ({"k": 1000, "video_id": "x"}, None, 422, "invalid_request"),
    ({"bogus": 1}, None, 422, "invalid_request"),
    ({}, None, 422, "missing_query"),
    ({"video_id": "x"}, "video", 422, "invalid_request"),
    ({}, "text", 415, "unsupported_media_type"),
    ({"start_frame": 500}, "video", 422, "invalid_request"),
])
def test_bad_queries_get_4xx(feature_corpus, search_server, tmp_path, params, files, status, error):
    body = None
    if files == "video":
        body = upload(feature_corpus["root"] / "copy_of_v0.mp4")
    elif files == "text":
        (tmp_path / "notes.mp4").write_text("not a video\n" * 50)
        body = upload(tmp_path / "notes.mp4")
    with search_server.client() as c:
        r = c.post("/v1/search", params=params, files=body)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error


def test_search_needs_the_key(search_server):
    with search_server.client(key=None) as c:
        assert c.post("/v1/search", params={"video_id": _vid(0)}).status_code == 401


def test_search_without_an_index_is_409(server):
    with server.client() as c:
        r = c.post("/v1/search", params={"video_id": "x"})
        assert r.status_code == 409 and r.json()["error"] == "no_index"
        for params, path in (({}, "/v1/index"), ({"clip_id": "x"}, "/v1/search/thumbnail")):
            r = c.get(path, params=params)
            assert r.status_code == 409 and r.json()["error"] == "no_index", path


def test_unversioned_search_is_the_v1_route(feature_corpus, search_server):
    """POST /search (the alias the project's description names) answers as /v1/search: same hits, key, errors."""
    query = feature_corpus["root"] / "copy_of_v0.mp4"
    with search_server.client() as c:
        answers = [c.post(path, params={"k": 3}, files=upload(query)) for path in ("/v1/search", "/search")]
        assert [r.status_code for r in answers] == [200, 200], answers[1].text
        assert answers[1].json() == answers[0].json()
        bad = c.post("/search", params={"video_id": "x"}, files=upload(query))
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    with search_server.client(key=None) as c:
        assert c.post("/search", params={"video_id": _vid(0)}).status_code == 401
