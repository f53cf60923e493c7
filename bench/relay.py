"""``python -m bench.relay``: a field site draining its backlog to headquarters over a thin link.

    python -m bench.relay [--messages 10000] [--kbit 256] [--rtt 0.6] [--out bench/results]

Two extra RabbitMQ nodes (services/nodes): headquarters with Liaison provisioned (the sample
directory plus deploy/relay/sites-example.toml) and a hub process, and site ``bria``. The
relay's two ends run here, with ``liaison.relay.faults.LinkEmulator`` between them (bandwidth
each way, half the round trip each way). With the link cut, ``mag-bria`` sends N routine
messages at the site; the link comes back and the backlog drains into ``inbox.unmas`` at
headquarters. A quarter of the way through, one flash message is sent.

Reported: messages per second while draining; the link's capacity in messages per second
if the raw JSON bodies crossed it uncompressed (bits per second / 8 / mean body size) and the
ratio of the two; bytes on the wire per message each way (everything the link carried during
the drain: compressed AMQP frames, confirms, heartbeats, status reads); and how long the flash
message took from its send to its arrival in ``inbox.unmas.flash``. Needs root (the nodes).
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aio_pika
import msgspec

from bench import report
from liaison.directory.credentials import CredentialStore
from liaison.directory.index import load_directory
from liaison.directory.provision import provision
from liaison.directory.settings import load_settings
from liaison.nodes.node import LIAISON_PLUGINS, BrokerNode
from liaison.relay.app import HqRelay, SiteRelay
from liaison.relay.faults import LinkEmulator
from liaison.relay.settings import RelaySettings
from liaison.relay.site import FLASH_QUEUE, OUTBOUND_QUEUE, ROUTINE_QUEUE
from liaison.schemas.envelope import Envelope
from liaison.schemas.messages.coordination import InformationRequest
from liaison.sdk import Client

ROOT = Path(__file__).resolve().parents[1]
VHOST = "liaison"
SITE_PLUGINS = ("rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management")
SITE_CONFIG = "disk_free_limit.absolute = 200MB\ncollect_statistics_interval = 1000\n"
#: A field report of a realistic length (a sitrep-sized question): ~500 bytes of JSON.
QUESTION = (
    "Team Bria, n={n}: is the Bria-Ippy road cleared past km 40, and are the two culverts "
    "at km 44 and km 47 passable for the MEDEVAC ambulance? Report ERW sightings en route."
)


async def depth(url: str, *queues: str) -> int:
    """Ready messages in ``queues`` (passive declares)."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        total = 0
        for name in queues:
            declared = await channel.declare_queue(name, passive=True)
            total += declared.declaration_result.message_count or 0
        return total


async def wait_for(read: Any, at_least: int, every: float, limit: float) -> float:
    """Poll ``read()`` until it gives ``at_least``; the monotonic time it did."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await read() >= at_least:
            return time.monotonic()
        await asyncio.sleep(every)
    raise TimeoutError(f"never reached {at_least} within {limit:.0f}s")


async def run(messages: int, kbit: float, rtt: float) -> dict[str, Any]:
    """Set everything up, drain, measure."""
    work = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    directory = work / "directory.toml"
    directory.write_text(
        (ROOT / "deploy" / "directory.toml").read_text()
        + "\n"
        + (ROOT / "deploy" / "relay" / "sites-example.toml").read_text()
    )
    credentials = work / "credentials"
    with (
        BrokerNode.start(prefix="bench-relay-hq", plugins=LIAISON_PLUGINS) as hq_node,
        BrokerNode.start(
            prefix="bench-relay-site", plugins=SITE_PLUGINS, config=SITE_CONFIG
        ) as site_node,
    ):
        await provision(
            load_settings(
                {
                    "LIAISON_VHOST": VHOST,
                    "LIAISON_MANAGEMENT_URL": hq_node.management_url,
                    "LIAISON_AMQP_URL": hq_node.amqp_url(vhost=VHOST),
                    "LIAISON_CREDENTIALS_DIR": str(credentials),
                    "LIAISON_DIRECTORY": str(directory),
                }
            ),
            load_directory(directory),
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
        env.update(
            LIAISON_AMQP_URL=f"amqp://liaison-hub@127.0.0.1:{hq_node.ports.amqp}/{VHOST}",
            LIAISON_CREDENTIALS_DIR=str(credentials),
            LIAISON_DIRECTORY=str(directory),
            LIAISON_HTTP_PORT="0",
            LIAISON_LOG_LEVEL="warning",
        )
        with (work / "hub.log").open("wb") as log:
            hub = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "liaison.hub", env=env, stdout=log, stderr=log
            )
        try:
            return await measure(hq_node, site_node, directory, credentials, messages, kbit, rtt)
        finally:
            hub.terminate()
            await asyncio.wait_for(hub.wait(), 30)
            shutil.rmtree(work, ignore_errors=True)


async def measure(
    hq_node: BrokerNode,
    site_node: BrokerNode,
    directory: Path,
    credentials: Path,
    messages: int,
    kbit: float,
    rtt: float,
) -> dict[str, Any]:
    """The drain itself, with the relay running here."""
    hq_end = HqRelay(
        RelaySettings(
            relay_link="127.0.0.1:0",
            relay_http_port=0,
            relay_broker=f"127.0.0.1:{hq_node.ports.amqp}",
        )
    )
    await hq_end.start()
    assert hq_end.tunnel is not None
    link = LinkEmulator.shaped(
        ("127.0.0.1", hq_end.tunnel.port), rtt=rtt, bits_per_second=kbit * 1000
    )
    await link.start()
    site_end = SiteRelay(
        RelaySettings(
            site="bria",
            directory=directory,
            credentials_dir=credentials,
            site_management_url=site_node.management_url,
            site_amqp_url=site_node.amqp_url(vhost=VHOST),
            relay_listen="127.0.0.1:0",
            relay_link=f"127.0.0.1:{link.port}",
            relay_http_port=0,
        )
    )
    await site_end.start()
    store = CredentialStore(credentials)
    site_admin = site_node.amqp_url(vhost=VHOST)
    hq_admin = hq_node.amqp_url(vhost=VHOST)
    try:
        link.cut()
        site_url = f"amqp://127.0.0.1:{site_node.ports.amqp}/{VHOST}"
        async with Client.connect(
            "mag-bria", site_url, account="mag-bria", password=store.get("mag-bria") or ""
        ) as field:
            began = time.monotonic()
            for start in range(0, messages, 100):
                batch = [
                    InformationRequest(question=QUESTION.format(n=n))
                    for n in range(start, min(messages, start + 100))
                ]
                await asyncio.gather(*(field.send(b, recipients=["org:unmas"]) for b in batch))
            print(f"{messages} sent at the site in {time.monotonic() - began:.1f}s (link cut)")
            await wait_for(lambda: depth(site_admin, ROUTINE_QUEUE), messages, 0.5, 600)
            sample = msgspec.json.encode(
                msgspec.convert(
                    {
                        "schema_version": "1.0",
                        "distribution_id": "x" * 26,
                        "sender": "mag-bria",
                        "sent_at": "2026-11-24T03:00:00Z",
                        "recipients": ["org:unmas"],
                        "body": {
                            "type": "information.request",
                            "question": QUESTION.format(n=5000),
                        },
                    },
                    Envelope,
                )
            )
            raw_bytes = len(sample)
            up_before, down_before = link.up.bytes_sent, link.down.bytes_sent
            link.restore()
            t0 = time.monotonic()
            await wait_for(lambda: depth(hq_admin, "inbox.unmas"), messages // 4, 0.2, 900)
            flash_sent = time.monotonic()
            await field.send(
                InformationRequest(question="Mine strike at km 41, MEDEVAC needed"),
                recipients=["org:unmas"],
                precedence="flash",
            )
            flash_at = await wait_for(lambda: depth(hq_admin, "inbox.unmas.flash"), 1, 0.05, 600)
            routine_left = await depth(site_admin, OUTBOUND_QUEUE, ROUTINE_QUEUE, FLASH_QUEUE)
            done = await wait_for(lambda: depth(hq_admin, "inbox.unmas"), messages, 0.2, 3600)
        drained = done - t0
        up = link.up.bytes_sent - up_before
        down = link.down.bytes_sent - down_before
        rate = messages / drained
        capacity = kbit * 1000 / 8 / raw_bytes
        counters = site_end.tunnel.counters if site_end.tunnel else None
        return {
            "messages": messages,
            "link_kbit_per_s": kbit,
            "rtt_s": rtt,
            "raw_json_bytes_per_message": raw_bytes,
            "drain_seconds": round(drained, 1),
            "messages_per_s": round(rate, 1),
            "raw_json_capacity_messages_per_s": round(capacity, 1),
            "ratio_to_raw_capacity": round(rate / capacity, 2),
            "wire_bytes_per_message_up": round(up / messages, 1),
            "wire_bytes_per_message_down": round(down / messages, 1),
            "tunnel_compression_up": round(counters.up_plain / counters.up_wire, 2)
            if counters and counters.up_wire
            else None,
            "flash_crossing_s": round(flash_at - flash_sent, 2),
            "still_waiting_on_site_when_flash_arrived": routine_left,
        }
    finally:
        await site_end.stop()
        await link.close()
        await hq_end.stop()


def main() -> None:
    """Parse the arguments, run, print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--kbit", type=float, default=256.0, help="link bandwidth each way")
    parser.add_argument("--rtt", type=float, default=0.6, help="round trip in seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    figures = asyncio.run(run(args.messages, args.kbit, args.rtt))
    for key, value in figures.items():
        print(f"  {key:<42} {value}")
    report.write_json(figures, args.out, "relay.json")


if __name__ == "__main__":
    main()
