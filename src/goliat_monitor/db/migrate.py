"""Schema upgrades through Alembic, callable from the server's start-up and from the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from goliat_monitor.db.raw import Raw

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# The key of the PostgreSQL advisory lock replicas take around an upgrade: any fixed 64-bit number
# nothing else in the database uses (these are the bytes of "goliatmg"). PostgreSQL keys advisory
# locks by database too, so servers on other databases of one cluster never wait for each other.
MIGRATION_LOCK_KEY = 0x676F6C6961746D67


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_revision(conn: Connection) -> str | None:
    """The revision a connection's database holds, for the health probe.

    A plain SELECT through the driver's cursor: building an Alembic migration context per probe
    costs milliseconds, and probes come every few seconds from every load balancer.
    """
    revision: str | None = Raw(conn).scalar("SELECT version_num FROM alembic_version", {})
    return revision


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; a no-op when it is already there.

    On PostgreSQL several replicas may start at the same moment on one database: each takes an
    advisory lock first, so one migrates while the others wait. Alembic reads the schema's
    revision only once it holds the lock, so the waiting ones find it at `revision` and change
    nothing. Without the lock both would create `alembic_version` and the tables, and the second
    would fail with a unique violation. SQLite servers run alone.
    """
    with _migration_lock(engine):
        config = alembic_config(str(engine.url))
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Hold PostgreSQL's migration advisory lock on a connection of its own; nothing on SQLite.

    A session lock on a connection that runs no migration: it lasts across the migrations'
    commits, and a replica that dies mid-upgrade loses its session and so the lock, so the next
    one can take over. The lock is released before the connection goes back to the pool, where
    it would otherwise stay held.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
