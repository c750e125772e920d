"""`python -m goliat_monitor` is the `goliat-monitor` command."""

from goliat_monitor.cli import main

main()
