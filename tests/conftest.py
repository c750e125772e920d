"""Shared fixtures: a real server over real HTTP, on SQLite and on PostgreSQL.

PostgreSQL is the local server at 127.0.0.1:5432 (override with GOLIAT_MONITOR_TEST_PG); every
test gets a database of its own, cloned from a migrated template, and drops it afterwards. A
missing PostgreSQL is a test failure, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
import uvicorn

from goliat_monitor.server.app import create_app
from goliat_monitor.server.context import ServerContext
from goliat_monitor.settings import ServerSettings

T = TypeVar("T")

PG_ADMIN_URL = os.environ.get("GOLIAT_MONITOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# GOLIAT-style configs written for these tests (see tests/data/goliat-configs/README.md).
TEST_CONFIGS = Path(__file__).resolve().parent / "data" / "goliat-configs"


class FakeClock:
    """A clock tests move by hand, so lease and liveness rules are tested without sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = start if start is not None else time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def quick_notification_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started in tests deliver and detect notifications every 0.2 s, not every 1 and 10 s."""
    from goliat_monitor.server import notify

    monkeypatch.setattr(notify, "POLL_S", 0.2)
    monkeypatch.setattr(notify, "DETECT_S", 0.2)


@pytest.fixture(scope="session")
def goliat_configs() -> Path:
    """GOLIAT's own configs, from the folder `GOLIAT_CONFIGS_DIR` names; without it the test is skipped.

    Tests using this are an extra check against the real files: `TEST_CONFIGS` alone covers every
    behaviour. A variable that names no folder fails, so a typo cannot turn the extra into skips.
    """
    folder = os.environ.get("GOLIAT_CONFIGS_DIR", "")
    if not folder:
        pytest.skip("GOLIAT_CONFIGS_DIR is not set (optional: a folder of GOLIAT's own configs)")
    path = Path(folder)
    if not path.is_dir():
        pytest.fail(f"GOLIAT_CONFIGS_DIR={folder!r} is not a folder")
    return path


def _pg_connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is required for these tests and is not reachable at {url}: {exc}")


def _sqlalchemy_url(url: str, database: str) -> str:
    base = url.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+psycopg://", 1) + f"/{database}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated database to clone test databases from."""
    from goliat_monitor.db import migrate
    from goliat_monitor.db.connections import make_engine

    name = f"gm_template_{uuid.uuid4().hex[:8]}"
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(_sqlalchemy_url(PG_ADMIN_URL, name))
    migrate.upgrade(engine)
    engine.dispose()
    yield name
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """An empty database of the test's own (not cloned from the migrated template), dropped after."""
    name = f"gm_test_{uuid.uuid4().hex[:12]}"
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _sqlalchemy_url(PG_ADMIN_URL, name)
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    template = request.getfixturevalue("pg_template")
    name = f"gm_test_{uuid.uuid4().hex[:12]}"
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _sqlalchemy_url(PG_ADMIN_URL, name)
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """The database URL to test against (None = the embedded SQLite default)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return None


@dataclass
class LiveServer:
    url: str
    context: ServerContext
    clock: FakeClock
    client: httpx.Client
    loop: asyncio.AbstractEventLoop
    app: Any = None
    """The server's app (its routes), when a test needs more than HTTP."""

    @property
    def settings(self) -> ServerSettings:
        return self.context.settings

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a server-side coroutine (a background service step) on the server's own loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)


class _ThreadedServer(uvicorn.Server):
    loop: asyncio.AbstractEventLoop | None = None

    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


def start_server(
    settings: ServerSettings, clock: FakeClock | Callable[[], float] = time.time
) -> tuple[str, Any, Any]:
    app = create_app(settings, now=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # As `serve`: the app's trust_proxy_headers alone decides whether X-Forwarded-* is believed.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False)
    server = _ThreadedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    app.state.loop = server.loop  # where the server's writes and services run
    return f"http://127.0.0.1:{port}", app, stop


@pytest.fixture
def make_server(tmp_path: Path, backend: str | None) -> Iterator[Callable[..., LiveServer]]:
    """Start a server on the parametrised backend; keyword arguments override settings."""
    stops: list[Callable[[], None]] = []
    clients: list[httpx.Client] = []

    def make(prepare: Callable[[ServerSettings], None] | None = None, **overrides: Any) -> LiveServer:
        """`prepare(settings)` runs before the server starts (to add accounts a `--private` server needs)."""
        clock = FakeClock()
        settings = ServerSettings(data_dir=tmp_path / f"data{len(stops)}", database_url=backend, **overrides)
        if prepare is not None:
            prepare(settings)
        url, app, stop = start_server(settings, clock)
        stops.append(stop)
        client = httpx.Client(base_url=url, timeout=30)
        clients.append(client)
        return LiveServer(url, app.state.context, clock, client, app.state.loop, app)

    yield make
    for client in clients:
        client.close()
    for stop in stops:
        stop()


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server()
