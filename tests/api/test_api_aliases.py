"""POST /embed and /reconstruct, the unversioned aliases (api/routes/unversioned.py), on the real uvicorn server of
the session: the same answers as the /v1 routes for the same upload, the same key check, the same errors and limits.
(/search is in test_api_search.py, beside its index.)"""

from __future__ import annotations

import pytest
from api_helpers import OTHER_KEY, upload


@pytest.mark.parametrize("params", [{}, {"format": "npz"}])
def test_embed_alias_answers_as_v1(server, videos, params):
    with server.client() as c:
        v1, alias = (c.post(path, params=params, files=upload(videos["testsrc"])) for path in ("/v1/embed", "/embed"))
    assert v1.status_code == alias.status_code == 200, alias.text
    assert alias.headers["content-type"] == v1.headers["content-type"]
    if params:
        assert alias.content == v1.content
    else:
        assert alias.json() == v1.json()


def test_reconstruct_alias_answers_as_v1(server, videos):
    with server.client() as c:
        v1, alias = (c.post(path, params={"seed": 3}, files=upload(videos["testsrc"]))
                     for path in ("/v1/reconstruct", "/reconstruct"))
    assert v1.status_code == alias.status_code == 200, alias.text
    assert alias.headers["content-type"] == "image/png" and alias.content == v1.content
    assert alias.headers["X-Reconstruction-Loss"] == v1.headers["X-Reconstruction-Loss"]


@pytest.mark.parametrize("path", ["/embed", "/reconstruct"])
def test_aliases_need_the_key_and_refuse_bad_input_as_v1(server, videos, path):
    with server.client(key=None) as c:
        r = c.post(path, files=upload(videos["testsrc"]))
        assert r.status_code == 401 and r.json()["error"] == "missing_api_key", r.text
    with server.client(key="wrong-key-0123456789") as c:
        r = c.post(path, files=upload(videos["testsrc"]))
        assert r.status_code == 401 and r.json()["error"] == "invalid_api_key", r.text
    with server.client(key=OTHER_KEY) as c:  # every configured key works on the aliases too
        assert c.post(path, files=upload(videos["testsrc"])).status_code == 200
    with server.client() as c:
        for name in ("text_mp4", "too_large"):
            v1, alias = (c.post(p, files=upload(videos[name])) for p in (f"/v1{path}", path))
            assert alias.status_code == v1.status_code and 400 <= alias.status_code < 500, (name, alias.text)
            assert alias.json()["error"] == v1.json()["error"], name
        r = c.post(path, params={"frame_stride": 0}, files=upload(videos["testsrc"]))
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text
