"""The demo's story, played by SDK clients, one per organisation, through the real hub.

Near Bouar on the RN3 (MINUSCA, Central African Republic): MAG finds a mine and reports it;
UNMAS warns everyone in the mission area (flash) and closes the route; the mission tasks MAG
with clearance and asks the troop contributors for equipment; Bangladesh commits engineers;
receipts and a sitrep follow; two partners get something wrong and are told why.
"""

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec

from liaison.cli.render import message_line
from liaison.schemas.examples import example
from liaison.schemas.messages import hazards as hz
from liaison.schemas.messages import operations as op
from liaison.schemas.messages import resources as rs
from liaison.schemas.messages.system import AckLevel
from liaison.schemas.types import Classification, Precedence
from liaison.sdk import Client, Delivery, Inbox, Refusal

INCIDENT = "MINUSCA-INC-DEMO-RN3"
_B = TypeVar("_B")
Print = Callable[[str], None]


@dataclass
class Outcome:
    """What happened to one sent message."""

    label: str
    sender: str
    distribution_id: str
    delivered_to: list[str] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


@dataclass
class Scenario:
    """The clients, what each inbox received, and what happened to each message."""

    clients: dict[str, Client]
    out: Print
    received: dict[str, list[tuple[str, Delivery]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    arrivals: asyncio.Event = field(default_factory=asyncio.Event)

    async def listen(self) -> None:
        """Read every organisation's inbox, acknowledging and filing each delivery."""
        for org, client in self.clients.items():
            inbox = await client.inbox()
            self.background.append(asyncio.create_task(self._drain(org, inbox)))

    async def _drain(self, org: str, inbox: Inbox) -> None:
        async for delivery in inbox:
            await delivery.ack()
            report = delivery.error_report
            key = (
                report.ref_distribution_id or ""
                if report is not None
                else delivery.envelope.distribution_id
            )
            self.received[key].append((org, delivery))
            self.arrivals.set()

    async def stop(self) -> None:
        """Stop the inbox readers."""
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)

    async def send(self, label: str, sender: str, send: Awaitable[str]) -> Outcome:
        """Send, wait until deliveries stop arriving, and print who got it or why not."""
        distribution_id = await send
        outcome = Outcome(label, sender, distribution_id)
        self.outcomes[label] = outcome
        await self._settle(distribution_id)
        first = True
        copies: list[Delivery] = []
        reports: list[Delivery] = []
        for org, delivery in self.received.get(distribution_id, []):
            report = delivery.error_report
            if report is not None and org == sender:
                outcome.refusals.append(report)
                reports.append(delivery)
                continue
            outcome.delivered_to.append(org)
            copies.append(delivery)
            if first:
                self.out("  " + message_line(delivery.envelope))
                first = False
        if outcome.delivered_to:
            names = ", ".join(sorted(outcome.delivered_to))
            self.out(f"    delivered to {len(outcome.delivered_to)}: {names}")
            verified = sum(1 for copy in copies if copy.verified)
            kid = copies[0].signature_kid
            self.out(f"    signed ({kid}); signature verified by {verified} of {len(copies)}")
        for report, copy in zip(outcome.refusals, reports, strict=True):
            at = f" at {report.field_path}" if report.field_path else ""
            self.out(f"    REFUSED {int(report.code)} {report.name}{at}: {report.reason}")
            signer = f"signed by {copy.signed_by}" if copy.verified else "not verified"
            self.out(f"    (the report is {signer}, key {copy.signature_kid})")
        return outcome

    async def _settle(self, distribution_id: str, quiet: float = 0.4, limit: float = 8.0) -> None:
        deadline = time.monotonic() + limit
        last = -1
        while time.monotonic() < deadline:
            count = len(self.received.get(distribution_id, []))
            if count and count == last:
                return
            last = count
            self.arrivals.clear()
            try:
                await asyncio.wait_for(self.arrivals.wait(), quiet)
            except TimeoutError:
                if count:
                    return

    def delivery(self, distribution_id: str, org: str) -> Delivery:
        """What ``org`` received of ``distribution_id``."""
        for who, delivery in self.received.get(distribution_id, []):
            if who == org:
                return delivery
        raise LookupError(f"{org} did not receive {distribution_id}")


async def play(scenario: Scenario) -> None:
    """The story, step by step."""
    c, out = scenario.clients, scenario.out
    now = datetime.now(UTC)

    out("\n1. MAG, a demining NGO, finds an anti-vehicle mine near the RN3 and reports it")
    spot = _body("hazard.eo_spot_report", hz.EoSpotReport, found_at=now - timedelta(minutes=20))
    report = await scenario.send(
        "eo_spot_report",
        "mag",
        c["mag"].send(
            spot,
            recipients=["group:icg-ma", "org:minusca"],
            precedence=Precedence.IMMEDIATE,
            incident_id=INCIDENT,
        ),
    )

    out("\n2. UNMAS warns everyone in the mission area (flash) and closes the route")
    alert = _body("hazard.alert", hz.HazardAlert, effective=now, expires=now + timedelta(hours=48))
    await scenario.send(
        "hazard_alert",
        "unmas",
        c["unmas"].send(
            alert,
            recipients=["mission:minusca"],
            precedence=Precedence.FLASH,
            incident_id=INCIDENT,
            ttl=timedelta(hours=48),
        ),
    )
    closure = _body(
        "access.restriction", hz.AccessRestriction, valid_from=now, valid_until=now + timedelta(3)
    )
    await scenario.send(
        "access_restriction",
        "unmas",
        c["unmas"].send(closure, recipients=["mission:minusca"], precedence=Precedence.PRIORITY),
    )

    out("\n3. MINUSCA tasks MAG with clearance and asks troop contributors for equipment")
    order = _body("tasking.order", op.TaskingOrder, due=now + timedelta(days=4))
    order = msgspec.structs.replace(order, assignee="mag", task_type=op.TaskType.CLEARANCE)
    tasking = await scenario.send(
        "tasking_order",
        "minusca",
        c["minusca"].send(
            order,
            recipients=["org:mag"],
            precedence=Precedence.PRIORITY,
            incident_id=INCIDENT,
            in_reply_to=report.distribution_id,
        ),
    )
    request = msgspec.structs.replace(
        _body("resource.request", rs.ResourceRequest, needed_by=now + timedelta(days=3)),
        request_id="MINUSCA-RR-DEMO-1",
        category=rs.ResourceCategory.EQUIPMENT,
        items=[rs.ResourceItem(description="Mine-protected vehicle", quantity=2, unit="each")],
        delivery_location_desc="MINUSCA Sector West HQ, Bouar",
        justification="Route verification on the RN3 needs mine-protected transport.",
    )
    asked = await scenario.send(
        "resource_request",
        "minusca",
        c["minusca"].send(request, recipients=["group:minusca-tcc"], incident_id=INCIDENT),
    )

    out("\n4. Bangladesh (troop contributor, engineers) commits the vehicles")
    commit = rs.ResourceResponse(
        request_id="MINUSCA-RR-DEMO-1",
        decision=rs.Decision.COMMIT,
        items=[rs.ResourceItem(description="Mine-protected vehicle", quantity=2, unit="each")],
        eta=now + timedelta(hours=36),
        conditions="With a BANENGCOY route clearance section.",
    )
    response = await scenario.send(
        "resource_response",
        "gov-bangladesh",
        c["gov-bangladesh"].send(
            commit, recipients=["org:minusca"], in_reply_to=asked.distribution_id
        ),
    )

    out("\n5. Receipts go back to the senders, and the mission reports to DPKO")
    await scenario.send(
        "receipt_unmas",
        "unmas",
        scenario.delivery(report.distribution_id, "unmas").receipt(AckLevel.RECEIVED),
    )
    await scenario.send(
        "receipt_mag",
        "mag",
        scenario.delivery(tasking.distribution_id, "mag").receipt(
            AckLevel.ACCEPTED, note="Team 3 deploys at 06:00."
        ),
    )
    await scenario.send(
        "receipt_minusca",
        "minusca",
        scenario.delivery(response.distribution_id, "minusca").receipt(AckLevel.PROCESSED),
    )
    sitrep = op.Sitrep(
        period_start=now - timedelta(hours=24),
        period_end=now,
        component=op.Component.MINE_ACTION,
        mission="minusca",
        summary="AV mine reported on RN3 by MAG; route closed; clearance tasked; "
        "Bangladesh commits two mine-protected vehicles.",
    )
    await scenario.send(
        "sitrep",
        "minusca",
        c["minusca"].send(
            sitrep, recipients=["org:dpko"], classification=Classification.CONFIDENTIAL
        ),
    )

    out("\n6. Two partners get it wrong, and the hub tells them why")
    await scenario.send(
        "not_permitted",
        "gov-car",
        c["gov-car"].send(alert, recipients=["mission:minusca"], precedence=Precedence.FLASH),
    )
    bad = msgspec.to_builtins(example("hazard.eo_spot_report"))
    bad.update(sender="nrc", distribution_id="nrc-demo-bad-1", recipients=["org:unmas"])
    bad["sent_at"] = now.isoformat()
    bad["body"]["quantity"] = 0
    await scenario.send(
        "invalid",
        "nrc",
        _published(c["nrc"].publish_bytes(msgspec.json.encode(bad)), "nrc-demo-bad-1"),
    )


async def _published(publish: Awaitable[None], distribution_id: str) -> str:
    await publish
    return distribution_id


def _body(type_name: str, cls: type[_B], **changes: object) -> _B:
    body = msgspec.structs.replace(example(type_name).body, **changes)
    assert isinstance(body, cls)
    return body
