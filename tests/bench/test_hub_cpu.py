"""A short run of ``python -m bench.hub_cpu`` with a baseline tree: both kinds of round are there.

Timings are never asserted (a shared machine); the run going end to end through both the hub of
this tree and the one ``bench.hub_source`` runs from another, with every feature on, is.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.broker, pytest.mark.redis]


def test_hub_cpu_runs_current_and_baseline_rounds(tmp_path: Path) -> None:
    """200 signed messages through the Redis-backed hub, this tree against a baseline tree,
    each in both delivery modes."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.hub_cpu",
            "--messages",
            "200",
            "--repeats",
            "1",
            "--settle-seconds",
            "1",
            "--baseline",
            str(ROOT),
            "--delivery",
            "confirm,transaction",
            "--redis",
            os.environ.get("LIAISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        timeout=240,
        capture_output=True,
    )
    results = json.loads((tmp_path / "hub_cpu.json").read_text())
    assert results["messages"] == 200
    assert set(results["rounds"]) == {
        f"{tree}-{mode}" for tree in ("baseline", "current") for mode in ("confirm", "transaction")
    }
    for kind in results["rounds"]:
        (row,) = results["rounds"][kind]
        assert row["msg_per_s"] > 0
        assert row["mover_cpu_us_per_message"] > 0
        # Every message was read from and written to sockets: the counts come from /proc.
        assert row["hub_syscr_per_message"] > 0
        assert row["hub_syscw_per_message"] > 0
