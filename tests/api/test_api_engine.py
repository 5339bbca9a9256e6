"""ModelHost in-process with a real nano model: the request deadline, admission and the decoder check."""

from __future__ import annotations

import asyncio

import pytest

import videomae
from api.engine import ModelHost
from api.errors import ApiError
from api.settings import Settings


def host(tmp_path, model=None, **settings) -> ModelHost:
    s = Settings(model=str(tmp_path), **settings)
    return ModelHost(model or videomae.create_model("nano"), s)


def test_deadline_turns_a_slow_request_into_503_with_retry_after(tmp_path):
    h = host(tmp_path, request_timeout_s=0.05, max_wait_ms=0, retry_after_s=7)

    async def slow():
        async with h.deadline():
            await asyncio.sleep(5)

    with pytest.raises(ApiError) as e:
        asyncio.run(slow())
    assert (e.value.status, e.value.error, e.value.headers["Retry-After"]) == (503, "timeout", "7")


def test_admission_is_bounded_and_released(tmp_path):
    h = host(tmp_path, queue_size=2, max_batch=1)
    h.admit()
    h.admit()
    with pytest.raises(ApiError) as e:
        h.admit()
    assert e.value.status == 503 and e.value.error == "overloaded" and "Retry-After" in e.value.headers
    h.release()
    h.admit()  # a freed slot is usable again


def test_classifier_has_no_decoder(tmp_path):
    h = host(tmp_path, model=videomae.create_classifier("nano", num_classes=3))
    assert h.info.can_reconstruct is False and h.info.feature.startswith("fc_norm")
    with pytest.raises(ApiError) as e:
        h.require_decoder()
    assert e.value.status == 409 and "decoder" in e.value.detail


def test_endpoints_and_operations_come_from_their_modules(tmp_path):
    """The app serves exactly the routers of the modules in api/routes/, and the model thread runs only operations
    those modules registered: adding an endpoint is adding a module there (docs/architecture.md)."""
    from api import routes
    from api.engine import OPERATIONS
    from api.main import create_app

    served = set(create_app(Settings(model=str(tmp_path))).openapi()["paths"])
    assert served == {r.path for router in routes.routers() for r in router.routes}
    assert {"/v1/embed", "/v1/reconstruct", "/v1/models", "/livez"} <= served
    assert {"embed", "reconstruct"} <= set(OPERATIONS)
    with pytest.raises(KeyError, match="no operation 'no_such_op'; registered: .*embed"):
        asyncio.run(host(tmp_path).run("no_such_op", []))
