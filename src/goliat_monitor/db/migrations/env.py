"""Alembic environment: one migration tree for SQLite and PostgreSQL (batch mode for SQLite)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from goliat_monitor.db.connections import make_engine
from goliat_monitor.db.search_index import include_object
from goliat_monitor.db.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        _run_without_foreign_keys(connection)
    else:
        _migrate(connection)


def _run_without_foreign_keys(connection: Connection) -> None:
    """SQLite's batch mode rebuilds a table by copying it and dropping the old one.

    With foreign keys on, dropping `workers` would cascade into every log line, sample and
    screenshot of every worker. The switch only works outside a transaction, so it is flipped on
    the driver's connection before the migration's transaction begins and back after it has
    committed, and the keys are checked before the commit.
    """
    dbapi = connection.connection.driver_connection
    assert dbapi is not None and not connection.in_transaction()
    dbapi.execute("PRAGMA foreign_keys=OFF")
    try:
        _migrate(connection, check_foreign_keys=True)
        connection.commit()  # the switch back is a no-op inside a transaction
    except BaseException:
        connection.rollback()
        raise
    finally:
        dbapi.execute("PRAGMA foreign_keys=ON")


def _migrate(connection: Connection, *, check_foreign_keys: bool = False) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,  # the log text index differs by database (migration 0006)
    )
    with context.begin_transaction():
        context.run_migrations()
        if check_foreign_keys:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows without their parent: {broken[:5]}")


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
