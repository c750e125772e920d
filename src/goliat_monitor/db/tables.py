"""The schema. Every table that grows with time is append-only and indexed by its owner and order,
so a request's cost depends on what it touches, never on how long the campaign has run.

Times are Unix seconds (float), the unit GOLIAT itself sends; the API turns them into ISO strings.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger primary keys autoincrement on PostgreSQL; SQLite only does so for INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")

workers = Table(
    "workers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("machine_id", String(255), nullable=False),
    # Stable id of a goliat-monitor agent, so two agents behind one NAT address stay two workers.
    # Empty for GOLIAT's own bridge, which only knows its machine id.
    Column("agent_id", String(64), nullable=False, server_default=""),
    Column("is_stale", Boolean, nullable=False, server_default=text("false")),
    Column("hostname", String(255)),
    Column("machine_label", String(255)),
    # The machine's price per hour (migration 0013), NULL for the server's default; like the
    # label it names the machine, so every session of it carries the same value.
    Column("price_per_hour", Float),
    Column("status", String(16), nullable=False),
    Column("gpu_name", String(255)),
    Column("cpu_cores", Integer),
    Column("total_ram_gb", Float),
    Column("last_seen", Float, nullable=False),
    Column("last_heartbeat_at", Float),
    # Observed spacing of heartbeats: GOLIAT's bridge sends one every 30 s while idle.
    Column("heartbeat_interval_s", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Live GUI state.
    Column("progress", Float, nullable=False, server_default="0"),
    Column("stage_progress", Float, nullable=False, server_default="0"),
    Column("stage", String(255)),
    Column("sub_stage", String(255)),
    Column("simulation_count", Integer),
    Column("total_simulations", Integer),
    Column("current_case", String(1024)),
    Column("eta_at", Float),
    Column("warning_count", Integer, nullable=False, server_default="0"),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("finished_at", Float),
    Column("last_progress_at", Float),
    Column("last_sample_at", Float),
    Column("current_assignment_id", String(36)),
    # The last ending's time and exit code, so the "finished with errors" GOLIAT sends after a
    # memory_error is known for what it is even when the machine has claimed the retry since.
    Column("ended_at", Float),
    Column("ended_exit_code", Integer),
    # GOLIAT's send time of the newest progress values shown: older ones arrive late, not newer.
    Column("progress_sent_at", Float),
    Column("stage_sent_at", Float),
    # Log ordering (domain.gui_state.place_batch): the floor no new line sorts below, the newest
    # line time stored, and the bridges (`sequence` streams) heard from lately, as JSON.
    Column("log_floor", Float),
    Column("log_newest", Float),
    Column("log_streams", Text),
    Index(
        "uq_workers_live_session",
        "machine_id",
        "agent_id",
        unique=True,
        sqlite_where=text("is_stale = 0"),
        postgresql_where=text("is_stale = false"),
    ),
    # No index on `last_seen`, `status` or any other column a message changes: on PostgreSQL the
    # row is then updated in place (HOT), touching no index (migration 0011; fillfactor 50 there).
    # Every session a machine ever had: a returning machine's old sessions are found through it.
    Index("ix_workers_machine", "machine_id", "agent_id"),
)

log_lines = Table(
    "log_lines",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("worker_id", String(36), ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    # (production time, sequence) packed into one sortable integer; see domain.gui_state.order_key.
    Column("ord", BigInteger, nullable=False),
    Column("ts", Float, nullable=False),
    Column("log_type", String(16), nullable=False),
    Column("message", Text, nullable=False),
    # The assignment the worker ran when it sent the line (None outside a super study): the link
    # from a line to its super study, for `GET /api/logs?study=`. Set at ingest, never indexed:
    # a study filter always comes with a text search, which the text index narrows first.
    Column("assignment_id", String(36)),
    Index("ix_log_lines_worker_order", "worker_id", "ord", "id"),
)
# The text index of `message` is not declared here: it differs by database (an FTS5 table on
# SQLite, a GIN trigram index on PostgreSQL); see migration 0006 and `db/search_index.py`.

worker_samples = Table(
    "worker_samples",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("worker_id", String(36), ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("progress", Float),
    Column("stage_progress", Float),
    Column("cpu_percent", Float),
    Column("ram_percent", Float),
    Column("gpu_percent", Float),
    Column("vram_used_gb", Float),
    Column("vram_total_gb", Float),
    # Disk I/O from the agent's heartbeats (MB/s, 2**20 bytes) and GOLIAT's ETA at a progress
    # sample, for the Disk I/O and Time Remaining charts.
    Column("disk_read_mbps", Float),
    Column("disk_write_mbps", Float),
    Column("page_faults_per_sec", Float),
    Column("eta_seconds", Float),
    Index("ix_worker_samples_worker_ts", "worker_id", "ts"),
)

# One duration GOLIAT's profiler measured (an agent `timing` message), for the Timings tabs.
timing_samples = Table(
    "timing_samples",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("worker_id", String(36), ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    # The assignment the worker ran, None for a study started outside a super study; a run's
    # timings are read by it, so an agent's second assignment starts a fresh table.
    Column("assignment_id", String(36)),
    Column("ts", Float, nullable=False),
    Column("phase", String(64), nullable=False),
    Column("subtask", String(255)),
    Column("seconds", Float, nullable=False),
    Column("simulation", Integer),
    Index("ix_timing_samples_worker_run", "worker_id", "assignment_id", "id"),
    # A simulation's timings on the study page: its assignment and GOLIAT's simulation number.
    Index("ix_timing_samples_assignment_simulation", "assignment_id", "simulation"),
    # The newest sample of a worker says which run its page shows once the worker is idle.
    Index("ix_timing_samples_worker_id", "worker_id", "id"),
)

worker_messages = Table(
    "worker_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("worker_id", String(36), ForeignKey("workers.id", ondelete="CASCADE"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("type", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_worker_messages_worker_id", "worker_id", "id"),
)

# Idempotency: a client that redelivers a message (the agent's spool) sends the same messageId.
received_messages = Table(
    "received_messages",
    metadata,
    Column("machine_id", String(255), primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("received_at", Float, nullable=False),
    # Housekeeping forgets ids older than a day; without this it read the whole table every 5 s.
    Index("ix_received_messages_received_at", "received_at"),
)

screenshots = Table(
    "screenshots",
    metadata,
    Column("worker_id", String(36), ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True),
    # The part's field name exactly as the client sent it (`Disk_I/O`): the tab's identity and
    # what the read URL carries. Never a path: the blob key is derived from it (see `tab_key`).
    Column("tab", String(128), primary_key=True),
    # What the page shows (`Disk I/O`): GOLIAT's tab name, its client having put `_` for spaces.
    Column("label", String(128), nullable=False),
    Column("blob_key", String(512), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

super_studies = Table(
    "super_studies",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("base_config", JSON),
    # Parent configs named by `extends`, by file name, so workers can resolve them.
    Column("parent_configs", JSON),
    Column("split_strategy", String(32)),
    Column("max_attempts", Integer, nullable=False, server_default="3"),
    Column("retry_fatal", Boolean, nullable=False, server_default=text("false")),
    Column("cancelled_at", Float),
    Column("deleted_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_super_studies_name", "name"),
    Index(
        "uq_super_studies_live_name",
        "name",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
)

assignments = Table(
    "assignments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "super_study_id",
        String(36),
        ForeignKey("super_studies.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("index", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("split_config", JSON, nullable=False),
    Column("size", Integer, nullable=False, server_default="1"),
    Column("worker_id", String(36), ForeignKey("workers.id", ondelete="SET NULL")),
    Column("machine_id", String(255)),
    Column("progress", Float, nullable=False, server_default="0"),
    Column("stage", String(255)),
    Column("eta_at", Float),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("exit_code", Integer),
    Column("error_message", Text),
    Column("lease_expires_at", Float),
    Column("stop_requested", Boolean, nullable=False, server_default=text("false")),
    # Set by "reassign": only this machine may claim the assignment next.
    Column("reserved_for", String(255)),
    Column("started_at", Float),
    Column("completed_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_assignments_study_index", "super_study_id", "index", unique=True),
    Index("ix_assignments_status", "status"),
    Index("ix_assignments_worker", "worker_id"),
)

assignment_events = Table(
    "assignment_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "assignment_id",
        String(36),
        ForeignKey("assignments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("ts", Float, nullable=False),
    Column("actor", String(255), nullable=False),
    # The worker session that held the attempt, so a worker page can list its assignment history.
    Column("worker_id", String(36)),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("reason", Text),
    Index("ix_assignment_events_assignment", "assignment_id", "id"),
    Index("ix_assignment_events_worker", "worker_id"),
)

result_files = Table(
    "result_files",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "assignment_id",
        String(36),
        ForeignKey("assignments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("relative_path", String(1024), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("blob_key", String(1024), nullable=False),
    Column("content_type", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("uq_result_files_path", "assignment_id", "relative_path", "filename", unique=True),
)

# -- accounts, sign-in and the audit log (migration 0007) ---------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),  # argon2id, with its own salt and cost
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Server-side sessions, shared by every replica. The cookie holds a random secret; only its
# SHA-256 is stored, so a copy of the database signs nobody in.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("address", String(64), nullable=False, server_default=""),
    Index("ix_sessions_user", "user_id"),
)

# API tokens: only the SHA-256 of the (random, 256-bit) token is kept.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

# Failed sign-ins by key ("user:<name>", "addr:<ip>"), read by the rate limiter of every replica.
auth_failures = Table(
    "auth_failures",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(160), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_auth_failures_key_at", "key", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("address", String(64), nullable=False, server_default=""),
    Column("status", Integer),
    Index("ix_audit_log_at", "at"),
)
# What the agent's parsed "Simulation N/M" lines said about each simulation of an assignment: N
# is the simulation's place in its split config's loop (domain.simulations). One row per
# (assignment, N), rewritten when a later attempt starts it again.
simulation_runs = Table(
    "simulation_runs",
    metadata,
    Column(
        "assignment_id",
        String(36),
        ForeignKey("assignments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("worker_id", String(36)),
    Column("total", Integer),
    Column("case_label", String(1024)),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("failed_at", Float),
)

# The figures of each uploaded sar_results.json / sapd_results.json, parsed once when it arrived,
# so the results table never re-reads a file. `error` says why a file is unreadable.
result_figures = Table(
    "result_figures",
    metadata,
    Column(
        "assignment_id",
        String(36),
        ForeignKey("assignments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("relative_path", String(1024), primary_key=True),
    Column("filename", String(255), primary_key=True),
    Column("figures", JSON),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
)

# -- notifications (migration 0012) --------------------------------------------------------------

# Targets an admin added in the dashboard: an apprise URL (it holds the service's secret, so the
# API and the pages only ever show `masked_url`) and the events it wants (empty: all).
# Targets from GOLIAT_MONITOR_NOTIFY_URLS live in the settings, not here.
notify_targets = Table(
    "notify_targets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("url", Text, nullable=False),
    Column("masked_url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(128), nullable=False, server_default=""),
)

# The outbox: one row per event, inserted by the transaction that made the event happen (or by a
# replica's detection loop, once per `dedup_key`), fanned out to the targets after commit.
notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("dedup_key", String(255), nullable=False, unique=True),
    Column("subject", String(255), nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("path", String(1024)),
    Column("created_at", Float, nullable=False),
    Column("fanned_out", Boolean, nullable=False, server_default=text("false")),
    Index(
        "ix_notifications_waiting",
        "id",
        sqlite_where=text("fanned_out = 0"),
        postgresql_where=text("fanned_out = false"),
    ),
    Index("ix_notifications_subject", "subject", "kind", "id"),
)

# One delivery of a notification to one target ("env:<hash>" for a settings URL, "db:<id>" for
# a dashboard target): claimed under a lease by one replica, retried with backoff, kept with its
# last error for the admin page.
notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "notification_id",
        BigId,
        ForeignKey("notifications.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("target", String(64), nullable=False),
    Column("target_label", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_owner", String(36)),
    Column("lease_until", Float),
    Column("last_error", Text),
    Column("delivered_at", Float),
    Column("updated_at", Float, nullable=False),
    Index("uq_notification_deliveries_target", "notification_id", "target", unique=True),
    Index(
        "ix_notification_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status = 'PENDING'"),
        postgresql_where=text("status = 'PENDING'"),
    ),
)
