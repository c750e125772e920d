"""The log order rule, progress order and echoed endings, without a database.

`_Store` applies `place_batch` the way `db.queries.ingest` does and reads the lines back the way the
index returns them: by key, then by insertion (the row id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.domain.gui_state import (
    CLOCK_JUMP_S,
    KEY_MARK,
    STREAM_IDLE_S,
    Ending,
    LogOrder,
    Stream,
    concurrent_studies,
    echoes_ending,
    interpret,
    is_stale,
    order_key,
    place_batch,
    streams_from_json,
    streams_to_json,
    track_stream,
)
from goliat_monitor.domain.models import EXIT_CODE_OUT_OF_MEMORY, FAILED_STUDY_MESSAGE

T0 = 1_780_000_000.0  # 2026, the time GOLIAT stamps its lines with
NOW = T0 + 0.5  # the server's clock


@dataclass
class _Store:
    order: LogOrder = field(default_factory=LogOrder)
    rows: list[tuple[int, int, str]] = field(default_factory=list)
    later_runs: int = 0

    def add(self, sequence: int | None, lines: list[tuple[float, str]], *, now: float = NOW) -> None:
        placed = place_batch(self.order, [t for t, _ in lines], sequence, now=now)
        self.order = placed.order
        self.later_runs += placed.later_run
        for key, (_, text) in zip(placed.keys, lines, strict=True):
            self.rows.append((key, len(self.rows), text))

    def read(self) -> list[str]:
        return [text for _, _, text in sorted(self.rows)]


def _batches(
    study: str, count: int, *, start: float, step: float = 0.05
) -> list[tuple[int, list[tuple[float, str]]]]:
    """`count` batches of 3 lines as one bridge makes them: sequence from 0, times increasing."""
    return [
        (seq, [(start + (seq * 3 + n) * step, f"{study}{seq}.{n}") for n in range(3)]) for seq in range(count)
    ]


def _lines_of(study: str, read: list[str]) -> list[str]:
    return [line for line in read if line.startswith(study)]


# -- the key -----------------------------------------------------------------------------------


@given(
    st.tuples(st.floats(T0 - 1e8, T0 + 1e9), st.integers(0, 2**21 - 1)),
    st.tuples(st.floats(T0 - 1e8, T0 + 1e9), st.integers(0, 2**21 - 1)),
)
def test_keys_sort_by_millisecond_then_sequence(a: tuple[float, int], b: tuple[float, int]) -> None:
    def packed(item: tuple[float, int]) -> tuple[int, int]:
        return int((item[0] - 1_577_836_800.0) * 1000.0), item[1]

    assert (order_key(*a) < order_key(*b)) == (packed(a) < packed(b))


def test_keys_fit_a_signed_64_bit_column_and_sit_above_every_older_key() -> None:
    assert KEY_MARK <= order_key(0.0, 0) < order_key(4e9, 2**21 - 1) < 2**63
    oldest_scheme_largest = (((1 << 19) - 1) << 43) | ((2**31 - 1) << 12) | 4095  # (run, sequence, position)
    assert oldest_scheme_largest < order_key(0.0, 0)


# -- one study ---------------------------------------------------------------------------------


@given(st.permutations(range(8)))
def test_one_study_reads_in_production_order_whatever_the_arrival_order(arrival: list[int]) -> None:
    batches = _batches("a", 8, start=T0)
    store = _Store()
    for index in arrival:
        store.add(*batches[index])
    assert store.read() == [text for _, lines in batches for _, text in lines]


def test_lines_of_one_millisecond_keep_sequence_then_batch_order() -> None:
    store = _Store()  # a Windows clock: every line of two batches carries one tick
    store.add(1, [(T0, "b0"), (T0, "b1")])
    store.add(0, [(T0, "a0"), (T0, "a1")])
    assert store.read() == ["a0", "a1", "b0", "b1"]


def test_times_never_go_backwards_inside_a_batch() -> None:
    store = _Store()
    store.add(0, [(T0 + 1, "first"), (T0, "second, stamped after a small clock step")])
    assert store.read() == ["first", "second, stamped after a small clock step"]


def test_a_clock_that_steps_back_an_hour_still_reads_after_what_was_stored() -> None:
    store = _Store()
    for batch in _batches("a", 3, start=T0):
        store.add(*batch)
    store.add(3, [(T0 - 3600, "after the step 1"), (T0 - 3599, "after the step 2")])
    store.add(4, [(T0 - 3598, "after the step 3")])
    assert store.read()[-3:] == ["after the step 1", "after the step 2", "after the step 3"]


def test_a_line_a_few_seconds_late_is_not_a_clock_step() -> None:
    store = _Store()
    store.add(1, [(T0 + 5, "sent second")])
    store.add(0, [(T0 + 5 - CLOCK_JUMP_S / 2, "sent first, arrived late")])
    assert store.read() == ["sent first, arrived late", "sent second"]


def test_entries_without_a_timestamp_take_the_envelope_time() -> None:
    message = {
        "type": "log_batch",
        "sequence": 0,
        "logs": [{"type": "status", "message": "m", "log_type": "info"}],
    }
    assert interpret(message, now=NOW, sent_at=T0)
    assert interpret(message, now=NOW, sent_at=T0).logs[0].timestamp == T0
    assert interpret(message, now=NOW).logs[0].timestamp == NOW


# -- several studies on one machine (goliat parallel) ------------------------------------------


@given(st.data())
def test_two_bridges_interleaving_keep_each_studys_order(data: st.DataObject) -> None:
    a = _batches("a", 6, start=T0)
    b = _batches("b", 6, start=T0 + 0.07)  # started together: the same sequences, close times
    pending = {"a": list(a), "b": list(b)}
    store = _Store()
    while pending["a"] or pending["b"]:
        study = data.draw(st.sampled_from([k for k, v in pending.items() if v]))
        # Three sender threads: any of a study's next three batches can arrive first.
        index = data.draw(st.integers(0, min(2, len(pending[study]) - 1)))
        store.add(*pending[study].pop(index))
    read = store.read()
    assert _lines_of("a", read) == [text for _, lines in a for _, text in lines]
    assert _lines_of("b", read) == [text for _, lines in b for _, text in lines]
    assert read != _lines_of("a", read) + _lines_of("b", read)  # interleaved by time, not study by study
    assert concurrent_studies(store.order.streams, now=NOW) == 2


def test_a_later_run_reads_after_everything_even_with_a_clock_behind() -> None:
    store = _Store()
    for batch in _batches("a", 4, start=T0):
        store.add(*batch)
    later = NOW + 30  # the next GOLIAT run, on a host whose clock is 20 s behind ours
    for seq, lines in _batches("b", 3, start=T0 - 20):
        store.add(seq, lines, now=later)
    read = store.read()
    assert read == _lines_of("a", read) + _lines_of("b", read)
    assert _lines_of("b", read) == [f"b{seq}.{n}" for seq in range(3) for n in range(3)]
    assert store.later_runs == 1
    assert concurrent_studies(store.order.streams, now=later) == 1  # one after the other, not beside


def test_a_study_started_beside_a_running_one_interleaves_by_time() -> None:
    store = _Store()
    store.add(0, [(T0, "a0")])
    store.add(1, [(T0 + 2, "a1")])
    store.add(0, [(T0 + 1, "b0")], now=NOW + 1)  # its first batch raced a's second
    assert store.read() == ["a0", "b0", "a1"]
    assert store.later_runs == 0


# -- streams -----------------------------------------------------------------------------------


def test_a_late_batch_continues_its_stream_and_a_repeated_sequence_opens_one() -> None:
    streams, opened = track_stream((), 0, now=NOW)
    assert opened
    streams, opened = track_stream(streams, 2, now=NOW)
    assert not opened and [s.high for s in streams] == [2]
    streams, opened = track_stream(streams, 1, now=NOW)  # late
    assert not opened and [s.high for s in streams] == [2]
    streams, opened = track_stream(streams, 2, now=NOW)  # a second bridge at the same number
    assert opened and sorted(s.high for s in streams) == [2, 2]


def test_a_restart_at_zero_opens_a_stream_and_quiet_streams_are_forgotten() -> None:
    streams = (Stream(500, NOW - 100, NOW - 1),)
    after, opened = track_stream(streams, 0, now=NOW)
    assert opened and len(after) == 2
    assert track_stream(streams, 0, now=NOW + STREAM_IDLE_S + 1)[0] == (
        Stream(0, NOW + STREAM_IDLE_S + 1, NOW + STREAM_IDLE_S + 1),
    )


def test_concurrent_studies_counts_overlapping_streams_seen_lately() -> None:
    beside = (Stream(10, NOW - 50, NOW), Stream(12, NOW - 40, NOW - 1))
    after = (Stream(10, NOW - 50, NOW - 30), Stream(3, NOW - 20, NOW))
    assert concurrent_studies(beside, now=NOW) == 2
    assert concurrent_studies(after, now=NOW) == 1
    assert concurrent_studies(beside, now=NOW + STREAM_IDLE_S + 2) == 0


def test_streams_round_trip_through_json() -> None:
    streams = (Stream(3, NOW, NOW + 1), Stream(0, NOW + 2, NOW + 3))
    assert streams_from_json(streams_to_json(streams)) == streams
    assert streams_from_json(None) == ()


# -- progress order and endings ----------------------------------------------------------------


def test_progress_sent_before_the_shown_one_is_stale() -> None:
    assert is_stale(T0, T0 + 0.1)
    assert not is_stale(T0 + 0.1, T0)
    assert not is_stale(T0, T0)  # GOLIAT's 2 s re-send of the same moment
    assert not is_stale(None, T0) and not is_stale(T0, None)
    assert not is_stale(T0 - CLOCK_JUMP_S - 1, T0)  # the clock went back: take it


def test_a_failed_finished_just_after_out_of_memory_echoes_it() -> None:
    plain = Ending(True, FAILED_STUDY_MESSAGE, None)
    oom = EXIT_CODE_OUT_OF_MEMORY

    def echoes(ending: Ending, previous: int | None, *, ago: float = 2.0) -> bool:
        return echoes_ending(ending, previous_exit_code=previous, ended_at=NOW - ago, now=NOW, grace_s=5.0)

    assert echoes(plain, oom)
    assert not echoes(plain, oom, ago=6.0)  # a real failure of a later run
    assert not echoes(plain, 1)
    assert not echoes(Ending(False, "Study finished successfully", None), oom)
    assert not echoes(Ending(True, "again", oom), oom)  # itself out of memory: handled as such
