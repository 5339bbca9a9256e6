"""`python -m ingest --config configs/ingest/<name>.yaml [--set key=value ...] [--no-ray]`

Runs on Ray in this process by default; on a cluster when RAY_ADDRESS is set (or under `ray job submit`).
Logs stage progress while it runs and prints a per-source summary table at the end.
"""

from __future__ import annotations

import json
import logging
import sys

from ingest import report
from ingest.config import ConfigError, load_config
from videomae.configfile import config_parser


def main(argv: list[str] | None = None) -> int:
    ap = config_parser("Raw videos -> de-duplicated clip shards.", "YAML file, e.g. configs/ingest/sample.yaml",
                       "clips.short_side=128 (or root=DIR, sources.0.stride=2)", prog="python -m ingest")
    ap.add_argument("--no-ray", action="store_true", help="run every step in this process (debugging)")
    ap.add_argument("--validate", action="store_true", help="only load and validate the config")
    ap.add_argument("--json", action="store_true", help="print the manifest as JSON instead of the table")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        cfg = load_config(args.config, args.overrides)
    except (ConfigError, FileNotFoundError) as e:
        print(f"invalid config {args.config}:\n{e}", file=sys.stderr)
        return 2
    if args.validate:
        print(f"{args.config}: ok (digest {cfg.digest}, {len(cfg.sources)} sources)")
        return 0
    if args.no_ray:
        from ingest.steps import run_local

        manifest = run_local(cfg)
    else:
        from ingest.pipeline import run

        manifest = run(cfg)
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
    else:
        print(report.format_table(manifest["counts"]))
        d = manifest["dedupe"]
        print(
            f"dedupe: {d.get('exact', 0)} exact, {d.get('near', 0)} near ({d.get('leaks', 0)} train/val leaks), "
            f"{d.get('candidates', 0)} candidate pairs; output {cfg.output}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
