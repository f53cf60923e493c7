"""The sweep's cost model: CPU microseconds per message = a + b x recipients + c x KB, c by
body kind, plus d x recipients x KB (each inbox copy carries the body: the broker's cost
grows with both at once) and e x recipients^2, fitted to each point's median round by least
squares on relative errors; and sizing from it.

e: what one inbox copy costs the broker grows with the copies a message makes (serving the
hub, 64 us a copy at 16 recipients and 95 at 47 in the sweep of 2026-11-24 09:15; the run of
03:35 and the shovel's rounds show the same rise), which a term linear in recipients cannot
follow: it underpredicted mission-wide messages by 20 %. The hub's own e comes out near zero.

Relative, because the points span 0.3 to 20 ms of broker CPU: fitted on absolute errors, the
few large-body points decide every coefficient and a small message's prediction can be off by
its whole size (a fit of 2026-11-24 gave the broker a = -308 us). Weighted by 1 / the point's
own figure, every point counts by its error in per cent, which is what a sizing check asks.

Pure: no broker, so the fit and the sizing arithmetic are unit-tested on made-up points.
"""

import math
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np

KINDS = ("text", "coords")
#: The series fitted: (name, mover whose rounds it reads, the figure in each round).
SERIES = (
    ("hub", "hub", "hub_cpu_us_per_message"),
    ("broker_with_hub", "hub", "broker_cpu_us_per_message"),
    ("broker_with_shovel", "shovel", "broker_cpu_us_per_message"),
)
#: A hub process is planned at no more than this share of one core: bursts and redeliveries
#: need the rest (it runs on one core: one asyncio loop).
HUB_PROCESS_CORE_SHARE = 0.6
#: Broker cores planned at no more than this share of a node's cores (quorum replication,
#: compaction and bursts need the rest).
BROKER_CORE_SHARE = 0.6


@dataclass(frozen=True, slots=True)
class Traffic:
    """One part of a load: ``rate`` messages a second of one shape."""

    rate: float
    recipients: int
    kb: float
    kind: str


def fit(samples: list[tuple[int, float, str, float]]) -> dict[str, Any]:
    """Least squares on (recipients, KB, kind, microseconds) samples, each residual divided by
    the sample's microseconds (relative errors).

    Returns a, b, c_<kind>, d, the root-mean-square residual (in microseconds and relative)
    and the ranges fitted over; kinds with no sample get no coefficient.
    """
    kinds = [k for k in KINDS if any(s[2] == k for s in samples)]
    x = np.array(
        [
            [1.0, r, *(kb if kind == k else 0.0 for k in kinds), r * kb, r * r]
            for r, kb, kind, _ in samples
        ]
    )
    y = np.array([us for *_, us in samples])
    # A sample of 0 us (all of it taken out as the broker's background) still counts, as 1 us.
    weights = 1.0 / np.maximum(np.abs(y), 1.0)
    coefficients, _, rank, _ = np.linalg.lstsq(x * weights[:, None], y * weights, rcond=None)
    residuals = y - x @ coefficients
    model: dict[str, Any] = {
        "a_us": round(float(coefficients[0]), 2),
        "b_us_per_recipient": round(float(coefficients[1]), 3),
        **{f"c_us_per_kb_{k}": round(float(coefficients[2 + i]), 3) for i, k in enumerate(kinds)},
        "d_us_per_recipient_kb": round(float(coefficients[-2]), 4),
        "e_us_per_recipient2": round(float(coefficients[-1]), 4),
        "samples": len(samples),
        "rank": int(rank),
        "rms_residual_us": round(float(np.sqrt(np.mean(residuals**2))), 2),
        "rms_relative_residual": round(float(np.sqrt(np.mean((residuals * weights) ** 2))), 3),
        "fitted_over": {
            "recipients": [min(s[0] for s in samples), max(s[0] for s in samples)],
            # Recipients and KB together: a large body to many recipients is beyond the
            # points even when each is within its own range.
            "recipient_kb_max": round(max(s[0] * s[1] for s in samples), 1),
            **{
                f"kb_{k}": [
                    round(min(s[1] for s in samples if s[2] == k), 1),
                    round(max(s[1] for s in samples if s[2] == k), 1),
                ]
                for k in kinds
            },
        },
    }
    return model


def predict(model: dict[str, Any], recipients: int, kb: float, kind: str) -> float:
    """Microseconds per message of this shape."""
    return float(
        model["a_us"]
        + model["b_us_per_recipient"] * recipients
        + model.get(f"c_us_per_kb_{kind}", 0.0) * kb
        + model.get("d_us_per_recipient_kb", 0.0) * recipients * kb
        + model.get("e_us_per_recipient2", 0.0) * recipients * recipients
    )


def extrapolated(model: dict[str, Any], recipients: int, kb: float, kind: str) -> bool:
    """Whether the shape lies outside what the model was fitted on."""
    span = model["fitted_over"]
    low, high = span["recipients"]
    kb_span = span.get(f"kb_{kind}")
    return (
        not low <= recipients <= high
        or kb_span is None
        or not kb_span[0] <= kb <= kb_span[1]
        or recipients * kb > span.get("recipient_kb_max", math.inf)
    )


def samples_of(points: list[dict[str, Any]], mover: str, figure: str) -> list[Any]:
    """Each point's median round as a fit sample (points whose rounds all failed: none).

    The median, not every round: one round of a busy machine (4x its twin seen) pulls a
    least-squares fit as far as it is off; the median of three does not move for one."""
    samples = []
    for p in points:
        values = [row[figure] for row in p[mover]["rounds"] if "failed" not in row]
        if values:
            samples.append((p["recipients"], p["body_bytes"] / 1024, p["kind"], median(values)))
    return samples


def fit_all(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The model of each series, and the sizing example worked through it."""
    models = {
        name: fit(samples_of(points, mover, figure))
        for name, mover, figure in SERIES
        if all(mover in p for p in points)
    }
    if "hub" not in models:
        return models
    return {
        "form": "cpu_us_per_message = a + b * recipients + c_kind * KB + d * recipients * KB "
        "+ e * recipients^2 "
        "(least squares on relative errors over each point's median round)",
        **models,
        "sizing_example": sizing(models, EXAMPLE_LOAD),
    }


#: The operator's question (issue #16): 50 messages a second, mostly alerts to the whole
#: mission (47 recipients here), some carrying 200 KB of polygons.
EXAMPLE_LOAD = (
    Traffic(rate=45.0, recipients=47, kb=1.0, kind="coords"),
    Traffic(rate=5.0, recipients=47, kb=200.0, kind="coords"),
)


def sizing(models: dict[str, Any], load: tuple[Traffic, ...]) -> dict[str, Any]:
    """Hub processes and broker cores for ``load``, and which parts are extrapolated."""
    hub_cores = sum(t.rate * predict(models["hub"], t.recipients, t.kb, t.kind) for t in load)
    broker = models["broker_with_hub"]
    broker_cores = sum(t.rate * predict(broker, t.recipients, t.kb, t.kind) for t in load)
    hub_cores /= 1e6
    broker_cores /= 1e6
    rate = sum(t.rate for t in load)
    return {
        "load": [
            {
                "rate": t.rate,
                "recipients": t.recipients,
                "kb": t.kb,
                "kind": t.kind,
                "hub_us_per_message": round(predict(models["hub"], t.recipients, t.kb, t.kind)),
                "broker_us_per_message": round(predict(broker, t.recipients, t.kb, t.kind)),
                "extrapolated": extrapolated(models["hub"], t.recipients, t.kb, t.kind),
            }
            for t in load
        ],
        "messages_per_s": rate,
        "inbox_copies_per_s": sum(t.rate * t.recipients for t in load),
        "hub_cpu_us_per_message": round(hub_cores / rate * 1e6),
        "broker_cpu_us_per_message": round(broker_cores / rate * 1e6),
        "hub_cores": round(hub_cores, 3),
        "broker_cores": round(broker_cores, 3),
        "hub_processes": max(1, math.ceil(hub_cores / HUB_PROCESS_CORE_SHARE)),
        "hub_process_core_share": HUB_PROCESS_CORE_SHARE,
        "broker_cores_needed": round(broker_cores / BROKER_CORE_SHARE, 2),
        "broker_core_share": BROKER_CORE_SHARE,
    }
