"""Prometheus metrics: requests, latencies, batch sizes, queue state. One registry per app (tests build several).

The request middleware is plain ASGI (no BaseHTTPMiddleware buffering); the route label is the matched path for
known routes and `other` for anything else, so fuzzed URLs cannot blow up label cardinality.
"""

from __future__ import annotations

import time
from collections.abc import Hashable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("videomae_api_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=r)
        self.latency = Histogram("videomae_api_request_seconds", "time to answer, upload included", ["route"],
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("videomae_api_batch_size", "items per model forward", ["op"],
                                    buckets=_BATCH_BUCKETS, registry=r)
        self.forward_seconds = Histogram("videomae_api_forward_seconds", "model forward time per batch", ["op"],
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.inflight = Gauge("videomae_api_inflight_requests", "requests admitted and not yet answered", registry=r)
        self.queue_depth = Gauge("videomae_api_queue_items", "clips waiting for the model", registry=r)

    def on_batch(self, key: Hashable, size: int, seconds: float) -> None:
        op = str(key[0]) if isinstance(key, tuple) else str(key)
        self.batch_size.labels(op).observe(size)
        self.forward_seconds.labels(op).observe(seconds)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, routes: frozenset[str]):
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope.get("path", "") if scope.get("path", "") in self.routes else "other"
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
