"""A short run of ``python -m bench`` against the real broker: every figure is there and sane.

Wall-clock figures are never asserted: this machine is shared, and the point is that the
benchmark runs end to end and reports everything, not how fast it went.
"""

from typing import Any

import pytest

from tests.bench.runs import quick_run

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON of one ``--quick`` run (200 messages, 2 s of latency, a 2-block RSS run)."""
    out = tmp_path_factory.mktemp("bench")
    return quick_run("bench", out, "bench.json", timeout=120, chart="bench.png")


def test_every_mover_reports_positive_throughput(results: dict[str, Any]) -> None:
    """Shovel, both Python peers and the hub with one and two processes each moved N messages."""
    assert results["messages"] == 200
    for mover in ("shovel", "plain", "faststream", "hub", "hub_x2"):
        row = results["throughput"][mover]
        assert row["messages"] == 200
        assert row["msg_per_s"] > 0
        assert row["seconds"] > 0
    assert results["throughput"]["hub_x2"]["processes"] == 2
    assert results["throughput"]["shovel_one_queue"]["messages"] == 200


def test_every_mover_does_the_same_delivery_work(results: dict[str, Any]) -> None:
    """Shovel, peers and hub each put the same number of copies into the inboxes."""
    copies = {
        m: results["throughput"][m]["inbox_copies"] for m in ("shovel", "plain", "faststream")
    }
    copies["hub"] = results["throughput"]["hub"]["inbox_copies"]
    assert len(set(copies.values())) == 1, copies
    assert copies["hub"] >= 200


def test_ratios_and_targets_are_reported(results: dict[str, Any]) -> None:
    """hub/shovel, hub/FastStream and hub/plain are there, with each target's verdict."""
    for peer in ("shovel", "faststream", "plain"):
        assert results["ratios"][f"hub/{peer}"] > 0
        assert isinstance(results["targets"][f"hub/{peer}"]["met"], bool)
    assert {"hub_added_p99_ms", "hub_peak_rss_mb"} <= set(results["targets"])


def test_latency_with_and_without_the_hub(results: dict[str, Any]) -> None:
    """p50 and p99 are measured both ways, and the difference is what the hub adds."""
    latency = results["latency"]
    for path in ("direct", "hub"):
        assert latency[path]["messages"] > 0
        assert 0 < latency[path]["p50_ms"] <= latency[path]["p99_ms"]
    assert len(latency["per_round"]) == latency["rounds"]
    assert all(r["hub_p99_ms"] <= r["hub_max_ms"] for r in latency["per_round"])
    assert latency["hub_added_p99_ms"] == pytest.approx(
        latency["hub"]["p99_ms"] - latency["direct"]["p99_ms"], abs=0.01
    )


def test_hub_memory_is_sampled(results: dict[str, Any]) -> None:
    """The hub's peak RSS and its RSS after each block are recorded."""
    rss = results["rss"]
    assert rss["peak_mb"] >= rss["peak_mb_first_100k"] > 0
    assert len(rss["after_block_mb"]) == 2
    assert all(mb > 0 for mb in rss["after_block_mb"])
    assert isinstance(rss["growth_mb"], float | int)
    assert all(mb > 0 for mb in results["throughput"]["hub"]["peak_rss_mb"])


def test_machine_and_run_are_described(results: dict[str, Any]) -> None:
    """The JSON says where and when it was measured, so figures can be compared."""
    assert results["machine"]["cpus"] >= 1
    assert results["machine"]["rabbitmq"]
    assert results["started_at"] < results["finished_at"]
    # Every partner type but ack, which must refer to a message its sender received.
    assert results["workload"]["types"] == 19
