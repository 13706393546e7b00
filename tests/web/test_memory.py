"""Memory of a worker: the start-up heap frozen once, big buffers given back."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.web import app as app_module
from api.web import server
from tests.helpers.api import Api

ROOT = Path(__file__).resolve().parent.parent


async def test_a_started_app_has_frozen_the_start_up_heap(api: Api) -> None:
    assert app_module.freeze_heap in api.app.on_startup
    assert gc.get_freeze_count() > 0


async def test_the_heap_is_frozen_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build an app per test: each freeze would keep the earlier apps forever."""
    monkeypatch.setattr(app_module, "_heap_frozen", False)
    await app_module.freeze_heap(None)  # type: ignore[arg-type]
    frozen = gc.get_freeze_count()
    alive = [[n] for n in range(1000)]  # new container objects, tracked by gc
    await app_module.freeze_heap(None)  # type: ignore[arg-type]
    assert gc.get_freeze_count() == frozen
    assert len(alive) == 1000


PROBE = """
import sys
from pathlib import Path

from api.web.server import return_big_buffers_to_the_system

def rss_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

if sys.argv[1] == "fixed":
    assert return_big_buffers_to_the_system()
before = rss_mib()
for _ in range(3):  # argon2's 19 MiB buffer, written, then freed, as for every login
    buffer = b"x" * (19 * 2**20)
    del buffer
print(rss_mib() - before)
"""


def kept_after_frees(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's malloc only",
)
def test_big_buffers_go_back_to_the_system_once_freed() -> None:
    if kept_after_frees("default") < 15:
        pytest.skip("this glibc gives 19 MiB buffers back by itself")
    assert kept_after_frees("fixed") < 5


class FakeLibc:
    def __init__(self, with_mallopt: bool) -> None:
        self.calls: list[tuple[int, int]] = []
        if with_mallopt:
            self.mallopt = lambda param, value: self.calls.append((param, value)) or 1


def fake_libc(monkeypatch: pytest.MonkeyPatch, with_mallopt: bool) -> FakeLibc:
    import ctypes

    libc = FakeLibc(with_mallopt)
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: libc)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    return libc


def test_without_mallopt_the_worker_start_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_libc(monkeypatch, with_mallopt=False)  # musl, say
    assert server.return_big_buffers_to_the_system() is False


def test_mallopt_sets_the_mmap_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = fake_libc(monkeypatch, with_mallopt=True)
    assert server.return_big_buffers_to_the_system() is True
    assert libc.calls == [(-3, 128 * 1024)]  # M_MMAP_THRESHOLD


def test_the_operators_own_threshold_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    libc: Any = fake_libc(monkeypatch, with_mallopt=True)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert server.return_big_buffers_to_the_system() is False
    assert libc.calls == []


def test_elsewhere_than_linux_nothing_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: pytest.fail("CDLL called"))
    assert server.return_big_buffers_to_the_system() is False


def test_hashing_threads_run_niced_below_the_event_loop() -> None:
    """A login storm must slow logins, not the loop: the hashing threads get less CPU."""
    import threading

    from api.auth.passwords import PasswordHasher

    if not hasattr(os, "getpriority"):
        pytest.skip("no per-thread niceness on this platform")
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def thread_niceness(hasher: PasswordHasher) -> int:
        return hasher._pool.submit(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        ).result()

    niced = PasswordHasher(threads=1, nice=10)
    plain = PasswordHasher(threads=1, nice=0)
    try:
        assert thread_niceness(niced) == min(19, own + 10)
        assert thread_niceness(plain) == own
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
    finally:
        niced._pool.shutdown()
        plain._pool.shutdown()
