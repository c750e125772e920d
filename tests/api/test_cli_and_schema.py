"""The `serve` and `db upgrade` commands, and the migration tree on both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from goliat_monitor.cli import main
from goliat_monitor.db import migrate
from goliat_monitor.db.connections import make_engine
from goliat_monitor.db.search_index import include_object
from goliat_monitor.db.tables import metadata
from goliat_monitor.settings import ServerSettings, normalize_database_url
from tests.support import free_port, wait_for


def test_serve_help_documents_every_setting() -> None:
    text = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200).output
    for name in ServerSettings.model_fields:
        assert f"--{name.replace('_', '-')}" in text, name
        assert f"GOLIAT_MONITOR_{name.upper()}" in text, name


def test_postgres_urls_from_hosting_platforms_are_accepted() -> None:
    assert normalize_database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert normalize_database_url("postgresql://h/d") == "postgresql+psycopg://h/d"
    assert ServerSettings(database_url="postgres://h/d").resolved_database_url == "postgresql+psycopg://h/d"


def test_port_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9123")
    assert ServerSettings().port == 9123


def test_migrations_match_the_tables_on_both_databases(backend: str | None, tmp_path: Path) -> None:
    url = backend or f"sqlite:///{tmp_path / 'schema.sqlite3'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--data-dir", str(tmp_path), "--database-url", url])
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False, "include_object": include_object}),
            metadata,
        )
    engine.dispose()
    assert diff == []
    again = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and f"{migrate.head_revision()} -> {migrate.head_revision()}" in again.output


def test_serve_runs_as_a_real_process(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "GOLIAT_MONITOR_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "goliat_monitor", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def health_answer() -> dict[str, Any] | None:
            try:
                answer: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
                return answer
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                return None

        health = wait_for(health_answer, timeout=30, what="the server to start")
        assert health["status"] == "ok" and health["database"] == "sqlite"
        assert (tmp_path / "data" / "goliat-monitor.sqlite3").exists()
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert "No worker or admin token is set" in output
