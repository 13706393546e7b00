"""Memory of a worker (issue 5): the start-up heap frozen once, big buffers given back."""

from __future__ import annotations

import gc

import pytest

from api import app as app_module
from tests.conftest import Api


async def test_a_started_app_has_frozen_the_start_up_heap(api: Api) -> None:
    assert app_module.freeze_heap in api.app.on_startup
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == 7000


async def test_the_heap_is_frozen_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build an app per test: each freeze would keep the earlier apps forever."""
    threshold = gc.get_threshold()
    monkeypatch.setattr(app_module, "_heap_frozen", False)
    try:
        await app_module.freeze_heap(None)  # type: ignore[arg-type]
        frozen = gc.get_freeze_count()
        alive = [[n] for n in range(1000)]  # new container objects, tracked by gc
        await app_module.freeze_heap(None)  # type: ignore[arg-type]
        assert gc.get_freeze_count() == frozen
        assert len(alive) == 1000
    finally:
        gc.set_threshold(*threshold)
