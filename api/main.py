"""The FastAPI app: `create_app(settings)` and the module-level `app` for `uvicorn api.main:app`.

Settings are read from the environment at start-up (not at import), so importing this module never fails; a bad
or unsafe setting, or a model that does not load, stops the server before it accepts a connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from api import routes
from api.engine import ModelHost
from api.errors import install_error_handlers
from api.metrics import Metrics, MetricsMiddleware
from api.settings import Settings

log = logging.getLogger("api")


def create_app(settings: Settings | None = None, preload: bool = False) -> FastAPI:
    """The app; with `preload` (and `settings`) the model and the index load now, so a path that does not load raises
    `api.engine.StartupError` here (`python -m api` prints its one line) instead of in the server's lifespan."""
    metrics = Metrics()
    preloaded = ModelHost.load(settings, on_batch=metrics.on_batch) if preload and settings else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal preloaded
        s = app.state.settings or Settings.from_env()
        app.state.settings = s
        logging.getLogger("api").setLevel(s.log_level.upper())
        host, preloaded = preloaded or ModelHost.load(s, on_batch=metrics.on_batch), None
        metrics.inflight.set_function(lambda: host.inflight)
        metrics.queue_depth.set_function(lambda: host.batcher.depth)
        host.start()
        app.state.host = host
        log.info("serving %s: max_batch=%d max_wait_ms=%g queue_size=%d keys=%s", host.info.id, s.max_batch,
                 s.max_wait_ms, s.queue_size, "required" if s.auth_required else "off")
        try:
            yield
        finally:
            app.state.host = None
            await host.stop()

    app = FastAPI(title="VideoMAE V2 API", version="1.0", lifespan=lifespan,
                  description="Video embeddings and masked reconstructions from a VideoMAE V2 backbone.")
    app.state.settings = settings
    app.state.host = None
    app.state.metrics = metrics
    install_error_handlers(app)
    for router in routes.routers():  # every module of api/routes/ (each sets its prefix and dependencies)
        app.include_router(router)
    # Paths from the OpenAPI schema: this FastAPI nests included routers, so `app.routes` lacks their paths.
    known = frozenset(app.openapi()["paths"])
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=known)
    return app


app = create_app()
