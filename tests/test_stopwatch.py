"""farm.stopwatch: stages accumulate, in the documented order."""

import time

from farm.stopwatch import Stopwatch


def test_stages_accumulate_in_order_and_total():
    w = Stopwatch()
    with w.stage("writing"):
        time.sleep(0.01)
    w.add("reading", 1.0)
    w.add("reading", 0.5)
    w.add("custom", 0.25)
    w.add_jobs("training", 3.0)
    d = w.as_dict()
    assert list(d["wall_seconds"]) == ["reading", "writing", "custom", "total"]
    assert d["wall_seconds"]["reading"] == 1.5 and d["wall_seconds"]["writing"] >= 0.01
    assert d["wall_seconds"]["total"] == round(1.75 + d["wall_seconds"]["writing"], 3)
    assert d["job_seconds"] == {"training": 3.0}
    assert w.line().startswith("reading 1.5s, writing")


def test_reused_jobs_count_apart_from_jobs_run_now():
    w = Stopwatch()
    w.add_jobs("training", 3.0)
    w.add_reused("training", 10.0)
    w.add_reused("training", 5.0)
    w.add_reused("inference", 0.0)
    d = w.as_dict()
    assert d["job_seconds"] == {"training": 3.0}
    assert d["reused_job_seconds"] == {"inference": 0.0, "training": 15.0}
    assert "training" not in d["wall_seconds"]  # reused jobs took no wall time now
