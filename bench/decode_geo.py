"""The hub's decode of coordinate-heavy bodies: the contract's decoder against the router's.

``python -m bench.decode_geo [--repeats 7] [--callgrind]``: the sweep's coordinate bodies
(``bench.sweep_workload``: a hazard alert of 1 KB and of 250 KB nominal, 4 recipients) decoded
in this process by

- ``contract``: ``decode_envelope``, which builds a float for each number and a tuple for each
  position (the router's decode before ``liaison.hub.geo``);
- ``router``: ``liaison.hub.geo.decode_for_routing``: coordinates checked by the compiled
  ``_geo`` on the raw bytes and replaced by a mark in a copy, which msgspec decodes (the
  contract's decoder alone when ``_geo`` is not importable);
- ``raw floor``: msgspec stepping over every geometry's coordinates unchecked (as
  ``msgspec.Raw``), the floor of the router's decode while msgspec still read the coordinates
  (before ``_geo.blank``: the router is now below it).

Each as the router calls it (the collector held off from 8 KiB, services/hub/decoding.py).
In-process: µs per KB, the median of ``--repeats`` runs of ~0.2 s each (runs of the three
paths alternate, so a busy moment touches them alike). ``--callgrind``: each path again under
``valgrind --tool=callgrind`` in a child, instructions per byte of the decode alone
(``--toggle-collect`` on ``functools.reduce``, which calls it ``--calls`` times), which load
does not move.

``--hub``: the whole hub, end to end, on the sweep's vhost (``bench.sweep.Sweep.hub``: one
``python -m liaison.hub`` draining preloaded messages, its CPU metered): rounds alternate
between the hub with the compiled check and the same hub with ``LIAISON_HUB_DECODER=python``
(the contract's decoder alone), ``--rounds`` of each at each point of ``--points``; the hub's
CPU µs per message and per KB of body.
"""

import argparse
import functools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import uvloop

from bench.sweep_workload import Shape, build_messages, write_directory
from liaison.hub import geo
from liaison.hub.decoding import SMALL_BODY_BYTES, CollectorHeldOff
from liaison.schemas.envelope import decode_envelope

BODIES = {"1kb": Shape(4, "coords", 1), "233kb": Shape(4, "coords", 250)}


class _RawPolygon(msgspec.Struct):
    coordinates: msgspec.Raw


class _RawArea(msgspec.Struct):
    polygon: _RawPolygon | None = None


class _RawBody(msgspec.Struct):
    area: list[_RawArea]


class _RawEnvelope(msgspec.Struct):
    body: _RawBody


_RAW_FLOOR = msgspec.json.Decoder(_RawEnvelope)


def _as_router(decode: Callable[[bytes], object]) -> Callable[[bytes], object]:
    """``decode`` as the router calls it: the collector held off for large bodies."""

    def decide(body: bytes) -> object:
        if len(body) < SMALL_BODY_BYTES:
            return decode(body)
        with CollectorHeldOff():
            return decode(body)

    return decide


PATHS: dict[str, Callable[[bytes], object]] = {
    "contract": _as_router(decode_envelope),
    "router": _as_router(geo.decode_for_routing),
    "raw floor": _as_router(_RAW_FLOOR.decode),
}


def bodies() -> dict[str, bytes]:
    """The sweep's coordinate bodies, by label."""
    with tempfile.TemporaryDirectory() as scratch:
        index = write_directory("decodegeo", Path(scratch) / "directory.toml")
        return {
            label: build_messages(index, shape, 1, prefix="geo")[0].body
            for label, shape in BODIES.items()
        }


def _us_per_kb(decode: Callable[[bytes], object], body: bytes, seconds: float = 0.2) -> float:
    calls = max(1, int(seconds / max(_once(decode, body), 1e-7)))
    started = time.perf_counter()
    for _ in range(calls):
        decode(body)
    elapsed = time.perf_counter() - started
    return elapsed / calls * 1e6 / (len(body) / 1024)


def _once(decode: Callable[[bytes], object], body: bytes) -> float:
    started = time.perf_counter()
    decode(body)
    return time.perf_counter() - started


def in_process(repeats: int) -> dict[str, dict[str, list[float]]]:
    """µs per KB of each path on each body, ``repeats`` alternating runs."""
    results: dict[str, dict[str, list[float]]] = {}
    for label, body in bodies().items():
        runs: dict[str, list[float]] = {path: [] for path in PATHS}
        for _ in range(repeats):
            for path, decode in PATHS.items():
                runs[path].append(_us_per_kb(decode, body))
        results[label] = runs
    return results


def _callgrind_child(label: str, path: str, calls: int) -> None:
    body, decode = bodies()[label], PATHS[path]
    decode(body)  # warm: types, caches and the first allocations outside the count
    functools.reduce(lambda _, __: decode(body), range(calls), None)


def under_callgrind(label: str, path: str, calls: int) -> float:
    """Instructions per byte of one decode of ``label`` by ``path``, under callgrind."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "cg.out"
        subprocess.run(  # noqa: S603 - the bench's own command
            [  # noqa: S607 - valgrind from the PATH
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--collect-atstart=no",
                "--toggle-collect=functools_reduce",
                sys.executable,
                "-m",
                "bench.decode_geo",
                "--child",
                f"{label}:{path}:{calls}",
            ],
            check=True,
            capture_output=True,
        )
        totals = re.search(r"^totals:\s+(\d+)", out.read_text(), re.MULTILINE)
        assert totals, "callgrind wrote no totals"
        size = len(bodies()[label])
        return int(totals.group(1)) / calls / size


async def _hub_rounds(points: list[str], rounds: int, max_messages: int) -> None:
    from bench.sweep import POINTS, Sweep, messages_for, parse_args

    sweep = Sweep(parse_args(["--max-messages", str(max_messages), "--movers", "hub"]))
    kinds = {"compiled": None, "python": {"LIAISON_HUB_DECODER": "python"}}
    async with sweep.running():
        for shape in (s for s in POINTS if s.label in points):
            n = messages_for(shape, int(shape.recipients), max_messages)
            per_kb: dict[str, list[float]] = {kind: [] for kind in kinds}
            for r in range(rounds):
                messages = build_messages(
                    sweep.index, shape, n, prefix=f"geo-{shape.label}-{r}-{sweep.run_id}"
                )
                kb = sum(len(m.body) for m in messages) / n / 1024
                # ABBA: neither kind always runs first.
                order = list(kinds) if r % 2 == 0 else list(reversed(kinds))
                for kind in order:
                    tag = f"geo-{shape.label}-{r}-{kind}".replace(".", "_")
                    row = await sweep.hub(messages, tag, env=kinds[kind])
                    us = row["hub_cpu_us_per_message"]
                    per_kb[kind].append(us / kb)
                    print(
                        f"{shape.label} round {r + 1}: {kind:8} hub {us:8.1f} µs/msg, "
                        f"{us / kb:5.2f} µs/KB ({kb:.1f} KB, {n} msgs, "
                        f"load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
            for kind, values in per_kb.items():
                print(
                    f"{shape.label} {kind}: hub µs per KB median {statistics.median(values):.2f} "
                    f"(min {min(values):.2f}, max {max(values):.2f}, {rounds} rounds)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hub", action="store_true", help="the hub end to end, A/B rounds")
    parser.add_argument("--points", default="4r-coords-1kb,4r-coords-250kb")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-messages", type=int, default=600)
    args = parser.parse_args()
    if args.hub:
        uvloop.run(_hub_rounds(args.points.split(","), args.rounds, args.max_messages))
        return
    if args.child:
        label, path, calls = args.child.split(":")
        _callgrind_child(label, path, int(calls))
        return
    sizes = {label: len(body) for label, body in bodies().items()}
    print(f"router path: {geo.DECODER_PATH}; load average {os.getloadavg()[0]:.2f}")
    for label, runs in in_process(args.repeats).items():
        print(f"{label} ({sizes[label]} bytes), µs per KB, median of {args.repeats}:")
        for path, values in runs.items():
            print(
                f"  {path:10} {statistics.median(values):6.2f}"
                f"  (min {min(values):.2f}, max {max(values):.2f})"
            )
    if args.callgrind:
        for label in BODIES:
            print(f"{label}, instructions per byte (callgrind, {args.calls} decodes):")
            for path in PATHS:
                print(f"  {path:10} {under_callgrind(label, path, args.calls):6.1f}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
