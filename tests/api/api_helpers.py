"""Helpers shared by the API tests (imported by conftest.py and the test modules; tests/api is on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

from videomae.transforms import eval_clip
from videomae.video import clip_indices, decode_frames, probe

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "test-key-fedcba9876543210"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upload(path: Path, name: str = "clip.mp4") -> dict:
    """The multipart `file` field, under whatever name the client likes (the server ignores it)."""
    return {"file": (name, path.read_bytes(), "application/octet-stream")}


# --------------------------------------------------------------------------------------------------------- models
def library_clip(path: Path, clip_len: int, stride: int, start: int, img_size: int) -> torch.Tensor:
    """The clip the library makes for these frames: (3, T, S, S)."""
    info = probe(path)
    indices = clip_indices(clip_len=clip_len, stride=stride, start=start, total_frames=info.num_frames)
    return eval_clip(decode_frames(path, indices), img_size)


# --------------------------------------------------------------------------------------------------------- servers
@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def client(self, key: str | None = API_KEY, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_server(tmp: Path, env: dict[str, str], command: str = "uvicorn") -> Server:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOMAE_")}
    full_env.update({"VIDEOMAE_TORCH_THREADS": "1", "VIDEOMAE_TMP_DIR": str(tmp), **env})
    log = tmp / f"server-{port}.log"
    if command == "uvicorn":
        argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning"]
    else:
        full_env.update({"VIDEOMAE_HOST": "127.0.0.1", "VIDEOMAE_PORT": str(port), "VIDEOMAE_LOG_LEVEL": "warning"})
        argv = [sys.executable, "-m", "api"]
    proc = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return Server(url, proc, log, env)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not ready in 90 s:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


MAIN_LIMITS = {
    "VIDEOMAE_MAX_UPLOAD_BYTES": str(2 * 2**20),
    "VIDEOMAE_MAX_BATCH": "4",
    "VIDEOMAE_MAX_WAIT_MS": "40",
    "VIDEOMAE_QUEUE_SIZE": "6",
    "VIDEOMAE_MAX_CLIPS": "32",
    "VIDEOMAE_MAX_DURATION_S": "20",
    "VIDEOMAE_MAX_FRAMES": "200",
    "VIDEOMAE_MAX_WIDTH": "640",
    "VIDEOMAE_MAX_HEIGHT": "640",
    "VIDEOMAE_MAX_PIXELS": str(640 * 480),
    "VIDEOMAE_REQUEST_TIMEOUT_S": "30",
    "VIDEOMAE_UPLOAD_TIMEOUT_S": "10",
}


