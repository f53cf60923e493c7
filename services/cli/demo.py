"""``liaison demo`` (what ``make run`` runs): provision, start a hub, play the scenario, wait.

Settings: ProvisionSettings (vhost, broker, admin, credentials, directory, shards) and
OperatorSettings (log level, the first HTTP port to try for the hub's endpoints); the table in
docs/operations.md lists them.
"""

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator

import msgspec

from liaison.cli.login import operator_url
from liaison.cli.render import table
from liaison.common.errors import LiaisonError
from liaison.common.hub_key import ensure_hub_key
from liaison.common.logging import configure_logging
from liaison.common.urls import redact_url
from liaison.demo.scenario import Scenario, play
from liaison.demo.stage import Stage, account_urls, provision_directory, start_hub, start_ledger
from liaison.directory.index import load_directory
from liaison.directory.keys import published_keys
from liaison.directory.settings import OperatorSettings, load_settings
from liaison.ledger.settings import LedgerSettings
from liaison.sdk import Client
from liaison.sdk.signing import load_trusted_keys


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``liaison demo``."""
    parser = sub.add_parser(
        "demo",
        help="provision the sample directory, start a hub and play a scenario",
        description="Bring Liaison up on the vhost LIAISON_VHOST (default 'liaison'): "
        "provision the directory, start the hub in this process, play a MINUSCA mine-action "
        "scenario with SDK clients, then keep the hub running until Ctrl-C.",
    )
    parser.add_argument("--once", action="store_true", help="play the scenario, then stop")
    parser.set_defaults(handler=run)


def out(line: str) -> None:
    """Print a line of the story and flush, so a pipe sees it at once."""
    print(line, flush=True)


async def run(args: argparse.Namespace) -> int:
    """Provision, start, play; then wait for SIGINT/SIGTERM unless --once; stop cleanly."""
    operator = OperatorSettings.from_env()
    configure_logging(level=operator.log_level, stream=sys.stderr)
    settings = load_settings()
    index = load_directory(settings.directory)
    first_port = operator.http_port
    out(f"Liaison demo: vhost {settings.vhost!r} on {redact_url(settings.amqp_url)}")
    report = await provision_directory(settings, index)
    out(f"provisioned {len(index.organisations)} organisations: {report[-1]}")
    hub_key, created = ensure_hub_key(settings.hub_key_path)
    where = f"{'created in' if created else 'from'} {settings.hub_key_path}"
    out(f"hub signing key {hub_key.kid} {where}")
    # What partners get with the contract: every public key, the hub's included.
    trusted = load_trusted_keys(published_keys(index, hub_key))
    urls = account_urls(settings, index)
    stage = await start_hub(
        urls[index.directory.hub_account],
        settings.directory,
        first_port,
        shard_count=settings.shard_count,
        hub_signing_key=settings.hub_key_path,
    )
    out(f"hub consuming; health {stage.base_url}/healthz")
    # The ledger (make run's console): consumes with its own account, replays as the
    # operators' (impersonator); the demo goes on without it when PostgreSQL is missing.
    ledger: Stage | None = None
    try:
        ledger_settings = msgspec.structs.replace(
            LedgerSettings.from_env(),
            amqp_url=urls[index.directory.ledger_account],
            replay_amqp_url=operator_url(None),
            directory=settings.directory,
            vhost=settings.vhost,
            hub_url=stage.base_url,
            hub_signing_key=settings.hub_key_path,
        )
        ledger = await start_ledger(ledger_settings, ledger_settings.http_port)
        out(f"ledger console {ledger.base_url}/  (API {ledger.base_url}/openapi.json)")
    except LiaisonError as exc:
        out(f"ledger not started ({exc}); run 'make postgres' and try again")
    clients: dict[str, Client] = {}
    scenario: Scenario | None = None
    try:
        for org in index.organisations.values():
            # The sample organisations sign with their published demo keys (deploy/demo-keys).
            key = operator.demo_keys / f"{org.id}.key"
            signing = (
                {"signing_key": key, "signing_kid": org.signing_keys[-1].kid}
                if key.exists() and org.signing_keys
                else {"sign": False}
            )
            clients[org.id] = await Client.connect(
                org.id, urls[org.broker_account], trusted_keys=trusted, **signing
            )
        scenario = Scenario(clients, out)
        await scenario.listen()
        await play(scenario)
        _summarise(scenario)
        out("")
        out(f"health   {stage.base_url}/healthz")
        out(f"ready    {stage.base_url}/readyz")
        out(f"metrics  {stage.base_url}/metrics")
        out("refused originals: liaison dead-letters list")
        if ledger is not None:
            out(f"console  {ledger.base_url}/  (search, timelines, dead letters, replay)")
        if not args.once:
            # Handlers first: a Ctrl-C sent the moment the line appears must find them.
            with _stop_on_signals() as stop:
                out("the hub keeps running; press Ctrl-C to stop")
                await stop.wait()
    finally:
        if scenario is not None:
            await scenario.stop()
        for client in clients.values():
            await client.close()
        await stage.stop()
        if ledger is not None:
            await ledger.stop()
    out("stopped: hub and clients closed")
    return 0


def _summarise(scenario: Scenario) -> None:
    out("\nSummary")
    rows = [("MESSAGE", "FROM", "DELIVERED", "REFUSED")]
    for label, outcome in scenario.outcomes.items():
        refused = ", ".join(f"{int(r.code)} {r.name}" for r in outcome.refusals) or "-"
        rows.append((label, outcome.sender, str(len(outcome.delivered_to)), refused))
    for line in table(rows):
        out("  " + line)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signum)
