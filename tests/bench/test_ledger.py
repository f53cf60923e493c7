"""A short run of ``python -m bench.ledger`` against the real broker and PostgreSQL.

Small sizes, and no timing is asserted (the machine is shared): the point is that the bench
runs end to end, measures what the issue asks for, and reports each figure and target.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.ledger import Samples, record_lags

ROOT = Path(__file__).resolve().parents[2]

MESSAGES = 150
ROWS = 3_000


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON of one ``--quick`` run: one round of each hub kind, 3,000 seeded rows."""
    out = tmp_path_factory.mktemp("bench-ledger")
    sizes = ["--messages", str(MESSAGES), "--rows", str(ROWS)]
    run = subprocess.run(
        [sys.executable, "-m", "bench.ledger", "--quick", *sizes, "--out", str(out)],
        cwd=ROOT,
        timeout=240,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "search_p99_ms" in run.stdout
    data: dict[str, Any] = json.loads((out / "ledger.json").read_text())
    return data


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.slow
def test_the_hub_runs_without_records_with_them_and_with_the_ledger_writing(
    results: dict[str, Any],
) -> None:
    """Each hub kind drained every message with its CPU per message metered, and the ledger
    committed every record."""
    keep_up = results["keep_up"]
    for kind in ("off", "on", "on+ledger"):
        (row,) = keep_up["rounds"][kind]
        assert row["messages"] == MESSAGES
        assert row["msg_per_s"] > 0
        assert row["hub_cpu_us_per_message"] > 0
        assert "broker_cpu_us_per_message" in row
    assert {"ledger_cpu_us_per_message", "postgres_cpu_us_per_message"} <= set(
        keep_up["rounds"]["on+ledger"][0]
    )
    assert keep_up["hub_cpu_ratio_off_over_on"] > 0
    (ledger,) = keep_up["rounds"]["on+ledger"]
    assert ledger["ledger_records"] == MESSAGES
    assert 0 <= ledger["lag_p50_s"] <= ledger["lag_p99_s"] <= ledger["lag_max_s"]
    assert ledger["drain_after_hub_s"] >= 0
    assert keep_up["ratio_on_over_off"] > 0
    # With no ledger reading, the records wait in its queue (batches of up to 256 records);
    # with the feed off, nothing does.
    assert keep_up["rounds"]["on"][0]["records_waiting"] >= 1
    assert keep_up["rounds"]["off"][0]["records_waiting"] == 0


@pytest.mark.broker
@pytest.mark.postgres
@pytest.mark.slow
def test_search_is_timed_per_filter_through_the_api_and_explained(
    results: dict[str, Any],
) -> None:
    """Every filter kind was searched through the API on the seeded rows, and each query the
    API ran was EXPLAINed; every target has a verdict."""
    search = results["search"]
    assert search["seeded"]["rows"] == ROWS
    assert search["seeded"]["recipient_rows"] > ROWS
    kinds = search["per_kind"]
    assert {"sender", "recipient", "text_rare", "one_day", "next_page"} <= set(kinds)
    assert all(row["queries"] > 0 for row in kinds.values())
    assert kinds["sender"]["mean_items"] > 0
    assert 0 < search["p50_ms"] <= search["p99_ms"] <= search["max_ms"]
    assert len(search["plans"]) == len(kinds) - 1
    assert all(plan["plan"][0].startswith("Limit") for plan in search["plans"])
    assert all(plan["sql"].startswith("SELECT") for plan in search["plans"])
    assert {"ledger_lag_p99_s", "hub_records_on_over_off", "search_p99_ms"} <= set(
        results["targets"]
    )
    assert all(isinstance(t["met"], bool) for t in results["targets"].values())


def test_record_lag_is_read_off_the_two_cumulative_curves() -> None:
    """Record k's lag is the time between the hub's count and the ledger's count reaching k."""
    samples = Samples(
        times=[0.0, 1.0, 2.0, 3.0],
        decided=[0, 2, 4, 4],
        committed=[0, 0, 2, 4],
        gauge=[0, 0, 0, 0],
    )
    assert record_lags(samples, 4) == [1.0, 1.0, 1.0, 1.0]
    # A ledger that has not caught up yet gives lags only for what it committed.
    assert record_lags(Samples([0.0, 1.0], [3, 3], [0, 1], [0, 0]), 3) == [1.0]
