"""Settings for the server, read from flags, `GOLIAT_MONITOR_*` environment variables and defaults.

One declarative object per process kind, so `--help`, the README and the code cannot disagree:
`serve --help` is generated from the field descriptions below.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def normalize_database_url(url: str) -> str:
    """Accept the `postgres://` URLs hosting platforms hand out and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOLIAT_MONITOR_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 for every interface).")
    port: int = Field(
        8000,
        description="TCP port to listen on; the PORT variable that hosting platforms set is honoured.",
        validation_alias=AliasChoices("GOLIAT_MONITOR_PORT", "PORT"),
    )
    data_dir: Path = Field(
        Path("goliat-monitor-data"),
        description="Folder for the embedded SQLite database and the artifact store.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database; postgres:// URLs use psycopg 3. "
        "Default: SQLite in the data dir. DATABASE_URL is honoured.",
        validation_alias=AliasChoices("GOLIAT_MONITOR_DATABASE_URL", "DATABASE_URL"),
    )
    worker_token: str | None = Field(
        None,
        description="Shared secret required on every ingest, claim and upload call when set.",
    )
    admin_token: str | None = Field(
        None,
        description="Shared secret required to create, change or delete super studies when set; "
        "it is accepted wherever the worker token is.",
    )
    offline_after_s: float = Field(
        30.0, description="Seconds without any message after which a worker shows as offline."
    )
    lease_timeout_s: float = Field(
        600.0,
        description="Seconds a RUNNING assignment survives without a message from its worker before "
        "it is handed to another worker.",
    )
    finish_grace_s: float = Field(
        5.0,
        description="Seconds after a `finished` message during which late progress messages "
        "cannot reopen the run (GOLIAT's sender threads race).",
    )
    max_file_bytes: int = Field(
        512 * 1024 * 1024, description="Largest single uploaded result file or screenshot, in bytes."
    )
    max_request_bytes: int = Field(
        1024 * 1024 * 1024, description="Largest upload request (all files together), in bytes."
    )
    max_json_bytes: int = Field(16 * 1024 * 1024, description="Largest JSON request body, in bytes.")
    recent_log_lines: int = Field(
        200, description="Log lines included with GET /api/workers/{id}; older ones are paged."
    )
    sample_interval_s: float = Field(
        1.0, description="Shortest interval between two stored progress samples of one worker."
    )
    write_threads: int = Field(
        0,
        description="Threads that commit writes in groups; 0 picks 1 for SQLite and 4 for PostgreSQL.",
    )

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str | None) -> str | None:
        return normalize_database_url(value) if value else value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'goliat-monitor.sqlite3').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
