"""`python -m api`: serve the API with uvicorn, configured by VIDEOMAE_* variables (see `python -m api --help`)."""

from __future__ import annotations

import argparse
import logging
import sys

from api.settings import Settings, SettingsError, describe_variables


def check(settings: Settings) -> int:
    """`--check`: the settings are valid and the model (and the index, if set) load as the server would load them;
    exit 0, else 2 with one line."""
    from api.engine import StartupError, describe, load_served_index, load_served_model

    log = logging.getLogger("api")
    try:
        model = load_served_model(settings)
        if settings.index:
            load_served_index(settings)
    except StartupError as e:
        log.error("%s", e)
        return 2
    info = describe(model)
    log.info("settings are valid: %s", settings.model_dump(exclude={"api_keys"}))
    log.info("model loads: %s (%d parameters, feature dim %d, reconstruct=%s)", info.id, info.parameters,
             info.feature_dim, info.can_reconstruct)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="VideoMAE V2 API server. Settings come from the environment:\n" + describe_variables())
    parser.add_argument("--check", action="store_true", help="validate the settings, load the model, and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        logging.getLogger("api").error("%s", e)
        return 2
    if args.check:
        return check(settings)

    import uvicorn

    from api.engine import StartupError
    from api.main import create_app

    logging.getLogger().setLevel(settings.log_level.upper())
    try:  # the model and the index load before the server starts: a bad path is one line and exit 2, no traceback
        app = create_app(settings, preload=True)
    except StartupError as e:
        logging.getLogger("api").error("%s", e)
        return 2
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                # Past the admission queue the app answers 503 with Retry-After itself; this caps raw connections
                # and tasks as a backstop against a connection flood. uvicorn's own 503 carries no Retry-After, so
                # the cap sits well above what overload reaches: at queue_size * 4 + 16 (80) it answered a few of
                # 64 closed-loop clients (bench/soak.py; lingering connections of cut-off uploads count too).
                limit_concurrency=settings.queue_size * 8 + 128, timeout_keep_alive=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
