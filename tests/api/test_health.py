"""`/api/health`: what a load balancer's probe sees, and what it costs the database."""

from __future__ import annotations

from sqlalchemy import text

from tests.conftest import LiveServer


def _set_revision(server: LiveServer, revision: str) -> None:
    server.context.db.write_sync(
        lambda conn: conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    )


def test_health_names_the_database_and_its_schema(backend: str | None, server: LiveServer) -> None:
    answer = server.client.get("/api/health").json()
    assert answer["status"] == "ok"
    assert answer["database"] == ("sqlite" if backend is None else "postgresql")
    assert answer["schemaRevision"]


def test_probes_share_one_database_read_per_second(backend: str | None, server: LiveServer) -> None:
    """Probes within `max_age_s` of a read answer from it; the next one after reads again."""
    first = server.client.get("/api/health").json()["schemaRevision"]
    server.context.schema.max_age_s = 3600
    _set_revision(server, "changed-behind-the-probe")
    try:
        for _ in range(5):
            assert server.client.get("/api/health").json()["schemaRevision"] == first
        server.context.schema.max_age_s = 0
        assert server.client.get("/api/health").json()["schemaRevision"] == "changed-behind-the-probe"
    finally:
        _set_revision(server, first)
