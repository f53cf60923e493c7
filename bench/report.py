"""The results: a printed table, ``bench.json`` and ``bench.png``."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Targets from issue #6, as (label, peer, factor): hub throughput >= factor x peer.
THROUGHPUT_TARGETS = (
    ("3 x FastStream", "faststream", 3.0),
    ("1.5 x plain", "plain", 1.5),
    (
        "0.35 x shovel",
        "shovel",
        0.35,
    ),
)
LATENCY_TARGET_P99_MS = 5.0
RSS_TARGET_MB = 150.0

LABELS = {
    "shovel_one_queue": "shovel, 1 copy (reference)",
    "shovel": "RabbitMQ shovel",
    "plain": "plain aio-pika",
    "faststream": "FastStream+pydantic",
    "hub": "Liaison hub (1 process)",
    "hub_x2": "Liaison hub (2 processes)",
}


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Each target with the measured figure and whether it is met."""
    tp = results["throughput"]
    hub = tp["hub"]["msg_per_s"]
    out: dict[str, Any] = {}
    for label, peer, factor in THROUGHPUT_TARGETS:
        ratio = hub / tp[peer]["msg_per_s"]
        out[f"hub/{peer}"] = {
            "target": label,
            "ratio": round(ratio, 3),
            "met": ratio >= factor,
        }
    added = results["latency"]["hub_added_p99_ms"]
    out["hub_added_p99_ms"] = {
        "target": f"<= {LATENCY_TARGET_P99_MS} ms",
        "value": added,
        "met": added <= LATENCY_TARGET_P99_MS,
    }
    rss = results["rss"]
    out["hub_peak_rss_mb"] = {
        "target": f"<= {RSS_TARGET_MB} MB after 100000 messages, no growth",
        "value": rss["peak_mb_first_100k"],
        "peak_whole_run_mb": rss["peak_mb"],
        "growth_after_dedupe_full_mb": rss["growth_after_dedupe_full_mb"],
        "met": rss["peak_mb_first_100k"] <= RSS_TARGET_MB,
    }
    return out


def table(results: dict[str, Any]) -> str:
    """A plain-text summary of every figure."""
    lines = [
        f"Liaison bench  N={results['messages']}  {results['started_at']}  "
        f"load {results['machine']['loadavg_before']} -> {results['machine']['loadavg_after']}",
        "",
        f"{'mover':<28}{'msg/s':>10}{'seconds':>10}   every round, msg/s (median shown)",
    ]
    for key, row in results["throughput"].items():
        rounds = ", ".join(f"{x:.0f}" for x in row.get("rounds_msg_per_s", []))
        lines.append(
            f"{LABELS[key]:<28}{row['msg_per_s']:>10.0f}{row['seconds']:>10.2f}   {rounds}"
        )
    lines.append("")
    for key, target in results["targets"].items():
        if key.startswith("hub/"):
            mark = "met" if target["met"] else "NOT met"
            lines.append(f"{key:<20} {target['ratio']:>6.2f}   target {target['target']:<16}{mark}")
    reference = results["ratios"].get("hub/shovel_one_queue")
    if reference is not None:
        lines.append(
            f"{'hub/shovel 1 copy':<20} {reference:>6.2f}   reference only: the shovel writes "
            "1 copy per message there, the hub ~3.9"
        )
    lat = results["latency"]
    lines += [
        "",
        f"latency at {lat['rate']:.0f} msg/s for {lat['seconds']:.0f} s    p50 ms    p99 ms",
        f"{'direct to inbox':<36}{lat['direct']['p50_ms']:>8.2f}{lat['direct']['p99_ms']:>10.2f}",
        f"{'via the hub':<36}{lat['hub']['p50_ms']:>8.2f}{lat['hub']['p99_ms']:>10.2f}",
        f"{'added by the hub':<36}{lat['hub_added_p50_ms']:>8.2f}{lat['hub_added_p99_ms']:>10.2f}"
        f"   target p99 <= {LATENCY_TARGET_P99_MS} ms",
        "  p99 per round, direct / via the hub: "
        + ", ".join(
            f"{r['direct_p99_ms']:.1f}/{r['hub_p99_ms']:.1f}" for r in lat.get("per_round", [])
        ),
    ]
    rss = results["rss"]
    blocks = ", ".join(f"{mb:.1f}" for mb in rss["after_block_mb"])
    settled = rss["growth_after_dedupe_full_mb"]
    lines += [
        "",
        f"hub RSS: peak {rss['peak_mb_first_100k']:.1f} MB over the first 100000 messages "
        f"(target <= {RSS_TARGET_MB:.0f} MB); peak {rss['peak_mb']:.1f} MB over {rss['messages']}",
        f"  after each {rss['block']}-message block: {blocks} MB",
        f"  growth {rss['growth_mb']:+.1f} MB overall; after the dedupe window "
        f"({rss['dedupe_window_entries']} entries) is full: "
        + ("not reached" if settled is None else f"{settled:+.1f} MB"),
    ]
    return "\n".join(lines)


def publish(
    results: dict[str, Any],
    out: Path,
    name: str,
    *texts: str,
    chart: Callable[[dict[str, Any], Path], Path] | None = None,
) -> None:
    """A bench's ending: ``results`` as ``out/name`` (and ``chart`` drawn into ``out``), then
    ``texts`` printed and where everything was written."""
    written = [write_json(results, out, name)]
    if chart is not None:
        written.append(chart(results, out))
    for text in texts:
        print()
        print(text)
    print(f"\nwrote {' and '.join(map(str, written))}")


def save_chart(figure: Any, path: Path) -> Path:
    """``figure`` laid out and written as a PNG to ``path``, then closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_json(results: dict[str, Any], out: Path, name: str = "bench.json") -> Path:
    """``results`` as ``out/name`` (``out`` made if missing); what JSON cannot hold, as text."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def chart(results: dict[str, Any], out: Path) -> Path:
    """Throughput bars with the targets marked on the hub's bar; latency p50/p99 bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tp = results["throughput"]
    keys = list(tp)
    values = [tp[k]["msg_per_s"] for k in keys]
    fig, (left, right, memory) = plt.subplots(
        1, 3, figsize=(17, 5), gridspec_kw={"width_ratios": [3, 2, 2]}
    )
    colours = [
        "#d62728" if k.startswith("hub") else "#aaaaaa" if k == "shovel_one_queue" else "#1f77b4"
        for k in keys
    ]
    bars = left.bar([LABELS[k].replace(" (", "\n(") for k in keys], values, color=colours)
    left.bar_label(bars, fmt="%.0f")
    hub_index = keys.index("hub")
    for (label, peer, factor), style in zip(THROUGHPUT_TARGETS, ("--", "-.", ":"), strict=True):
        level = factor * tp[peer]["msg_per_s"]
        left.hlines(
            level,
            hub_index - 0.45,
            hub_index + 0.45,
            colors="black",
            linestyles=style,
            label=f"hub target: {label} = {level:.0f}",
        )
    left.set_yscale("log")
    left.set_ylim(bottom=100)
    left.legend(fontsize=8, loc="upper right")
    left.set_ylabel("messages per second, log scale (persistent, quorum, confirms)")
    left.set_title(f"Throughput, N={results['messages']}")
    left.tick_params(axis="x", labelsize=8)

    lat = results["latency"]
    groups = ["direct to inbox", "via the hub"]
    p50 = [lat["direct"]["p50_ms"], lat["hub"]["p50_ms"]]
    p99 = [lat["direct"]["p99_ms"], lat["hub"]["p99_ms"]]
    xs = range(len(groups))
    b1 = right.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    b2 = right.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    right.bar_label(b1, fmt="%.1f")
    right.bar_label(b2, fmt="%.1f")
    right.axhline(
        lat["direct"]["p99_ms"] + LATENCY_TARGET_P99_MS,
        color="black",
        linestyle="--",
        label=f"direct p99 + {LATENCY_TARGET_P99_MS:.0f} ms (target)",
    )
    right.set_xticks(list(xs), groups)
    right.set_ylabel("partner-to-inbox latency, ms")
    right.set_title(f"Latency at {lat['rate']:.0f} msg/s")
    right.legend(fontsize=8)

    rss = results["rss"]
    done = [(i + 1) * rss["block"] for i in range(len(rss["after_block_mb"]))]
    memory.plot(
        [d / 1000 for d in done], rss["after_block_mb"], marker="o", label="RSS after each block"
    )
    memory.axhline(RSS_TARGET_MB, color="black", linestyle="--", label="target (100k messages)")
    if rss["dedupe_window_entries"] <= done[-1]:
        memory.axvline(
            rss["dedupe_window_entries"] / 1000,
            color="grey",
            linestyle=":",
            label="dedupe window full",
        )
    memory.set_ylim(0, max(RSS_TARGET_MB, *rss["after_block_mb"]) * 1.15)
    memory.set_xlabel("thousands of messages through one hub process")
    memory.set_ylabel("RSS, MB")
    memory.set_title("Hub memory")
    memory.legend(fontsize=8)
    return save_chart(fig, out / "bench.png")
