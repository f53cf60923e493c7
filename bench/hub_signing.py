"""The hub's throughput with every message signed and verified, against the unsigned workload.

``python -m bench.hub_signing [--messages N] [--repeats R]`` (``make bench-signing``, also run by
``make bench``): ``make bench``'s hub round (N messages preloaded into the ingress, then one
``python -m liaison.hub``, timed until every inbox and the bench's copy counter hold their
copies), alternating

- **unsigned**: the workload as ``make bench`` publishes it, every organisation's policy
  ``when_present`` (the hub checks for a header and finds none);
- **signed**: the same kind of workload, each message signed by its sender's demo key
  (``deploy/demo-keys``, as ``liaison.sdk`` signs it) and published with its
  ``x-liaison-signature`` header, to a hub whose directory keeps the sample's
  ``signatures = "required"``: every message verified before it is decoded;
- **signed_openssl** (unless ``--no-openssl``): the same signed rounds with the hub verifying
  through OpenSSL as it did before libsodium (``bench/hub_openssl_verify.py``), the
  before-and-after of that change in one run.

The signing happens before the preload and the preload before the hub starts, so the hub's
figures hold only the hub's work. Also prints ``bench.signing``'s µs per sign and per verify on
the example message. Target (issue 13): signed / unsigned msg/s ≥ 0.8. Results:
``bench/results/hub_signing.json``.
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from bench import report, signing
from bench.__main__ import Run, parse_args
from bench.workload import sign_messages, write_directory

KINDS = ("unsigned", "signed", "signed_openssl")
MODULES = {"signed_openssl": "bench.hub_openssl_verify"}
FIELDS = ("msg_per_s", "mover_cpu_us_per_message", "broker_cpu_us_per_message")
TARGET = 0.8


async def measure(
    messages: int,
    repeats: int,
    settle_seconds: float | None,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, Any]:
    """Alternate the ``kinds`` of hub round on one bench vhost; rounds and medians."""
    argv = ["--messages", str(messages), "--repeats", str(repeats)]
    if settle_seconds is not None:
        argv += ["--settle-seconds", str(settle_seconds)]
    run = Run(parse_args(argv))
    rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    async with run.running():
        signed_directory = run.scratch / "directory-signed.toml"
        write_directory(run.run_id, signed_directory, signed=True)
        for round_number in range(repeats):
            for kind in kinds:
                batch = run.messages(messages, f"{kind.replace('_', '-')}{round_number}")
                directory = None
                if kind != "unsigned":
                    started = time.process_time()
                    batch = sign_messages(batch)
                    run.log(
                        f"signed {messages} messages in the publisher: "
                        f"{(time.process_time() - started) / messages * 1e6:.1f} µs each"
                    )
                    directory = signed_directory
                module = MODULES.get(kind, "liaison.hub")
                row = await run.hub(batch, ["all"], f"{kind}{round_number}", directory, module)
                run.log(
                    f"round {round_number + 1}/{repeats} {kind}: {row['msg_per_s']:.0f} msg/s, "
                    f"hub {row['mover_cpu_us_per_message']} µs CPU/message"
                )
                rows[kind].append(row)

    median = {
        kind: {f: statistics.median(float(r[f]) for r in rows[kind]) for f in FIELDS}
        for kind in kinds
    }
    ratio = median["signed"]["msg_per_s"] / median["unsigned"]["msg_per_s"]
    added = (
        median["signed"]["mover_cpu_us_per_message"]
        - median["unsigned"]["mover_cpu_us_per_message"]
    )
    openssl: dict[str, float] = {}
    if "signed_openssl" in median:
        before = median["signed_openssl"]
        openssl = {
            "signed_openssl_over_unsigned_msg_per_s": round(
                before["msg_per_s"] / median["unsigned"]["msg_per_s"], 3
            ),
            "hub_cpu_us_added_per_message_openssl": round(
                before["mover_cpu_us_per_message"] - median["unsigned"]["mover_cpu_us_per_message"],
                1,
            ),
        }
    return {
        "messages": messages,
        "repeats": repeats,
        "rounds": {
            k: [{f: r[f] for f in (*FIELDS, "settled_before")} for r in v] for k, v in rows.items()
        },
        "median": median,
        "signed_over_unsigned_msg_per_s": round(ratio, 3),
        "target": f">= {TARGET}",
        "met": ratio >= TARGET,
        "hub_cpu_us_added_per_message": round(added, 1),
        **openssl,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the rounds and the µs figures, print and write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.hub_signing", description=__doc__)
    parser.add_argument("--messages", type=int, default=12_000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each kind (3)")
    parser.add_argument("--settle-seconds", type=float, help="see python -m bench (30)")
    parser.add_argument(
        "--no-openssl", action="store_true", help="leave out the signed_openssl rounds"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    kinds = tuple(k for k in KINDS if not (args.no_openssl and k == "signed_openssl"))
    results = uvloop.run(measure(args.messages, args.repeats, args.settle_seconds, kinds))
    results["per_message_us"] = signing.measure(messages=2000, rounds=5)
    results["machine"] = {
        "loadavg_before": loadavg_before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "note": "a shared 2-core machine: other work's CPU lands in every figure",
    }
    results["started_at"] = started.isoformat(timespec="seconds")
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report.publish(results, args.out, "hub_signing.json", json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
