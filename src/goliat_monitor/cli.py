"""The `goliat-monitor` command line: one click group, one command per job."""

from __future__ import annotations

from typing import Any

import click

from goliat_monitor import __version__
from goliat_monitor.domain.models import PHASES


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="goliat-monitor")
def main() -> None:
    """Run and watch GOLIAT simulation campaigns: server, worker agent and tools."""


# --- commands are added below, one block per command ---


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
        kind: Any = str
        if annotation in (int, float):
            kind = annotation
        function = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None, help=help_text)(
            function
        )
    return function


SHUTDOWN_GRACE_S = 5
"""How long SIGTERM waits for requests in flight before cancelling them. The lifespan's own steps
are bounded too (`server.app.SHUTDOWN_STEP_S`, `db.engine.CLOSE_TIMEOUT_S`), so the process ends
within 10 s, Docker's default grace period, even while the database is unreachable."""


def _server_settings(options: dict[str, Any]) -> Any:
    """Flags override the environment, which overrides the defaults."""
    from goliat_monitor.settings import ServerSettings

    return ServerSettings(**{key: value for key, value in options.items() if value is not None})


@main.command()
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

    from goliat_monitor.server.app import create_app

    settings = _server_settings(options)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
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
        proxy_headers=True,
        server_header=False,  # no need to tell the network which server software answers
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--data-dir", default=None, help="Folder of the embedded SQLite database.")
@click.option("--database-url", default=None, help="Database URL (else DATABASE_URL, else SQLite).")
def db_upgrade(data_dir: str | None, database_url: str | None) -> None:
    """Create or upgrade the schema to the newest revision, then exit."""
    from goliat_monitor.db import migrate
    from goliat_monitor.db.engine import make_engine

    settings = _server_settings({"data_dir": data_dir, "database_url": database_url})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    engine.dispose()
    click.echo(f"schema: {before or 'empty'} -> {after}")


# --- artifacts: the artifact store ---


@main.group()
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
    from goliat_monitor.db.engine import make_engine
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


def _split_strategy_names() -> tuple[str, ...]:
    """The strategy names for `--by`; the domain module is stdlib-only, so this import is cheap."""
    from goliat_monitor.domain.splitting import STRATEGIES

    return STRATEGIES


def _split_file(
    config_path: str, strategy: str, num_splits: int | None, frequency_groups: str | None
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Read CONFIG and its `extends` parents and split it; a refusal exits 2 with GOLIAT's reason."""
    from pathlib import Path

    from goliat_monitor.config_files import read_config
    from goliat_monitor.domain.campaign import ConfigError
    from goliat_monitor.domain.splitting import SplitError, split_config

    path = Path(config_path)
    try:
        config, parents = read_config(path.parent, path.name)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="CONFIG") from exc
    try:
        result = split_config(
            config, strategy, num_splits=num_splits, frequency_groups=frequency_groups, parents=parents
        )
    except SplitError as exc:
        click.echo(f"error: cannot split {config_path} by {strategy}: {exc}", err=True)
        raise SystemExit(2) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    return config, parents, result


@main.command("split")
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--by",
    "strategy",
    type=click.Choice(_split_strategy_names()),
    default="auto",
    show_default=True,
    help="How to split, as GOLIAT's `super_study --split-by`.",
)
@click.option(
    "--num-splits", type=int, default=None, help="Number of assignments for --by auto [default: 4]."
)
@click.option(
    "--frequency-groups",
    default=None,
    help="For --by custom: ';' between groups, ',' between frequencies, e.g. '5800;2140,2450'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the split configs, as a JSON list.")
def split(
    config_path: str, strategy: str, num_splits: int | None, frequency_groups: str | None, as_json: bool
) -> None:
    """Show how GOLIAT would split CONFIG into super-study assignments.

    Parent configs named by `extends` are read from CONFIG's directory to count simulations;
    the split itself uses CONFIG as written, like GOLIAT.
    """
    import json
    from pathlib import Path

    _config, _parents, result = _split_file(config_path, strategy, num_splits, frequency_groups)
    if as_json:
        click.echo(json.dumps(result.configs, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    def count(size: int | None) -> str:
        return "?" if size is None else str(size)

    table = Table(title=f"{Path(config_path).name} split by {strategy}", caption=result.plan)
    table.add_column("#", justify="right")
    table.add_column("assignment")
    table.add_column("simulations", justify="right")
    for assignment in result.assignments:
        table.add_row(str(assignment.index), assignment.summary, count(assignment.size))
    table.add_section()
    table.add_row("", f"{len(result.assignments)} assignment(s)", count(result.total_size))
    Console().print(table)


# --- simulate-study: a stand-in for `goliat study` (same console output, fake solver) ---


@main.command("simulate-study")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Time factor: one simulation takes about 4 s / SPEED.",
)
@click.option(
    "--fail-at",
    type=click.Choice(PHASES),
    default=None,
    help="Fail in this phase (of the simulation given by --fail-simulation).",
)
@click.option(
    "--exit-code",
    type=int,
    default=None,
    help="Exit code of the failure (default 1; 42 = out of memory). Alone, it fails the run phase.",
)
@click.option(
    "--fail-simulation",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Which simulation (1-based) --fail-at breaks.",
)
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Root of results/<study_type>/<phantom>/<freq>MHz/<case>/ [default: current directory].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for timings, values, warnings.")
def simulate_study(
    config: str,
    speed: float,
    fail_at: str | None,
    exit_code: int | None,
    fail_simulation: int,
    results_dir: str | None,
    seed: int,
) -> None:
    """Pretend to be `goliat study CONFIG`: GOLIAT's console text and log files, fake results.

    Set COLORAMA_STRIP=0 to keep GOLIAT's colours, as with the real thing.
    """
    from goliat_monitor.demo.simulated_study import SimulatedStudyError, run_simulated_study

    try:
        code = run_simulated_study(
            config,
            speed=speed,
            fail_at=fail_at,
            exit_code=exit_code,
            fail_simulation=fail_simulation,
            results_dir=results_dir,
            seed=seed,
        )
    except SimulatedStudyError as exc:
        raise click.ClickException(str(exc)) from None
    raise SystemExit(code)


# --- super-study: create a super study from a config, as `goliat super_study` does ---


@main.group("super-study")
def super_study() -> None:
    """Create and inspect super studies on a server."""


@super_study.command("create")
@click.argument("config_path", metavar="CONFIG", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Study name; GOLIAT's workers look studies up by it.")
@click.option("--description", default="", help="Free text shown on the dashboard.")
@click.option(
    "--split-by",
    "strategy",
    type=click.Choice(_split_strategy_names()),
    default="auto",
    show_default=True,
    help="How to split, as GOLIAT's `super_study --split-by`.",
)
@click.option(
    "--num-splits", type=int, default=None, help="Number of assignments for --split-by auto [default: 4]."
)
@click.option("--frequency-groups", default=None, help="For --split-by custom, e.g. '5800;2140,2450'.")
@click.option(
    "--max-attempts", type=click.IntRange(1, 100), default=3, show_default=True, help="Attempts per piece."
)
@click.option("--retry-fatal", is_flag=True, help="Also retry pieces that failed with a fatal error.")
@click.option("--replace", is_flag=True, help="Replace a live study of the same name instead of refusing.")
@click.option(
    "--server",
    envvar="GOLIAT_MONITORING_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Server URL [env: GOLIAT_MONITORING_URL].",
)
@click.option(
    "--token",
    envvar="GOLIAT_MONITOR_ADMIN_TOKEN",
    default=None,
    help="Admin token [env: GOLIAT_MONITOR_ADMIN_TOKEN].",
)
def super_study_create(
    config_path: str,
    name: str,
    description: str,
    strategy: str,
    num_splits: int | None,
    frequency_groups: str | None,
    max_attempts: int,
    retry_fatal: bool,
    replace: bool,
    server: str,
    token: str | None,
) -> None:
    """Split CONFIG locally and upload it through the same call GOLIAT makes.

    Parent configs named by `extends` are read from CONFIG's folder and stored with the study,
    so agents can resolve them on the workers.
    """
    import httpx

    config, parents, result = _split_file(config_path, strategy, num_splits, frequency_groups)
    body = {
        "name": name,
        "description": description,
        "baseConfig": config,
        "parentConfigs": parents,
        "splitStrategy": strategy,
        "maxAttempts": max_attempts,
        "retryFatal": retry_fatal,
        "replace": replace,
        "assignments": [
            {"splitConfig": a.config, "status": "PENDING", **({"size": a.size} if a.size else {})}
            for a in result.assignments
        ],
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.post(
            f"{server.rstrip('/')}/api/super-studies", json=body, headers=headers, timeout=60
        )
    except httpx.HTTPError as exc:
        click.echo(f"error: cannot reach {server}: {exc}", err=True)
        raise SystemExit(1) from None
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        click.echo(f"error: the server refused ({response.status_code}): {message}", err=True)
        raise SystemExit(1)
    study = response.json()
    click.echo(
        f"created super study {study['name']!r} ({study['id']}) with {study['totalAssignments']} assignments"
    )
    click.echo(f"workers: goliat worker <index> {study['name']}  or  goliat-monitor agent --server {server}")


# --- agent: the worker agent that runs assignments on a VM ---


@main.command("agent")
@click.option("--server", "server_url", default=None, help="Server URL [env: GOLIAT_MONITOR_SERVER_URL].")
@click.option("--token", default=None, help="The server's worker token [env: GOLIAT_MONITOR_TOKEN].")
@click.option(
    "--work-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Configs, run folders, agent id and spool [env: GOLIAT_MONITOR_WORK_DIR] [default: goliat-agent].",
)
@click.option(
    "--command",
    "command",
    default=None,
    help="Study command; {config} is replaced by the assignment's config file "
    "[env: GOLIAT_MONITOR_COMMAND] [default: goliat study {config}].",
)
@click.option(
    "--machine-id",
    default=None,
    help="Machine id to report [env: GOLIAT_MONITOR_MACHINE_ID] [default: the public IP, as GOLIAT does].",
)
@click.option(
    "--screenshots",
    "screenshot_interval_s",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Every SECONDS, send a screenshot of the GOLIAT window (or the whole screen) as a GUI tab; "
    "0 is off [env: GOLIAT_MONITOR_SCREENSHOT_INTERVAL_S] [default: 0].",
)
@click.option("--plain", is_flag=True, help="Plain log lines even on a terminal (no live panel).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def agent(
    server_url: str | None,
    token: str | None,
    work_dir: str | None,
    command: str | None,
    machine_id: str | None,
    screenshot_interval_s: float | None,
    plain: bool,
    verbose: bool,
) -> None:
    """Run assignments from a goliat-monitor server on this machine, one after another.

    Asks the server for work, runs the study command on the assignment's config, reports the
    study's progress and logs, uploads its results, and asks again. Everything it reports is
    spooled on disk first, so server outages and agent restarts lose nothing. Ctrl-C stops
    cleanly (the study is interrupted, its files kept; a restart resumes it); a second Ctrl-C
    kills the study.
    """
    import logging

    from goliat_monitor.agent.identity import WorkDirBusyError, get_machine_id
    from goliat_monitor.agent.loop import Agent
    from goliat_monitor.agent.signals import install_signal_handlers
    from goliat_monitor.settings import AgentSettings

    options: dict[str, Any] = {
        "server_url": server_url,
        "token": token,
        "work_dir": work_dir,
        "command": command,
        "machine_id": machine_id,
        "screenshot_interval_s": screenshot_interval_s,
    }
    settings = AgentSettings(**{key: value for key, value in options.items() if value is not None})
    if settings.machine_id is None:
        click.echo("looking up this machine's public IP (its GOLIAT machine id)...", err=True)
    runner = Agent(
        settings,
        machine_id=settings.machine_id or get_machine_id(),
        live_console=False if plain else None,
        log_level=logging.DEBUG if verbose else logging.INFO,
    )
    restore = install_signal_handlers(runner)
    try:
        code = runner.run()
    except WorkDirBusyError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        restore()
    raise SystemExit(code)


# --- demo: a server, a real GOLIAT campaign and simulated agents on this machine ---


@main.command("demo")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="Agents to start.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 = any free port."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for the server.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Time factor of the simulated studies (a simulation takes about 4 s / SPEED).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the server's data and the agents' folders here [default: a temporary folder, removed at exit].",
)
@click.option(
    "--splits",
    type=click.IntRange(1, 48),
    default=8,
    show_default=True,
    help="Assignments to split the campaign into.",
)
def demo(workers: int, port: int, host: str, speed: float, data_dir: str | None, splits: int) -> None:
    """See goliat-monitor work in a minute: server, campaign and agents on this machine.

    Starts the server, creates a super study from GOLIAT's own far-field config (bundled, 48
    simulations), starts agents that run a simulated `goliat study` and prints the dashboard URL.
    Runs until Ctrl-C, then stops the agents and the server.
    """
    from pathlib import Path

    from goliat_monitor.demo.demo import run_demo

    code = run_demo(
        workers=workers,
        port=port,
        host=host,
        speed=speed,
        data_dir=Path(data_dir) if data_dir else None,
        num_splits=splits,
        echo=click.echo,
    )
    raise SystemExit(code)
