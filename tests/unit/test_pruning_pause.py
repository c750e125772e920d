"""The pause after a pruning round: rounds fill at most `DUTY` of a pass, and never run back to back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.pruning import DUTY, PAUSE_S, pause_after


@given(st.floats(min_value=0.0, max_value=60.0))
def test_rounds_fill_at_most_their_share_of_a_pass(round_s: float) -> None:
    pause = pause_after(round_s)
    assert pause >= PAUSE_S
    assert round_s <= DUTY * (round_s + pause) + 1e-9


def test_a_slow_round_is_followed_by_a_long_pause() -> None:
    assert pause_after(0.001) == PAUSE_S
    assert pause_after(0.2) == 0.2 * (1 - DUTY) / DUTY  # an FTS5 merge round: ~4 s at 5 %
