"""Production defaults: /metrics behind its token, an owner-only SQLite file, and a `Server`
header that names no version. (Refusing to start without PUBLIC_URL or METRICS_TOKEN:
tests/security/test_settings.py.)"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.api import Api, StartApi
from tests.helpers.env import PRODUCTION_NEEDS


async def test_metrics_in_production_need_the_token(start_api: StartApi) -> None:
    api = await start_api(APP_ENV="production")
    assert (await api.client.get("/metrics")).status == 401
    wrong = await api.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    token = PRODUCTION_NEEDS["METRICS_TOKEN"]
    scraped = await api.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert scraped.status == 200
    assert "graphgate_" in await scraped.text()


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The usual umask (files 0644 by default), whatever the test runner's is."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("lax_umask")
async def test_the_sqlite_database_and_its_wal_are_owner_only(
    start_api: StartApi, database_url: str
) -> None:
    path = Path(database_url.removeprefix("sqlite://"))
    api = await start_api()
    await api.register()  # a write: the -wal and -shm files exist while the app runs
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert all(file.exists() for file in files), files
    assert {file.name: _mode(file) for file in files} == {file.name: 0o600 for file in files}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("lax_umask")
async def test_an_existing_world_readable_sqlite_file_is_tightened(
    start_api: StartApi, database_url: str
) -> None:
    path = Path(database_url.removeprefix("sqlite://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    for file in (path, Path(f"{path}-wal")):
        file.touch(mode=0o644)
    await start_api()
    assert (_mode(path), _mode(Path(f"{path}-wal"))) == (0o600, 0o600)


async def _raw_response_head(api: Api, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    try:
        writer.write(request)
        await writer.drain()
        return (await asyncio.wait_for(reader.read(4096), 5)).split(b"\r\n\r\n", 1)[0]
    finally:
        writer.close()


async def test_the_server_header_names_no_version(api: Api) -> None:
    answers = [
        await api.client.get("/healthz"),
        await api.client.get("/nowhere"),
        await api.client.post("/graphql", json={"query": "{ __typename }"}),
        await api.client.put("/healthz"),
    ]
    assert [resp.headers.get("Server") for resp in answers] == ["graphgate"] * len(answers)
    # aiohttp writes the 400 for a malformed request itself, past every middleware.
    for raw in (b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n", b"NONSENSE\r\n\r\n"):
        head = await _raw_response_head(api, raw)
        assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0], head
        assert b"\r\nServer: graphgate" in head, head
        assert b"aiohttp" not in head.lower() and b"python" not in head.lower(), head
