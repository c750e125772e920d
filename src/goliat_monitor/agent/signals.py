"""Stop signals for the agent: the first asks it to stop cleanly, the second kills the study.

Kept apart from the `Agent` because only the owner of the process may install handlers (Python
allows it on the main thread only): the CLI does, while tests and embedding applications
run an `Agent` on other threads and keep their own handlers.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from goliat_monitor.agent.loop import Agent

__all__ = ["install_signal_handlers"]

log = logging.getLogger("goliat_monitor.agent")


def install_signal_handlers(agent: Agent) -> Callable[[], None]:
    """Ctrl-C, SIGTERM (and Ctrl-Break on Windows) stop the agent; a second one kills the study.

    Returns a function that restores the previous handlers.
    """
    names = ["SIGINT", "SIGTERM", "SIGBREAK"]
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if agent.stopping:
            log.warning("second stop signal: killing the study")
        else:
            log.warning("stopping (signal %d); press Ctrl-C again to kill the study", signum)
        agent.request_stop()

    for name in names:
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or not allowed here
            previous[number] = signal.signal(number, handler)

    def restore() -> None:
        for number, old in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(number, old)

    return restore
