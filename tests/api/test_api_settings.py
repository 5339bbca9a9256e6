"""Settings: VIDEOMAE_* variables validated into one object that refuses unsafe values and names the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from api_helpers import REPO

from api.settings import Settings, SettingsError

KEY = "k" * 16


def test_reads_variables_and_splits_keys():
    s = Settings.from_env({"VIDEOMAE_MODEL": "/m", "VIDEOMAE_API_KEYS": f" {KEY}, {'x' * 20} ,",
                           "VIDEOMAE_MAX_BATCH": "4", "VIDEOMAE_MAX_WAIT_MS": "2.5", "VIDEOMAE_ALLOW_OPEN": "false",
                           "OTHER": "ignored"})
    assert s.model == "/m" and s.api_keys == (KEY, "x" * 20) and s.auth_required
    assert s.max_batch == 4 and s.max_wait_ms == 2.5 and s.port == 8000 and s.host == "127.0.0.1"


@pytest.mark.parametrize(("env", "names"), [
    ({}, ["VIDEOMAE_MODEL"]),
    ({"VIDEOMAE_MAX_BATCH": "0"}, ["VIDEOMAE_MAX_BATCH"]),
    ({"VIDEOMAE_PORT": "http"}, ["VIDEOMAE_PORT"]),
    ({"VIDEOMAE_API_KEYS": "short"}, ["VIDEOMAE_API_KEYS", "16"]),
    ({"VIDEOMAE_HOST": "0.0.0.0"}, ["VIDEOMAE_HOST", "VIDEOMAE_API_KEYS"]),  # open to the network without keys
    ({"VIDEOMAE_HOST": "::"}, ["VIDEOMAE_HOST"]),
    ({"VIDEOMAE_MAX_WAIT_MS": "5000", "VIDEOMAE_REQUEST_TIMEOUT_S": "2"}, ["VIDEOMAE_MAX_WAIT_MS"]),
    ({"VIDEOMAE_MAX_PIXELS": str(10**9)}, ["VIDEOMAE_MAX_PIXELS"]),
    ({"VIDEOMAE_MAX_UPLOAD_BYTES": str(2**40)}, ["VIDEOMAE_MAX_UPLOAD_BYTES"]),
    ({"VIDEOMAE_LOG_LEVEL": "chatty"}, ["VIDEOMAE_LOG_LEVEL"]),
])
def test_refuses_bad_and_unsafe_settings(env, names):
    base = {"VIDEOMAE_MODEL": "/m"} if "VIDEOMAE_MODEL" not in names else {}
    with pytest.raises(SettingsError) as e:
        Settings.from_env({**base, **env})
    for name in names:
        assert name in str(e.value)


def test_network_bind_is_allowed_with_keys_or_explicit_opt_in():
    assert Settings.from_env({"VIDEOMAE_MODEL": "/m", "VIDEOMAE_HOST": "0.0.0.0", "VIDEOMAE_API_KEYS": KEY})
    assert Settings.from_env({"VIDEOMAE_MODEL": "/m", "VIDEOMAE_HOST": "0.0.0.0", "VIDEOMAE_ALLOW_OPEN": "1"})


def _run_module(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOMAE_")}
    return subprocess.run([sys.executable, "-m", "api", *args], cwd=REPO, env={**clean, **env}, capture_output=True,
                          text=True, timeout=120)


def test_python_m_api_refuses_unsafe_settings_before_serving():
    out = _run_module({"VIDEOMAE_MODEL": "/m", "VIDEOMAE_HOST": "0.0.0.0"})
    assert out.returncode == 2 and "VIDEOMAE_API_KEYS" in out.stderr
    assert "VIDEOMAE_MAX_UPLOAD_BYTES" in _run_module({}, "--help").stdout


def test_check_loads_the_model(model_dirs, tmp_path):
    """`--check` says "valid" only for settings the server would start with: the model must load."""
    ok = _run_module({"VIDEOMAE_MODEL": str(model_dirs["random"])}, "--check")
    assert ok.returncode == 0 and "model loads: videomae-nano-pretrain" in ok.stderr, ok.stderr
    missing = _run_module({"VIDEOMAE_MODEL": str(tmp_path / "nowhere")}, "--check")
    assert missing.returncode == 2 and "does not load" in missing.stderr and "no checkpoint at" in missing.stderr
    not_weights = tmp_path / "config.json"
    not_weights.write_text("{}")
    wrong = _run_module({"VIDEOMAE_MODEL": str(not_weights)}, "--check")
    assert wrong.returncode == 2 and "not a checkpoint this loader reads" in wrong.stderr, wrong.stderr


@pytest.mark.parametrize("case", ["missing model", "unreadable model", "missing index"])
def test_start_up_errors_are_one_line(case, model_dirs, tmp_path):
    """`python -m api` with a model or an index that does not load: exit 2 before serving, one line naming the variable,
    the path and the command that makes one; no traceback (the serve step after a demo that made something else)."""
    env = {"VIDEOMAE_MODEL": str(model_dirs["random"]), "VIDEOMAE_PORT": "1"}  # never bound: it must exit first
    if case == "missing model":
        env["VIDEOMAE_MODEL"] = str(tmp_path / "runs/pretrain-tiny/model")
    elif case == "unreadable model":
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "config.json").write_text("{not json")
        (tmp_path / "model" / "model.safetensors").write_bytes(b"\0" * 64)
        env["VIDEOMAE_MODEL"] = str(tmp_path / "model")
    else:
        env["VIDEOMAE_INDEX"] = str(tmp_path / "runs/index/sample")
    out = _run_module(env)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    variable = "VIDEOMAE_INDEX" if case == "missing index" else "VIDEOMAE_MODEL"
    assert f"{variable}={env[variable]} does not load" in lines[0], lines[0]
    assert "make demo" in lines[0] and ("trainer/search.py build" if variable == "VIDEOMAE_INDEX"
                                        else "trainer/pretrain.py") in lines[0], lines[0]
