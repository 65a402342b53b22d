"""The executor's progress model on fake clocks: totals, percent, rate, time left, which completions
are reported at INFO, and the formatted line. No sleeps, no wall clock."""

import pytest

from farm.cluster.progress import Progress, duration


def test_totals_rate_and_time_left_on_a_fake_clock():
    p = Progress(total=20, start=100.0, workers=2)
    assert (p.done, p.percent, p.rate, p.eta) == (0, 0.0, 0.0, None)
    for i in range(8):  # 8 jobs in 120 s of wall time: 4 jobs/min
        p.finish(f"job{i}", seconds=25.0, now=100.0 + 15.0 * (i + 1))
    assert (p.done, p.total, p.percent) == (8, 20, 40.0)
    assert p.rate == pytest.approx(4.0)
    assert p.eta == pytest.approx(180.0)  # 12 left at 4/min
    assert p.last == "job7"
    for i in range(12):
        p.finish("x", seconds=1.0, now=220.0 + i)
    assert (p.percent, p.eta) == (100.0, 0.0)


def test_time_left_before_wall_time_passes_uses_mean_job_seconds_over_workers():
    p = Progress(total=10, start=5.0, workers=4)
    p.finish("a", seconds=40.0, now=5.0)  # a fake clock that has not moved
    assert p.rate == 0.0
    assert p.eta == pytest.approx(9 * 40.0 / 4)


def test_reported_completions_are_the_first_each_step_and_the_last():
    p = Progress(total=100, start=0.0)
    reported = [i + 1 for i in range(100) if p.finish("j", seconds=1.0, now=float(i + 1))]
    assert reported == [1, *range(5, 101, 5)]  # 21 lines, not 100
    small = Progress(total=3, start=0.0)
    assert [small.finish("j", seconds=1.0, now=1.0) for _ in range(3)] == [True, True, True]


def test_line_shows_totals_percent_rate_eta_and_last_label():
    p = Progress(total=20, start=0.0)
    for i in range(8):
        p.finish("target 7", seconds=1.25, now=15.0 * (i + 1))
    line = p.line("targets")
    assert line == "[targets] 8/20 (40%), 4.0 jobs/min, ETA ~3m 00s, last: target 7 1.2s"
    assert Progress(total=2, start=0.0).line("t").startswith("[t] 0/2 (0%), 0.0 jobs/min, ETA ?")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "~0s"), (44.6, "~45s"), (185, "~3m 05s"), (7620, "~2h 07m"), (-3, "~0s")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_bad_totals_are_refused():
    with pytest.raises(ValueError, match="total"):
        Progress(total=0, start=0.0)
    with pytest.raises(ValueError, match="step"):
        Progress(total=1, start=0.0, step=0)
