"""The `goliat-monitor` command line: one click group, one command per job."""

from __future__ import annotations

import click

from goliat_monitor import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="goliat-monitor")
def main() -> None:
    """Run and watch GOLIAT simulation campaigns: server, worker agent and tools."""


# --- commands are added below, one block per command ---
