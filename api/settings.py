"""Service settings: one validated object, read from `VIDEOMAE_*` environment variables (docs/architecture.md "Ports and
variables"), that refuses unsafe values and unsafe combinations instead of serving with them.

Every field `name` is set by `VIDEOMAE_<NAME>` (`model` by `VIDEOMAE_MODEL`, `api_keys` by `VIDEOMAE_API_KEYS` as a
comma-separated list). Errors name the variable, so a bad deployment fails at start-up with a readable line.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

log = logging.getLogger(__name__)

ENV_PREFIX = "VIDEOMAE_"
MIN_KEY_LENGTH = 16
# Variables other parts of the system read; not ours, so not "unknown".
_FOREIGN_VARIABLES = {"VIDEOMAE_TEST_RAY_CPUS"}


class SettingsError(ValueError):
    """Invalid or unsafe settings; the message names the environment variable(s)."""


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: assume it can be reached from outside


class Settings(BaseModel):
    """Everything the API process is configured by. Sizes in bytes/frames/pixels, times in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # ---- the model
    model: str = Field(description="model directory (ours or Hugging Face), Ray checkpoint dir, or reference .pth")
    preset: str | None = Field(None, description="architecture preset, for reference .pth files only")
    torch_threads: int = Field(0, ge=0, le=256, description="torch intra-op threads; 0 = torch's default")
    index: str | None = Field(None, description="search index directory for /v1/search (python trainer/search.py "
                                                "build); without one /v1/search answers 409")

    # ---- network and access
    host: str = Field("127.0.0.1", description="bind address for `python -m api`")
    port: int = Field(8000, ge=1, le=65535, description="port for `python -m api` (docs/architecture.md: 8000)")
    api_keys: tuple[str, ...] = Field((), description="comma-separated; when set, every /v1 call and /metrics "
                                                      "needs `Authorization: Bearer <key>`")
    allow_open: bool = Field(False, description="allow a non-loopback bind without API keys (behind a trusted proxy)")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="logging level")

    # ---- input limits
    max_upload_bytes: int = Field(64 * 2**20, ge=1024, le=4 * 2**30, description="413 beyond this, checked per chunk")
    max_duration_s: float = Field(600.0, gt=0, le=24 * 3600, description="longest video accepted")
    max_frames: int = Field(36_000, ge=1, le=10_000_000, description="most frames a video may have")
    max_width: int = Field(1920, ge=16, le=16384, description="widest frame accepted")
    max_height: int = Field(1920, ge=16, le=16384, description="tallest frame accepted (portrait video)")
    max_pixels: int = Field(1920 * 1080, ge=256, description="width x height; bounds decode memory per frame")
    max_clips: int = Field(64, ge=1, le=4096, description="most sliding-window clips one embed request may ask for")

    # ---- scheduling
    max_batch: int = Field(8, ge=1, le=256, description="clips per model forward (1 = no micro-batching)")
    max_wait_ms: float = Field(10.0, ge=0, le=10_000, description="how long a batch waits to fill")
    queue_size: int = Field(16, ge=1, le=10_000, description="requests admitted at once; beyond it 503 + Retry-After")
    retry_after_s: int = Field(1, ge=1, le=3600, description="the Retry-After of a 503")
    request_timeout_s: float = Field(60.0, gt=0, le=3600, description="decode + queue + forward, per request")
    upload_timeout_s: float = Field(60.0, gt=0, le=3600, description="receiving the upload (slow clients: 408)")
    decode_workers: int = Field(2, ge=1, le=64, description="threads decoding uploads")
    tmp_dir: str | None = Field(None, description="where uploads are spooled; default: the system temp dir")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(k.strip() for k in v.split(",") if k.strip())
        return v

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for k in keys:
            if len(k) < MIN_KEY_LENGTH:
                raise ValueError(f"every API key needs at least {MIN_KEY_LENGTH} characters (a short key is guessable)")
            if any(c.isspace() or not c.isprintable() for c in k):
                raise ValueError("API keys may not contain whitespace or control characters")
        return keys

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        problems = []
        if not self.api_keys and not _is_loopback(self.host) and not self.allow_open:
            problems.append(f"{env_name('host')}={self.host} serves other machines but {env_name('api_keys')} is "
                            f"empty: set keys, bind 127.0.0.1, or set {env_name('allow_open')}=true explicitly")
        if self.max_wait_ms / 1000 >= self.request_timeout_s:
            problems.append(f"{env_name('max_wait_ms')} must be well below {env_name('request_timeout_s')}")
        if self.max_pixels > self.max_width * self.max_height:
            problems.append(f"{env_name('max_pixels')} exceeds {env_name('max_width')} x {env_name('max_height')}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build from `VIDEOMAE_*` variables (plus keyword overrides, which win). Raises SettingsError."""
        environ = os.environ if environ is None else environ
        fields = set(cls.model_fields)
        values: dict[str, object] = {}
        unknown = []
        for key, value in environ.items():
            if not key.startswith(ENV_PREFIX) or key in _FOREIGN_VARIABLES:
                continue
            name = key[len(ENV_PREFIX):].lower()
            if name in fields:
                values[name] = value
            else:
                unknown.append(key)
        if unknown:
            # Not fatal (other services share the prefix), but a typo here would silently keep a default.
            log.warning("ignoring unknown settings variables: %s", ", ".join(sorted(unknown)))
        values.update(overrides)
        try:
            return cls(**values)
        except ValidationError as e:
            raise SettingsError(_explain(e)) from None


def _explain(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = err.get("loc") or ()
        where = env_name(str(loc[0])) if loc else "settings"
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        lines.append(f"{where}: {msg}" if loc else msg)
    return "invalid API settings: " + "; ".join(lines)


def describe_variables() -> str:
    """One line per variable, for `python -m api --help`."""
    out = []
    for name, f in Settings.model_fields.items():
        default = "required" if f.is_required() else f"default {f.default!r}"
        out.append(f"  {env_name(name):<28} {f.description or ''} ({default})")
    return "\n".join(out)
