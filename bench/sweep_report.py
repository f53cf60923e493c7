"""The sweep's results: a printed table, ``sweep.json`` and ``sweep.png``."""

from pathlib import Path
from typing import Any

from bench import costmodel, report


def table(results: dict[str, Any]) -> str:
    """Every point, hub beside shovel, then the fitted model and the sizing example."""
    lines = [
        f"Liaison sweep  {results['started_at']}  rounds {results['rounds']}  load "
        f"{results['machine']['loadavg_before']} -> {results['machine']['loadavg_after']}",
        "",
        f"{'point':<22}{'bytes':>8}{'n':>6}  {'hub msg/s':>9}{'copies/s':>9}{'hub us':>8}"
        f"{'brk us':>8}  {'shovel msg/s':>12}{'copies/s':>9}{'brk us':>8}",
    ]
    for p in results["points"]:
        empty = {"msg_per_s": 0, "copies_per_s": 0, "broker_cpu_us_per_message": 0}
        hub = {k: v or 0 for k, v in p.get("hub", {**empty, "hub_cpu_us_per_message": 0}).items()}
        shovel = {k: v or 0 for k, v in p.get("shovel", empty).items()}
        lines.append(
            f"{p['label']:<22}{p['body_bytes']:>8}{p['messages']:>6}  "
            f"{hub['msg_per_s']:>9.0f}{hub['copies_per_s']:>9.0f}"
            f"{hub['hub_cpu_us_per_message']:>8.0f}{hub['broker_cpu_us_per_message']:>8.0f}  "
            f"{shovel['msg_per_s']:>12.0f}{shovel['copies_per_s']:>9.0f}"
            f"{shovel['broker_cpu_us_per_message']:>8.0f}"
        )
    model = results["model"]
    lines += ["", f"model: {model['form']}"]
    for name, *_ in costmodel.SERIES:
        if name not in model:
            continue
        m = model[name]
        kinds = "  ".join(
            f"c_{k} {m[f'c_us_per_kb_{k}']:.2f}/KB"
            for k in costmodel.KINDS
            if f"c_us_per_kb_{k}" in m
        )
        lines.append(
            f"  {name:<20} a {m['a_us']:.0f}  b {m['b_us_per_recipient']:.2f}/recipient  {kinds}"
            f"  d {m['d_us_per_recipient_kb']:.3f}/(recipient KB)"
            f"  e {m.get('e_us_per_recipient2', 0):.3f}/recipient^2  rms {m['rms_residual_us']:.0f}"
            f" ({m.get('rms_relative_residual', float('nan')):.0%})"
        )
    example = model.get("sizing_example")
    if example is None:
        return "\n".join(lines)
    lines += [
        "",
        f"sizing example: {example['messages_per_s']:.0f} msg/s -> hub "
        f"{example['hub_cpu_us_per_message']} us/msg, {example['hub_cores']:.2f} cores, "
        f"{example['hub_processes']} process(es); broker {example['broker_cpu_us_per_message']} "
        f"us/msg, {example['broker_cores']:.2f} cores",
    ]
    check = results.get("sizing_check")
    if check:
        lines.append(
            f"  measured on the mixed load ({len(check['rounds'])} rounds): {check_line(check)}"
        )
    return "\n".join(lines)


def check_line(check: dict[str, Any]) -> str:
    """The sizing check's verdict for hub and broker: median, each round, within 25 % or not."""
    parts = []
    for series in ("hub", "broker"):
        c = check[series]
        if c["median_ratio"] is None:
            parts.append(f"{series}: every round failed")
            continue
        rounds = " / ".join(f"{r:.2f}" for r in c["ratios"])
        verdict = "within" if c["within_tolerance"] else "OUTSIDE"
        parts.append(
            f"{series} {c['median_us_per_message']:.0f} us/msg against "
            f"{c['predicted_us_per_message']} predicted, {c['median_ratio']:.2f} x "
            f"(rounds {rounds}; {verdict} 25 %)"
        )
    return "; ".join(parts)


def chart(results: dict[str, Any], out: Path) -> Path:
    """Left: CPU per message against recipients; right: against KB by body kind; hub and
    broker (serving the hub, serving the shovel), measured points and the fitted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["points"]
    model = results["model"]
    fig, (by_recipients, by_size, rate) = plt.subplots(1, 3, figsize=(18, 5))
    styles = {
        "hub": ("hub", "hub_cpu_us_per_message", "#d62728"),
        "broker_with_hub": ("hub", "broker_cpu_us_per_message", "#1f77b4"),
        "broker_with_shovel": ("shovel", "broker_cpu_us_per_message", "#7f7f7f"),
    }
    small = sorted(
        (p for p in points if p["kind"] == "text" and p["nominal_kb"] <= 1),
        key=lambda p: p["recipients"],
    )
    styles = {k: v for k, v in styles.items() if k in model}
    points = [p for p in points if all(mover in p for mover, _, _ in styles.values())]
    for name, (mover, figure, colour) in styles.items():
        xs = [p["recipients"] for p in small]
        ys = [_value(p, mover, figure) for p in small]
        by_recipients.plot(xs, ys, "o", color=colour, label=name)
        if xs:
            kb = sum(p["body_bytes"] for p in small) / len(small) / 1024
            line = [costmodel.predict(model[name], r, kb, "text") for r in range(1, max(xs) + 1)]
            by_recipients.plot(range(1, max(xs) + 1), line, "-", color=colour, alpha=0.5)
    by_recipients.set_xlabel("recipients per message (~1 KB text)")
    by_recipients.set_ylabel("CPU microseconds per message")
    by_recipients.set_title("Cost by recipients")
    by_recipients.legend(fontsize=8)

    for kind, marker in (("text", "o"), ("coords", "s")):
        sized = sorted(
            (p for p in points if p["kind"] == kind and p["recipients"] == 4),
            key=lambda p: p["body_bytes"],
        )
        for name, (mover, figure, colour) in styles.items():
            xs = [p["body_bytes"] / 1024 for p in sized]
            by_size.plot(
                xs,
                [_value(p, mover, figure) for p in sized],
                marker,
                color=colour,
                label=f"{name}, {kind}",
                fillstyle="none" if kind == "coords" else "full",
            )
            if xs:
                grid = [max(xs) * i / 20 for i in range(21)]
                by_size.plot(
                    grid,
                    [costmodel.predict(model[name], 4, kb, kind) for kb in grid],
                    "--" if kind == "coords" else "-",
                    color=colour,
                    alpha=0.5,
                )
    by_size.set_xlabel("body KB (4 recipients)")
    by_size.set_ylabel("CPU microseconds per message")
    by_size.set_title("Cost by body size and kind (open: coordinates)")
    by_size.legend(fontsize=7)

    labels = [p["label"] for p in points]
    xs = list(range(len(points)))
    rate.bar(
        [x - 0.2 for x in xs],
        [p["hub"]["msg_per_s"] if "hub" in p else 0 for p in points],
        0.4,
        label="hub",
    )
    rate.bar(
        [x + 0.2 for x in xs],
        [p["shovel"]["msg_per_s"] if "shovel" in p else 0 for p in points],
        0.4,
        label="shovel",
    )
    rate.set_xticks(xs, labels, rotation=70, fontsize=7)
    rate.set_yscale("log")
    rate.set_ylabel("messages per second (median round), log")
    rate.set_title("Throughput, side by side")
    rate.legend(fontsize=8)
    return report.save_chart(fig, out / "sweep.png")


def _value(point: dict[str, Any], mover: str, figure: str) -> float:
    # A point whose rounds all failed has no median: drawn as a gap.
    value = point[mover][figure]
    return float("nan") if value is None else float(value)


def sizing_markdown(results: dict[str, Any]) -> str:
    """The figures of docs/operations.md's "Sizing" section, from one sweep's JSON."""
    model = results["model"]
    lines = [
        "| CPU µs per message | a (fixed) | b (per recipient) | c text (per KB) "
        "| c coordinates (per KB) | d (per recipient x KB) | e (per recipient²) | rms residual |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "hub": "hub process",
        "broker_with_hub": "broker, serving the hub",
        "broker_with_shovel": "broker, serving the shovel",
    }
    for name, label in names.items():
        m = model.get(name)
        if m is None:
            continue
        lines.append(
            f"| {label} | {m['a_us']:.0f} | {m['b_us_per_recipient']:.2f} "
            f"| {m.get('c_us_per_kb_text', 0):.2f} | {m.get('c_us_per_kb_coords', 0):.2f} "
            f"| {m['d_us_per_recipient_kb']:.3f} | {m.get('e_us_per_recipient2', 0):.3f} "
            f"| {m['rms_residual_us']:.0f} "
            f"({m.get('rms_relative_residual', float('nan')):.0%}) |"
        )
    example = model.get("sizing_example")
    if example:
        lines += [
            "",
            "| part of the load | msg/s | recipients | KB | hub µs/msg | broker µs/msg "
            "| extrapolated |",
            "|---|---|---|---|---|---|---|",
        ]
        for part in example["load"]:
            lines.append(
                f"| {part['kind']} | {part['rate']:.0f} | {part['recipients']} "
                f"| {part['kb']:.0f} | {part['hub_us_per_message']} "
                f"| {part['broker_us_per_message']} | {'yes' if part['extrapolated'] else 'no'} |"
            )
        lines.append(
            f"| **all** | {example['messages_per_s']:.0f} | | | "
            f"{example['hub_cpu_us_per_message']} | {example['broker_cpu_us_per_message']} | |"
        )
    check = results.get("sizing_check")
    if check:
        lines += ["", f"Sizing check: {check_line(check)}"]
    return "\n".join(lines)
