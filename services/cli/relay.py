"""``liaison relay``: link a field site's own broker to headquarters over a poor link.

``setup`` declares the site broker's queues, partner accounts and shovels; ``site`` runs the
site end (setup, the compressing tunnel, the flash/routine sorter, status); ``hq`` runs the
headquarters end of the tunnel; ``status`` prints the running site end's view of the link.
All settings come from ``LIAISON_*`` (docs/operations.md, "Field sites").
"""

import argparse
import json
from datetime import UTC, datetime

import aiohttp

from liaison.cli.render import table
from liaison.common.errors import BrokerUnreachable
from liaison.common.logging import configure_logging
from liaison.relay.app import HqRelay, SiteRelay, run_until_stopped, setup_site
from liaison.relay.settings import RelaySettings


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison relay``."""
    parser = sub.add_parser(
        "relay",
        help="link a field site's broker to headquarters (shovels, zstd tunnel, status)",
        description="Run a field site's end or headquarters' end of the relay, set a site "
        "broker up, or show the link's status.",
    )
    commands = parser.add_subparsers(dest="relay_command", metavar="ACTION", required=True)
    setup = commands.add_parser("setup", help="declare the site broker's queues, users, shovels")
    setup.set_defaults(handler=_setup)
    site = commands.add_parser("site", help="run the site end (until Ctrl-C)")
    site.set_defaults(handler=_site)
    hq = commands.add_parser("hq", help="run the headquarters end of the tunnel (until Ctrl-C)")
    hq.set_defaults(handler=_hq)
    status = commands.add_parser("status", help="the link as the running site end sees it")
    status.add_argument(
        "--url", help="the site end's status URL (default: LIAISON_RELAY_HTTP_HOST/PORT)"
    )
    status.add_argument("--json", action="store_true", help="the JSON as is")
    status.set_defaults(handler=_status)


async def _setup(_: argparse.Namespace) -> int:
    settings = RelaySettings.from_env()
    for line in await setup_site(settings):
        print(line)
    return 0


async def _site(_: argparse.Namespace) -> int:
    settings = RelaySettings.from_env()
    configure_logging(level=settings.log_level)
    await run_until_stopped(SiteRelay(settings))
    return 0


async def _hq(_: argparse.Namespace) -> int:
    settings = RelaySettings.from_env()
    configure_logging(level=settings.log_level)
    await run_until_stopped(HqRelay(settings))
    return 0


async def _status(args: argparse.Namespace) -> int:
    settings = RelaySettings.from_env()
    url = args.url or f"http://{settings.relay_http_host}:{settings.relay_http_port}/status"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            body = await response.json()
    except aiohttp.ClientError as exc:
        raise BrokerUnreachable(f"no relay answers at {url}: {exc}") from None
    if args.json:
        print(json.dumps(body, indent=2))
        return 0 if response.status == 200 else 1
    if response.status != 200:
        print(f"relay at {url}: {body.get('status', response.status)}")
        return 1
    for line in render_status(body):
        print(line)
    return 0 if body["connected"] else 1


def render_status(body: dict[str, object]) -> list[str]:
    """The status JSON as lines for a terminal."""

    def age(value: object) -> str:
        return "-" if value is None else f"{float(str(value)):.0f}s"

    def ratio(plain: object, wire: object) -> str:
        w = int(str(wire))
        return f"{int(str(plain)) / w:.1f}x" if w else "-"

    checked = datetime.fromtimestamp(float(str(body["checked_at"])), UTC).strftime("%H:%M:%SZ")
    alarms = [n for n in ("disk", "memory") if body[f"{n}_alarm"]]
    lines = [
        f"site        {body['site']}  (read {checked})",
        f"link        {'connected' if body['connected'] else 'DOWN'}",
        f"alarms      {', '.join(alarms) or 'none'}",
        "",
    ]
    inbound = body["inbound_backlog"]
    rows = [
        ("DIRECTION", "WAITING", "OLDEST", "PLAIN BYTES", "WIRE BYTES", "COMPRESSION"),
        (
            "up (to hq)",
            f"{body['outbound_backlog']} ({body['outbound_flash_backlog']} flash)",
            age(body["outbound_oldest_seconds"]),
            str(body["up_plain_bytes"]),
            str(body["up_wire_bytes"]),
            ratio(body["up_plain_bytes"], body["up_wire_bytes"]),
        ),
        (
            "down (to site)",
            "unknown" if inbound is None else str(inbound),
            age(body["inbound_oldest_seconds"]),
            str(body["down_plain_bytes"]),
            str(body["down_wire_bytes"]),
            ratio(body["down_plain_bytes"], body["down_wire_bytes"]),
        ),
    ]
    lines.extend(table(rows))
    shovels = body["shovels"]
    assert isinstance(shovels, dict)
    lines.append("")
    lines.extend(table([("SHOVEL", "STATE"), *sorted(shovels.items())]))
    return lines
