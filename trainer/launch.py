"""What every recipe script shares on the command line: arguments, logging, clean exits on a bad config, and the Ray
connection (the training loop itself is trainer/loop.py).

`RAY_ADDRESS` (set by `ray job submit`) selects a cluster; without it a local Ray starts in-process (DESIGN.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from trainer.config import ConfigError, load_config

log = logging.getLogger("trainer")


def parse_args(kind: str, argv: list[str] | None, description: str):
    """`--config FILE [--set a.b=value ...]` -> the validated recipe config (ConfigError names a bad key)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="YAML recipe under configs/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any key, e.g. --set optim.max_steps=100 (repeatable)")
    args = parser.parse_args(argv)
    return load_config(kind, args.config, args.overrides)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=False)
    logging.getLogger("trainer").setLevel(logging.INFO)


def fail(message: str) -> None:
    """A config/data problem found on the driver: say it and exit before any worker starts."""
    log.error("%s", message)
    raise SystemExit(2)


def connect_ray() -> None:
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    # Deterministic block order: a seeded run sees the same first batch, and a resume continues the same sequence.
    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True
    # Per-operator progress bars flood job logs; the trainer logs its own progress (trainer/metrics.py).
    ctx.enable_progress_bars = False


def validate_or_exit(build: Callable[[], Any]) -> Any:
    """Run a driver-side check (index the shards, read labels); a ValueError becomes a clean exit naming the key."""
    try:
        return build()
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as e:
        fail(str(e))
