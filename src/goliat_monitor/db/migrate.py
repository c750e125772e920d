"""Schema upgrades through Alembic, callable from the server's start-up and from the CLI."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from goliat_monitor.db.raw import Raw

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


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
    """Bring the schema to `revision`; a no-op when it is already there."""
    config = alembic_config(str(engine.url))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()
