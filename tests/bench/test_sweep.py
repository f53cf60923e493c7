"""A two-point ``python -m bench.sweep --quick`` against the real broker: every point has both
movers with their rounds, and the model is fitted and written. No timing is asserted."""

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.bench.runs import ROOT, quick_run

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON of one quick sweep (2 points, 1 round, 300 messages each)."""
    out = tmp_path_factory.mktemp("sweep")
    return quick_run("bench.sweep", out, "sweep.json", timeout=300, chart="sweep.png")


def test_every_point_has_hub_and_shovel_rounds(sweep: dict[str, Any]) -> None:
    """Two points, each moved by the hub and the shovel, every round kept with its figures."""
    points = sweep["points"]
    assert [(p["recipients"], p["kind"]) for p in points] == [(1, "text"), (4, "coords")]
    assert points[1]["body_bytes"] > 32 * 1024
    for point in points:
        for mover in ("hub", "shovel"):
            rounds = point[mover]["rounds"]
            assert len(rounds) == sweep["rounds"] == 1
            for row in rounds:
                assert row["messages"] == point["messages"]
                assert row["inbox_copies"] == point["messages"] * point["recipients"]
                assert row["msg_per_s"] > 0
                assert row["copies_per_s"] >= row["msg_per_s"]
                assert row["broker_cpu_raw_us_per_message"] > 0
                # Less the broker's background rate, which on a busy broker can eat a tiny round.
                window = row["broker_cpu_window_us_per_message"]
                assert 0 <= window <= row["broker_cpu_raw_us_per_message"]
                # The work the broker finished after the last copy is the round's too.
                assert row["broker_tail"]["seconds"] > 0
                assert row["broker_cpu_us_per_message"] == pytest.approx(
                    window + row["broker_cpu_tail_us_per_message"], abs=0.2
                )
        assert point["hub"]["rounds"][0]["hub_cpu_us_per_message"] > 0


def test_the_model_and_sizing_example_are_written(sweep: dict[str, Any]) -> None:
    """Hub and broker series are fitted over the points; the sizing example is worked out."""
    model = sweep["model"]
    for series in ("hub", "broker_with_hub", "broker_with_shovel"):
        assert model[series]["samples"] == 2
        assert {"a_us", "b_us_per_recipient", "c_us_per_kb_text", "c_us_per_kb_coords"} <= set(
            model[series]
        )
    example = model["sizing_example"]
    assert example["messages_per_s"] == 50
    assert example["hub_processes"] >= 1


def test_a_baseline_tree_runs_beside_this_one(tmp_path: Path) -> None:
    """``--baseline DIR``: a ``git archive`` of this commit gets this tree's compiled
    extensions (coordinates check, body buffers), and each round of this tree's hub has a
    baseline round beside it in the JSON, which names the baseline tree."""
    tree = tmp_path / "baseline"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    args = ("--points", "1r-text-1kb", "--movers", "hub", "--baseline", str(tree))
    data = quick_run("bench.sweep", tmp_path / "out", "sweep.json", timeout=300, args=args)
    for name in ("_geo", "_buffers"):
        assert list((tree / "services" / "hub").glob(f"{name}*.so"))
    (point,) = data["points"]
    for mover in ("baseline", "hub"):
        (round_,) = point[mover]["rounds"]
        assert round_["hub_cpu_us_per_message"] > 0
    assert data["baseline"] == str(tree)
