"""What retention keeps: the kinds of data that age out, and how old each may get.

Pure rules: the database layer (`db/queries/retention.py`) deletes, `pruning.py` paces the rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from goliat_monitor.domain.models import StudyStatus

DAY_S = 86400.0


class Kind(StrEnum):
    """A kind of data with its own retention setting (`GOLIAT_MONITOR_KEEP_<KIND>_DAYS`)."""

    LOGS = "logs"
    """Log lines (`log_lines`), and with them their entries in the log search index."""
    SAMPLES = "samples"
    """Progress and utilisation samples behind a worker's charts (`worker_samples`)."""
    MESSAGE_IDS = "message_ids"
    """Idempotency keys of delivered messages (`received_messages`): a redelivery older than this
    is stored again."""
    EVENTS = "events"
    """Assignment history (`assignment_events`) and the worker messages kept as they came
    (`worker_messages`: simulation details, endings, errors)."""
    STUDIES = "studies"
    """Finished super studies, whole: assignments, result files and their artifacts, figures,
    timings."""

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Kind.LOGS: "log lines",
    Kind.SAMPLES: "progress samples",
    Kind.MESSAGE_IDS: "message ids",
    Kind.EVENTS: "events",
    Kind.STUDIES: "finished studies",
}

FINISHED = frozenset({StudyStatus.COMPLETED, StudyStatus.FAILED, StudyStatus.CANCELLED})
"""A study in any other state is unfinished: none of its data is ever pruned."""


@dataclass(frozen=True)
class RetentionPolicy:
    """Days to keep each kind; 0 keeps it forever."""

    days: dict[Kind, float]

    def cutoffs(self, now: float) -> dict[Kind, float]:
        """Per kind that is pruned at all, the time before which its data goes, in `Kind` order."""
        return {kind: now - self.days[kind] * DAY_S for kind in Kind if self.days.get(kind, 0.0) > 0}


def is_finished(status: StudyStatus) -> bool:
    return status in FINISHED
