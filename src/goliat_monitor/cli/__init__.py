"""The `goliat-monitor` command line: one click group, one command per job.

The server's commands are in `server.py` (serve, db, artifacts, prune), accounts and API tokens
in `accounts.py`, the campaign's (splitting, super studies, the agent, the simulated study and the
demo) in `campaign.py`, and the terminal views of a running server (status, logs, watch) in
`remote.py`.
"""

from __future__ import annotations

import click

from goliat_monitor import __version__
from goliat_monitor.cli import accounts, campaign, remote, server


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="goliat-monitor")
def main() -> None:
    """Run and watch GOLIAT simulation campaigns: server, worker agent and tools."""


for _command in (
    server.serve,
    server.db,
    server.artifacts,
    server.prune,
    accounts.user,
    accounts.token,
    campaign.split,
    campaign.simulate_study,
    campaign.super_study,
    remote.status,
    remote.logs,
    remote.watch,
    campaign.agent,
    campaign.demo,
):
    main.add_command(_command)
