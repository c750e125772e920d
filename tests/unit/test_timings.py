"""The Timings table, the pie charts and the summary line, computed the way GOLIAT's GUI does."""

from __future__ import annotations

import pytest

from goliat_monitor.domain.timings import (
    OTHERS_LABEL,
    PieChart,
    Slice,
    SummaryStatus,
    TimingSample,
    percentile,
    pie_charts,
    split_task_name,
    summary_line,
    summary_status,
    task_label,
    timings_table,
)


def sample(phase: str, subtask: str | None, seconds: float) -> TimingSample:
    return TimingSample(phase, subtask, seconds)


# -- percentile --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (10, 1.3), (25, 1.75), (50, 2.5), (75, 3.25), (90, 3.7), (100, 4.0)],
)
def test_percentile_interpolates_linearly_between_closest_ranks(q: float, expected: float) -> None:
    # numpy.percentile([1, 2, 3, 4], q) gives these values (its default "linear" method)
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_percentile_of_one_value_is_that_value() -> None:
    assert [percentile([7.5], q) for q in (0, 10, 50, 90, 100)] == [7.5] * 5


def test_percentile_of_an_odd_count_hits_the_middle_value() -> None:
    assert percentile([10.0, 30.0, 20.0], 50) == 20.0
    assert percentile([10.0, 30.0, 20.0], 90) == pytest.approx(28.0)


def test_percentile_refuses_no_values_and_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within 0 and 100"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="within 0 and 100"):
        percentile([1.0], -1)


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "hint", "expected"),
    [
        ("setup_load_phantom", None, ("setup", "load_phantom")),
        ("run_isolve_execution", "setup", ("run", "isolve_execution")),
        ("extract_results_700MHz", None, ("extract", "results_700MHz")),
        ("auto_induced_focus_search", "extract", ("extract", "auto_induced_focus_search")),
        ("auto_induced_focus_search", None, ("auto", "auto_induced_focus_search")),
        ("setup", "run", ("run", "setup")),
    ],
)
def test_split_task_name(task: str, hint: str | None, expected: tuple[str, str]) -> None:
    assert split_task_name(task, hint) == expected


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("isolve_execution", "iSolve Execution"),
        ("sar_statistics", "SAR Statistics"),
        ("sapd", "SAPD"),
        ("load_phantom", "Load Phantom"),
        ("results_700MHz", "Results 700mhz"),
    ],
)
def test_task_label_capitalises_like_goliats_pies(name: str, label: str) -> None:
    assert task_label(name) == label


# -- table ---------------------------------------------------------------------------------------


def test_table_row_has_every_statistic() -> None:
    rows = timings_table([sample("run", "isolve_execution", s) for s in (40.0, 10.0, 30.0, 20.0)])
    assert len(rows) == 1
    row = rows[0]
    assert (row.phase, row.subtask, row.count) == ("run", "isolve_execution", 4)
    assert (row.mean, row.median, row.minimum, row.maximum) == (25.0, 25.0, 10.0, 40.0)
    assert (row.p10, row.p25, row.p75, row.p90) == pytest.approx((13.0, 17.5, 32.5, 37.0))


def test_table_puts_phases_in_goliats_order_each_total_before_its_subtasks() -> None:
    samples = [
        sample("extract", "sar_statistics", 5.0),
        sample("setup", "load_phantom", 3.0),
        sample("setup", "voxelize", 9.0),
        sample("setup", None, 14.0),
        sample("run", None, 100.0),
        sample("extract", None, 6.0),
        sample("setup", "load_phantom", 5.0),
    ]
    rows = timings_table(samples)
    assert [(r.phase, r.subtask) for r in rows] == [
        ("setup", None),
        ("setup", "load_phantom"),
        ("setup", "voxelize"),
        ("run", None),
        ("extract", None),
        ("extract", "sar_statistics"),
    ]
    assert rows[1].count == 2 and rows[1].mean == 4.0


def test_table_hides_the_subtasks_that_only_time_a_whole_phase() -> None:
    samples = [
        sample("setup", "simulation", 50.0),
        sample("run", "simulation_total", 90.0),
        sample("extract", "results_total", 20.0),
        sample("extract", "results_700MHz", 19.0),
    ]
    assert [(r.phase, r.subtask) for r in timings_table(samples)] == [("extract", "results_700MHz")]


def test_table_keeps_a_phase_goliat_does_not_know_after_the_known_ones() -> None:
    samples = [sample("auto", "induced_focus_search", 2.0), sample("run", None, 10.0)]
    assert [r.phase for r in timings_table(samples)] == ["run", "auto"]


def test_table_of_no_samples_is_empty() -> None:
    assert timings_table([]) == []


# -- pies ------------------------------------------------------------------------------------------


def test_phase_pie_weighs_mean_durations() -> None:
    samples = [
        sample("setup", None, 10.0),
        sample("setup", None, 30.0),  # mean 20
        sample("run", None, 70.0),
        sample("extract", None, 10.0),
    ]
    phases = pie_charts(samples)[0]
    assert phases.title == "Phase Weights"
    assert [(s.key, s.label, s.seconds) for s in phases.slices] == [
        ("setup", "Setup", 20.0),
        ("run", "Run", 70.0),
        ("extract", "Extract", 10.0),
    ]
    assert [s.percent for s in phases.slices] == pytest.approx([20.0, 70.0, 10.0])


def test_pies_are_titled_like_goliats_and_say_no_data_by_having_no_slices() -> None:
    charts = pie_charts([sample("run", "isolve_execution", 5.0)])
    assert [c.title for c in charts] == [
        "Phase Weights",
        "Setup Subtasks",
        "Run Subtasks",
        "Extract Subtasks",
    ]
    assert charts[0] == PieChart("Phase Weights", ())
    assert charts[1].slices == ()
    assert charts[2].slices == (Slice("isolve_execution", "iSolve Execution", 5.0, 100.0),)


def test_several_slices_under_three_percent_become_others() -> None:
    samples = [
        sample("setup", "voxelize", 90.0),
        sample("setup", "materials", 5.0),
        sample("setup", "solver", 2.0),  # 2 %
        sample("setup", "save_project", 2.9),  # 2.9 %
        sample("setup", "configure_scene", 0.1),  # 0.1 %
    ]
    setup = pie_charts(samples)[1]
    assert [s.key for s in setup.slices] == ["voxelize", "materials", OTHERS_LABEL]
    others = setup.slices[-1]
    assert others.label == "Others"
    assert others.seconds == pytest.approx(5.0)
    assert others.percent == pytest.approx(5.0)
    assert sum(s.percent for s in setup.slices) == pytest.approx(100.0)


def test_a_single_small_slice_keeps_its_own_name() -> None:
    samples = [sample("extract", "sar_statistics", 98.0), sample("extract", "sapd", 2.0)]
    extract = pie_charts(samples)[3]
    assert [(s.key, s.label) for s in extract.slices] == [
        ("sar_statistics", "SAR Statistics"),
        ("sapd", "SAPD"),
    ]


def test_a_slice_of_exactly_three_percent_is_not_small() -> None:
    samples = [sample("run", "a", 97.0), sample("run", "b", 3.0), sample("run", "c", 0.0)]
    keys = [s.key for s in pie_charts(samples)[2].slices]
    assert keys == ["a", "b", "c"]  # only "c" is under 3 %, alone: it keeps its name


def test_pies_leave_out_aggregates_and_zero_totals() -> None:
    samples = [
        sample("run", "simulation_total", 100.0),
        sample("run", "write_input_file", 0.0),
        sample("setup", "simulation", 10.0),
    ]
    charts = pie_charts(samples)
    assert charts[1].slices == ()  # setup_simulation is GOLIAT's aggregate
    assert charts[2].slices == ()  # nothing but a zero left: no data


# -- summary line ------------------------------------------------------------------------------


def test_summary_line_like_the_issue_shows_it() -> None:
    line = summary_line(progress=61.4, simulation_count=23, total_simulations=36)
    assert line == "[61%] Sim 23/36 · Running"


def test_summary_line_rounds_down_so_100_means_done() -> None:
    assert summary_line(progress=99.99, simulation_count=36, total_simulations=36).startswith("[99%]")
    done = summary_line(progress=100.0, simulation_count=36, total_simulations=36, finished=True)
    assert done == "[100%] Sim 36/36 · Finished"


def test_summary_line_before_goliat_counts_its_simulations() -> None:
    assert summary_line(progress=None, simulation_count=None, total_simulations=None) == "[0%] · Booting"
    assert summary_line(progress=0.0, simulation_count=0, total_simulations=0) == "[0%] · Booting"


def test_summary_line_clamps_odd_progress() -> None:
    assert summary_line(progress=-5.0, simulation_count=1, total_simulations=2) == "[0%] Sim 1/2 · Running"
    assert summary_line(progress=150.0, simulation_count=2, total_simulations=2).startswith("[100%]")
    assert (
        summary_line(progress=float("nan"), simulation_count=0, total_simulations=2)
        == "[0%] Sim 0/2 · Booting"
    )


def test_summary_line_says_when_a_study_finished_with_errors() -> None:
    line = summary_line(progress=40.0, simulation_count=3, total_simulations=8, finished=True, failed=True)
    assert line == "[40%] Sim 3/8 · Finished with errors"


@pytest.mark.parametrize(
    ("progress", "count", "finished", "failed", "expected"),
    [
        (None, None, False, False, SummaryStatus.BOOTING),
        (0.0, 0, False, False, SummaryStatus.BOOTING),
        (0.5, 0, False, False, SummaryStatus.RUNNING),
        (0.0, 1, False, False, SummaryStatus.RUNNING),
        (100.0, 5, True, False, SummaryStatus.FINISHED),
        (0.0, 0, True, True, SummaryStatus.FAILED),
        (50.0, 3, False, True, SummaryStatus.RUNNING),  # a failed simulation does not end a study
    ],
)
def test_summary_status(
    progress: float | None, count: int | None, finished: bool, failed: bool, expected: SummaryStatus
) -> None:
    assert (
        summary_status(progress=progress, simulation_count=count, finished=finished, failed=failed)
        == expected
    )
