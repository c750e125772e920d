"""Commands around a campaign: `split`, `super-study`, `simulate-study`, `agent`, `demo`."""

from __future__ import annotations

from typing import Any

import click

from goliat_monitor.cli.remote import server_options
from goliat_monitor.domain.models import PHASES


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


@click.command("split")
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


@click.command("simulate-study")
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


@click.group("super-study")
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
@server_options
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


@click.command("agent")
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


@click.command("demo")
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
