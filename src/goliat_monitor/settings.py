"""Settings for the server, read from flags, `GOLIAT_MONITOR_*` environment variables and defaults.

One declarative object per process kind, so `--help`, the README and the code cannot disagree:
`serve --help` is generated from the field descriptions below.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from goliat_monitor.domain.retention import Kind, RetentionPolicy


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
    artifacts_url: str | None = Field(
        None,
        description="Where result files and screenshots are stored: s3://BUCKET/PREFIX for any "
        "S3-compatible object store (credentials and endpoint from AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL), or file:///FOLDER. "
        "Default: the artifacts folder in the data dir.",
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
    private: bool = Field(
        False,
        description="Every page, API read, live stream, download and /metrics needs a signed-in "
        "session or an API token (only /api/health, /login and the worker calls stay reachable); "
        "refuses to start without an admin account (`goliat-monitor user add NAME --role admin`).",
    )
    session_ttl_s: float = Field(
        7 * 86400.0, description="Seconds a sign-in lasts before the browser must sign in again."
    )
    trust_proxy_headers: bool = Field(
        False,
        description="Believe X-Forwarded-Proto and X-Forwarded-For from any peer (behind a PaaS "
        "router or your own reverse proxy): decides the session cookie's Secure flag and the "
        "client address the sign-in limit, the audit log and the study history use. It alone decides "
        "(uvicorn's own forwarded-header handling is off).",
    )
    login_max_failures: int = Field(
        5, description="Failed sign-ins per account inside --login-window-s before it answers 429."
    )
    login_max_failures_per_address: int = Field(
        20, description="Failed sign-ins per client address inside --login-window-s before 429."
    )
    login_window_s: float = Field(
        300.0, description="Sliding window, in seconds, over which failed sign-ins are counted."
    )
    offline_after_s: float = Field(
        30.0, description="Seconds without any message after which a worker shows as offline."
    )
    stalled_after_s: float = Field(
        300.0,
        description="Seconds a RUNNING worker may go without a progress message before the dashboard "
        "shows it as stalled (online, but its study seems stuck).",
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
    price_per_hour: float = Field(
        0.0,
        ge=0.0,
        description="Default price of one worker machine per hour, for GPU-hours and cost; an admin "
        "can set another one per machine on its worker page.",
    )
    currency: str = Field(
        "USD", min_length=1, max_length=8, description="Currency of the prices and costs shown (a label)."
    )
    metrics_token: str | None = Field(
        None,
        description="Bearer token GET /metrics requires when set (Prometheus' `authorization` "
        "setting); also accepted as X-API-Key or /t/<token>/. Without it /metrics is open, unless "
        "--private, where it needs this token or any viewer credential.",
    )
    write_threads: int = Field(
        0,
        description="PostgreSQL: threads that commit writes in groups (0 picks 2). SQLite has one "
        "writer, on the event loop.",
    )

    keep_logs_days: float = Field(
        0.0,
        ge=0.0,
        description="Days to keep log lines (and their search index entries); 0 keeps them forever.",
    )
    keep_samples_days: float = Field(
        0.0, ge=0.0, description="Days to keep progress and utilisation samples (charts); 0 = forever."
    )
    keep_message_ids_days: float = Field(
        1.0,
        ge=0.0,
        description="Days to remember delivered message ids, so a redelivery is not stored twice; "
        "0 = forever.",
    )
    keep_events_days: float = Field(
        0.0,
        ge=0.0,
        description="Days to keep assignment history and stored worker event messages; 0 = forever.",
    )
    keep_studies_days: float = Field(
        0.0,
        ge=0.0,
        description="Days after a super study finished (completed, failed or cancelled) before it is "
        "deleted with its result files; 0 = forever. Nothing of an unfinished study is ever pruned.",
    )
    prune_interval_s: float = Field(
        60.0,
        gt=0.0,
        description="Seconds between two retention passes (each prunes in short rounds with pauses "
        "between them; on PostgreSQL one replica at a time).",
    )
    notify_urls: str = Field(
        "",
        description="Apprise URLs, space-separated, that get every notification (slack://..., "
        "discord://..., tgram://..., ntfy://..., mailto://..., json://...). Admins can add more "
        "targets, each with the events it wants, on the dashboard's Notifications page.",
    )
    public_url: str | None = Field(
        None,
        description="The dashboard's address as people open it (https://monitor.example.org): "
        "notifications link to the study's or worker's page under it. Without it they name the "
        "page's path only.",
    )
    notify_idle_after_min: float = Field(
        30.0,
        ge=0.0,
        description="Notify when an online worker has had no work for this many minutes (a rented "
        "GPU doing nothing); 0 turns it off.",
    )
    notify_digest_hour: int | None = Field(
        None,
        ge=0,
        le=23,
        description="Send a daily digest (workers, active studies, the last 24 hours) during this "
        "hour of the day, UTC; off by default.",
    )
    disk_free_alert_mb: float = Field(
        1024.0,
        ge=0.0,
        description="Notify when the data dir's disk has less than this many MB free (and again "
        "when space is back); 0 turns it off.",
    )
    notify_retry_s: float = Field(
        30.0,
        gt=0.0,
        description="Seconds before a failed notification is sent again; the wait doubles with "
        "each failure, up to an hour.",
    )
    notify_max_attempts: int = Field(
        12, ge=1, description="Tries per notification and target before it is given up as failed."
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
    def notify_url_list(self) -> list[str]:
        return self.notify_urls.split()

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def retention(self) -> RetentionPolicy:
        return RetentionPolicy(
            {
                Kind.LOGS: self.keep_logs_days,
                Kind.SAMPLES: self.keep_samples_days,
                Kind.MESSAGE_IDS: self.keep_message_ids_days,
                Kind.EVENTS: self.keep_events_days,
                Kind.STUDIES: self.keep_studies_days,
            }
        )


class AgentSettings(BaseSettings):
    """What `goliat-monitor agent` needs: where the server is, where to work, what to run.

    Every field is also a `GOLIAT_MONITOR_*` variable, so a VM image can configure its agent with
    environment variables alone; `--server` and friends override them.
    """

    model_config = SettingsConfigDict(env_prefix="GOLIAT_MONITOR_", extra="ignore", populate_by_name=True)

    server_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL of the goliat-monitor server.",
        validation_alias=AliasChoices("GOLIAT_MONITOR_SERVER_URL", "GOLIAT_MONITORING_URL"),
    )
    token: str | None = Field(
        None,
        description="The server's worker token, sent as `Authorization: Bearer`.",
        validation_alias=AliasChoices("GOLIAT_MONITOR_TOKEN", "GOLIAT_MONITOR_WORKER_TOKEN"),
    )
    work_dir: Path = Field(
        Path("goliat-agent"),
        description="Folder for assignment configs, run folders, the agent id and the spool.",
    )
    command: str = Field(
        "goliat study {config}",
        description="Study command; {config} is the assignment's config file, {run_dir} its run folder.",
    )
    machine_id: str | None = Field(
        None, description="Machine id to report (default: the public IP, as GOLIAT computes it)."
    )
    heartbeat_interval_s: float = Field(5.0, description="Seconds between heartbeats.")
    request_timeout_s: float = Field(10.0, description="Timeout of one HTTP request, in seconds.")
    upload_timeout_s: float = Field(120.0, description="Timeout of one result upload, in seconds.")
    idle_poll_max_s: float = Field(
        10.0, description="Longest wait between two asks for work while the server has none."
    )
    retry_cap_s: float = Field(30.0, description="Longest wait between two retries during an outage.")
    progress_hz: float = Field(5.0, description="Most progress messages per second, per message type.")
    log_batch_lines: int = Field(100, description="Most log lines in one log_batch message.")
    log_batch_age_s: float = Field(0.5, description="Longest a log line waits to be batched, in seconds.")
    stop_grace_s: float = Field(
        30.0, description="Seconds an interrupted study gets to exit before it is killed."
    )
    forward_verbose: bool = Field(
        False,
        description="Also send GOLIAT's verbose-level console lines (as log_type verbose); by "
        "default only the progress-level lines GOLIAT's own GUI shows are sent.",
    )
    upload_max_file_mb: float = Field(
        256.0, description="Result files larger than this are not uploaded (a warning is logged)."
    )
    screenshot_interval_s: float = Field(
        0.0,
        ge=0.0,
        description="Seconds between two screenshots of the GOLIAT window (the whole screen when "
        "there is none) sent to the server as its 'GOLIAT window' tab; 0 turns them off.",
    )
