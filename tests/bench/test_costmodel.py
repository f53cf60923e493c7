"""The sweep's cost model: the fit recovers known costs, and sizing follows from it."""

import pytest

from bench import costmodel
from bench.sweep import judge_check


def _samples(
    a: float, b: float, c: dict[str, float], d: float, e: float = 0.0
) -> list[tuple[int, float, str, float]]:
    shapes = [(r, 0.8, "text") for r in (1, 4, 16, 32, 47)]
    shapes += [(4, kb, k) for k in ("text", "coords") for kb in (1, 16, 64, 128)]
    shapes += [(16, 64, "text"), (16, 64, "coords")]
    return [(r, kb, k, a + b * r + c[k] * kb + d * r * kb + e * r * r) for r, kb, k in shapes]


def test_fit_recovers_the_costs_it_was_made_from() -> None:
    """Noise-free samples give back a, b, c by kind, d and e exactly, with no residual."""
    model = costmodel.fit(_samples(120.0, 0.7, {"text": 2.5, "coords": 9.0}, 0.05, 0.8))
    assert model["a_us"] == pytest.approx(120.0, abs=0.01)
    assert model["b_us_per_recipient"] == pytest.approx(0.7, abs=0.001)
    assert model["c_us_per_kb_text"] == pytest.approx(2.5, abs=0.001)
    assert model["c_us_per_kb_coords"] == pytest.approx(9.0, abs=0.001)
    assert model["d_us_per_recipient_kb"] == pytest.approx(0.05, abs=0.0001)
    assert model["e_us_per_recipient2"] == pytest.approx(0.8, abs=0.0001)
    assert model["rms_residual_us"] == pytest.approx(0.0, abs=0.01)
    assert model["fitted_over"]["recipients"] == [1, 47]
    assert model["fitted_over"]["kb_coords"] == [1.0, 128.0]


def test_predict_and_extrapolated() -> None:
    """A prediction is the model's sum; shapes outside the fitted ranges are flagged."""
    model = costmodel.fit(_samples(100.0, 1.0, {"text": 3.0, "coords": 8.0}, 0.0, 0.5))
    assert costmodel.predict(model, 10, 2.0, "coords") == pytest.approx(100 + 10 + 16 + 50, abs=0.1)
    assert not costmodel.extrapolated(model, 10, 64.0, "coords")
    assert costmodel.extrapolated(model, 10, 200.0, "coords")
    assert costmodel.extrapolated(model, 60, 1.0, "text")
    # Each within its range, but 47 recipients x 100 KB together is beyond every point.
    assert costmodel.extrapolated(model, 47, 100.0, "coords")


def test_sizing_adds_up_the_load() -> None:
    """Cores are rate x microseconds; processes are cores over the planned share, rounded up."""
    hub = costmodel.fit(_samples(200.0, 0.0, {"text": 0.0, "coords": 10.0}, 0.0))
    broker = costmodel.fit(_samples(100.0, 10.0, {"text": 0.0, "coords": 0.0}, 0.0))
    load = (
        costmodel.Traffic(rate=900.0, recipients=10, kb=1.0, kind="coords"),
        costmodel.Traffic(rate=100.0, recipients=10, kb=100.0, kind="coords"),
    )
    out = costmodel.sizing({"hub": hub, "broker_with_hub": broker}, load)
    # hub: 900 x 210 us + 100 x 1,200 us = 0.309 cores; broker: 1,000 x 200 us = 0.2 cores.
    assert out["hub_cores"] == pytest.approx(0.309, abs=0.001)
    assert out["broker_cores"] == pytest.approx(0.2, abs=0.001)
    assert out["hub_cpu_us_per_message"] == 309
    assert out["hub_processes"] == 1
    assert [part["extrapolated"] for part in out["load"]] == [False, False]


def test_fit_weighs_points_by_their_relative_error() -> None:
    """One large point 30 % off barely moves a small message's prediction (relative errors)."""
    samples = _samples(150.0, 100.0, {"text": 5.0, "coords": 10.0}, 2.0)
    samples += [(47, 1.0, "coords", 150 + 4700 + 10 + 94.0)]
    samples += [(47, 237.0, "coords", (150 + 4700 + 2370 + 2 * 47 * 237) * 1.3)]
    model = costmodel.fit(samples)
    small = samples[0]
    assert costmodel.predict(model, small[0], small[1], small[2]) == pytest.approx(
        small[3], rel=0.02
    )
    assert 0 < model["rms_relative_residual"] < 0.1


def test_samples_are_each_points_median_round() -> None:
    """A point's fit sample is the median of its finished rounds; failed rounds are left out."""
    rounds = [{"hub_cpu_us_per_message": us} for us in (100.0, 400.0, 120.0)]
    points = [
        {"recipients": 4, "body_bytes": 2048, "kind": "text", "hub": {"rounds": rounds}},
        {"recipients": 1, "body_bytes": 1024, "kind": "text", "hub": {"rounds": [{"failed": "x"}]}},
    ]
    assert costmodel.samples_of(points, "hub", "hub_cpu_us_per_message") == [
        (4, 2.0, "text", 120.0)
    ]


def test_sizing_check_judges_the_median_round() -> None:
    """The check's verdict is the median round against the prediction, within 25 % or not."""
    rows = [
        {"hub_cpu_us_per_message": hub, "broker_cpu_us_per_message": broker}
        for hub, broker in ((100.0, 900.0), (130.0, 700.0), (90.0, 2000.0))
    ]
    rows.append({"failed": "stalled", "messages": 200})
    out = judge_check(rows, {"hub_cpu_us_per_message": 80, "broker_cpu_us_per_message": 1300})
    assert out["hub"]["median_us_per_message"] == 100.0
    assert out["hub"]["median_ratio"] == 1.25
    assert out["hub"]["within_tolerance"]
    assert out["hub"]["ratios"] == [1.25, 1.625, 1.125]
    assert out["broker"]["median_ratio"] == pytest.approx(900 / 1300, abs=0.001)
    assert not out["broker"]["within_tolerance"]
    assert len(out["rounds"]) == 4
