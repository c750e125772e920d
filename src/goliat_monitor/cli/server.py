"""`serve`, `db` and `artifacts`: the server, its schema and its artifact store."""

from __future__ import annotations

from typing import Any

import click

from goliat_monitor import __version__

# --- serve / db: the server and its schema ---


def _settings_options(function: Any) -> Any:
    """One `--option` per ServerSettings field, with its description and environment variable.

    Generated from the settings object so `serve --help` documents every setting, always.
    """
    from goliat_monitor.settings import ServerSettings

    for name, info in reversed(list(ServerSettings.model_fields.items())):
        env = f"GOLIAT_MONITOR_{name.upper()}"
        extra = {"port": ", PORT", "database_url": ", DATABASE_URL"}.get(name, "")
        default = info.default
        help_text = f"{info.description} [env: {env}{extra}]"
        if default is not None:
            help_text += f" [default: {default}]"
        annotation = info.annotation
        flag = name.replace("_", "-")
        if annotation is bool:  # --private / --no-private; absent leaves the environment's value
            function = click.option(f"--{flag}/--no-{flag}", name, default=None, help=help_text)(function)
            continue
        kind: Any = str
        if annotation in (int, float):
            kind = annotation
        function = click.option(f"--{flag}", name, type=kind, default=None, help=help_text)(function)
    return function


SHUTDOWN_GRACE_S = 5
"""How long SIGTERM waits for requests in flight before cancelling them. The lifespan's own steps
are bounded too (`server.app.SHUTDOWN_STEP_S`, `db.engine.CLOSE_TIMEOUT_S`), so the process ends
within 10 s, Docker's default grace period, even while the database is unreachable."""


def _server_settings(options: dict[str, Any]) -> Any:
    """Flags override the environment, which overrides the defaults."""
    from goliat_monitor.settings import ServerSettings

    return ServerSettings(**{key: value for key, value in options.items() if value is not None})


@click.command()
@_settings_options
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every HTTP request (at thousands of GOLIAT messages a second, mostly noise).",
)
def serve(log_level: str, access_log: bool, **options: Any) -> None:
    """Start the server: the GOLIAT-compatible API and the dashboard.

    Without --database-url it keeps a SQLite database and the artifacts in --data-dir;
    the schema is created or upgraded on start.
    """
    import gc
    import logging

    import uvicorn

    from goliat_monitor.server.app import NoAdminAccount, create_app

    settings = _server_settings(options)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)
    except NoAdminAccount as exc:
        raise click.ClickException(str(exc)) from None
    # The ~120,000 objects of the loaded app live as long as the process: moved out of the cyclic
    # collector's sight, a full collection no longer stops every request for ~40 ms.
    gc.collect()
    gc.freeze()
    click.echo(f"goliat-monitor {__version__} on http://{settings.host}:{settings.port}", err=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=access_log,
        # Our own code reads X-Forwarded-* only when --trust-proxy-headers says so (server/auth.py
        # is_https, client_address); uvicorn's rewriting would believe them from 127.0.0.1 regardless.
        proxy_headers=False,
        server_header=False,  # no need to tell the network which server software answers
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--data-dir", default=None, help="Folder of the embedded SQLite database.")
@click.option("--database-url", default=None, help="Database URL (else DATABASE_URL, else SQLite).")
def db_upgrade(data_dir: str | None, database_url: str | None) -> None:
    """Create or upgrade the schema to the newest revision, then exit."""
    from goliat_monitor.db import migrate
    from goliat_monitor.db.connections import make_engine

    settings = _server_settings({"data_dir": data_dir, "database_url": database_url})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    engine.dispose()
    click.echo(f"schema: {before or 'empty'} -> {after}")


# --- artifacts: the artifact store ---


@click.group()
def artifacts() -> None:
    """Artifact store commands (result files and screenshots)."""


@artifacts.command("migrate")
@click.option(
    "--to", "target_url", required=True, metavar="s3://BUCKET/PREFIX", help="The object store to copy into."
)
@click.option("--data-dir", default=None, help="The server's data dir [env: GOLIAT_MONITOR_DATA_DIR].")
@click.option("--database-url", default=None, help="Database URL (else DATABASE_URL, else SQLite).")
@click.option(
    "--artifacts-url",
    default=None,
    help="Where the artifacts are now [env: GOLIAT_MONITOR_ARTIFACTS_URL] [default: the data dir's folder].",
)
@click.option(
    "--threads", type=click.IntRange(1, 64), default=8, show_default=True, help="Objects copied at once."
)
def artifacts_migrate(
    target_url: str, data_dir: str | None, database_url: str | None, artifacts_url: str | None, threads: int
) -> None:
    """Copy every result file and screenshot the database knows into an object store.

    Credentials and endpoint come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
    and AWS_ENDPOINT_URL. Every object is read back and checked (size and SHA-256) before this
    succeeds; it switches nothing: it prints what to set once all are verified. Rerunning copies
    only what is missing and verifies everything again. Exits 1 if any object failed.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from goliat_monitor.artifact_migration import Outcome, migrate_all, unique_blobs
    from goliat_monitor.blobs import S3Store, open_store
    from goliat_monitor.db import migrate
    from goliat_monitor.db.connections import make_engine
    from goliat_monitor.db.queries.artifacts import stored_blobs

    settings = _server_settings(
        {"data_dir": data_dir, "database_url": database_url, "artifacts_url": artifacts_url}
    )
    if not target_url.startswith("s3://"):
        raise click.BadParameter("the target is an object store: s3://BUCKET/PREFIX", param_hint="--to")
    target = S3Store.from_url(target_url)
    try:
        target.check()
    except ConnectionError as exc:
        raise click.ClickException(str(exc)) from None
    if settings.artifacts_url and settings.artifacts_url.rstrip("/") == target.url:
        raise click.ClickException(f"the artifacts are already in {target.url}")
    engine = make_engine(settings.resolved_database_url)
    try:
        if migrate.current_revision(engine) is None:
            raise click.ClickException(f"no goliat-monitor database at {settings.resolved_database_url}")
        with engine.connect() as conn:
            blobs = unique_blobs(stored_blobs(conn))
    finally:
        engine.dispose()
    source = open_store(settings.artifacts_url, settings.artifacts_dir)
    source_name = settings.artifacts_url or str(settings.artifacts_dir)

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[objects]}/" + f"{len(blobs)} objects"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        total = sum(blob.size for blob in blobs)
        progress.console.print(f"copying {len(blobs)} objects from {source_name} to {target.url}")
        task = progress.add_task("copying", total=total, objects=0)
        finished = 0

        def done(outcome: Outcome) -> None:
            nonlocal finished
            finished += 1
            progress.update(task, advance=outcome.blob.size, objects=finished)

        outcomes = migrate_all(blobs, source, target, threads=threads, on_done=done)
    failed = [outcome for outcome in outcomes if outcome.status == "failed"]
    copied = sum(outcome.status == "copied" for outcome in outcomes)
    for outcome in failed:
        click.echo(f"FAILED {outcome.blob.key}: {outcome.reason}", err=True)
    if failed:
        click.echo(
            f"{len(failed)} of {len(outcomes)} objects failed; nothing was switched, the servers keep "
            f"using {source_name}. Fix them and run this again (verified objects are not copied twice).",
            err=True,
        )
        raise SystemExit(1)
    click.echo(
        f"verified all {len(outcomes)} objects in {target.url} "
        f"({copied} copied, {len(outcomes) - copied} already there). Nothing has been switched yet."
    )
    click.echo("To use the bucket, set this (and the same AWS_* variables) on every server and restart it:")
    click.echo(f"  GOLIAT_MONITOR_ARTIFACTS_URL={target.url}")
    click.echo(
        "Uploads made after this run started are only in the old store: stop the servers and rerun first."
    )


# --- split: cut a campaign config into assignment configs the way GOLIAT does ---


# --- prune: retention, by hand ---


def _keep_options(function: Any) -> Any:
    """`--keep-<kind>-days` for each retention setting, as `serve` has them."""
    from goliat_monitor.settings import ServerSettings

    for name, info in reversed(list(ServerSettings.model_fields.items())):
        if name.startswith("keep_"):
            env = f"GOLIAT_MONITOR_{name.upper()}"
            help_text = f"{info.description} [env: {env}] [default: {info.default}]"
            flag = name.replace("_", "-")
            function = click.option(f"--{flag}", name, type=float, default=None, help=help_text)(function)
    return function


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Only count what would go; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@click.option("--data-dir", default=None, help="The server's data dir [env: GOLIAT_MONITOR_DATA_DIR].")
@click.option("--database-url", default=None, help="Database URL (else DATABASE_URL, else SQLite).")
@click.option(
    "--artifacts-url",
    default=None,
    help="The artifact store [env: GOLIAT_MONITOR_ARTIFACTS_URL] [default: the data dir's folder].",
)
@_keep_options
def prune(dry_run: bool, as_json: bool, **options: Any) -> None:
    """Delete what is older than its retention setting now, as the server's background pass does.

    Counts per kind what goes (log lines, progress samples, message ids, events, finished
    studies), then deletes it in the same short rounds as the server, with a pause between them,
    so it can run beside live servers. Nothing of an unfinished super study is ever deleted. With
    the same settings as `serve` (flags or GOLIAT_MONITOR_KEEP_*_DAYS). Exits 1 when another
    replica is pruning right now (PostgreSQL).
    """
    import json
    import time

    from rich.console import Console
    from rich.table import Table

    from goliat_monitor import pruning
    from goliat_monitor.blobs import open_store
    from goliat_monitor.db import migrate
    from goliat_monitor.db.connections import make_engine

    settings = _server_settings(options)
    policy = settings.retention
    engine = make_engine(settings.resolved_database_url)
    try:
        if migrate.current_revision(engine) is None:
            raise click.ClickException(f"no goliat-monitor database at {settings.resolved_database_url}")
        now = time.time()
        counts = pruning.count(engine, policy, now)
        if not dry_run and any(counts.values()):
            counts = _prune_with_progress(
                pruning.Pruner(
                    engine, policy, now, blobs=open_store(settings.artifacts_url, settings.artifacts_dir)
                ),
                counts,
                show=not as_json,
            )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"dryRun": dry_run, "counts": {kind.value: n for kind, n in counts.items()}}))
        return
    if not counts:
        click.echo("No retention is set (every GOLIAT_MONITOR_KEEP_*_DAYS is 0): nothing goes.")
        return
    table = Table(title="would be deleted (dry run)" if dry_run else "deleted")
    table.add_column("kind")
    table.add_column("older than", justify="right")
    table.add_column("rows" if dry_run else "deleted", justify="right")
    for kind, n in counts.items():
        days = policy.days[kind]
        table.add_row(kind.label, f"{days:g} day{'' if days == 1 else 's'}", f"{n:,}")
    Console().print(table)


def _prune_with_progress(pruner: Any, counted: dict[Any, int], *, show: bool) -> dict[Any, int]:
    """Run the pass with a bar per kind (totals from the count); returns what went."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from goliat_monitor.pruning import PAUSE_S

    done = dict.fromkeys(counted, 0)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not show) as progress:
        tasks = {kind: progress.add_task(f"{kind.label:>16}", total=n) for kind, n in counted.items()}
        with pruner:
            if not pruner.locked:
                raise click.ClickException(
                    "another server is pruning this database right now; try again later"
                )
            while (step := pruner.next_round()) is not None:
                done[step.kind] += step.count
                progress.update(tasks[step.kind], completed=done[step.kind])
                time.sleep(PAUSE_S)
    return done
