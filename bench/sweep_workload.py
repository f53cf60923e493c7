"""The sweep's workload: a mission of 48 organisations, and messages of a chosen shape.

A shape is (recipients, body kind, body size). Recipients are ``org:`` addresses, or
``mission:sweep`` for the whole mission (47 recipients besides the sender). Body kinds:

- ``text``: a ``sitrep`` whose summary and sections carry prose (ASCII), up to the contract's
  33 text fields of 4,000 characters (about 130 KB);
- ``coords``: a ``hazard.alert`` whose areas carry GeoJSON polygons of random positions with six
  decimals, up to the hub's size limit (256 KiB).
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from bench.peers import route
from bench.workload import Message
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.hub.decisions import Delivery
from liaison.hub.router import Router
from liaison.schemas.envelope import Envelope, encode
from liaison.schemas.examples import EXAMPLES
from liaison.schemas.messages import hazards as hz
from liaison.schemas.messages import operations as ops
from liaison.schemas.types import Polygon
from liaison.schemas.wire import MAX_MESSAGE_BYTES, inbox_queue

ORGANISATIONS = 48
MISSION = "sweep"
#: "mission" in a point's recipients means the mission-wide address.
MISSION_WIDE = "mission"
SENDERS = 4
INBOX_MAX_LENGTH = 2_000_000
KINDS = ("text", "coords")
_PROSE = (
    "Patrol reports the road between the two villages open to light vehicles; the bridge at the "
    "river crossing remains closed pending an engineering survey. Markings placed around the "
    "suspected area were found intact. "
)
#: Positions per ring: the contract allows 2,000; rings of 1,000 keep areas many and small.
_RING = 1000


@dataclass(frozen=True, slots=True)
class Shape:
    """What one sweep point sends: ``recipients`` (a count, or MISSION_WIDE), body kind, KB."""

    recipients: int | str
    kind: str
    kb: float

    @property
    def label(self) -> str:
        return f"{self.recipients}r-{self.kind}-{self.kb:g}kb"


def org_id(n: int) -> str:
    return f"s{n:02d}"


def write_directory(run_id: str, path: Path) -> DirectoryIndex:
    """48 NGOs in mission ``sweep``; anyone may send sitreps and hazard alerts to anyone."""
    raw: dict[str, Any] = {
        "version": 1,
        "hub_account": f"bench-{run_id}-hub",
        "organisations": [
            {
                "id": org_id(n),
                "name": f"Sweep partner {n}",
                "kind": "ngo",
                "account": f"bench-{run_id}-{org_id(n)}",
                "missions": [MISSION],
                "inbox_max_length": INBOX_MAX_LENGTH,
            }
            for n in range(ORGANISATIONS)
        ],
        "rules": [
            {
                "description": "The sweep's traffic: reports and alerts, anyone to anyone",
                "types": ["sitrep", "hazard.alert"],
                "senders": {"any": True},
                "recipients": {"any": True},
            }
        ],
    }
    path.write_text(tomli_w.dumps(raw))
    return load_directory(path)


def _text_body(size: int, now: datetime) -> ops.Sitrep:
    # 4,000-character sections until the size is reached (the envelope adds ~600 bytes).
    text = (_PROSE * (4000 // len(_PROSE) + 1))[:4000]
    remaining = max(64, size - 700)
    summary = text[: min(4000, remaining)]
    remaining -= len(summary)
    sections = []
    while remaining > 0 and len(sections) < 32:
        chunk = text[: min(4000, max(16, remaining - 40))]
        sections.append(ops.SitrepSection(heading=f"Section {len(sections) + 1}", text=chunk))
        remaining -= len(chunk) + 40
    example = EXAMPLES["sitrep"].body
    assert isinstance(example, ops.Sitrep)
    return msgspec.structs.replace(
        example,
        period_start=now - timedelta(hours=24),
        period_end=now,
        summary=summary,
        sections=sections,
    )


def _coords_body(size: int, rng: random.Random) -> hz.HazardAlert:
    # About 22 bytes a position ("[-12.345678,45.678901],"); areas of one ring each.
    positions = max(4, (size - 900) // 22)
    areas = []
    while positions > 0 and len(areas) < 16:
        count = max(4, min(_RING, positions))
        lon, lat = rng.uniform(14, 27), rng.uniform(2, 11)
        ring = [
            (round(lon + rng.uniform(-0.5, 0.5), 6), round(lat + rng.uniform(-0.5, 0.5), 6))
            for _ in range(count - 1)
        ]
        ring.append(ring[0])
        areas.append(
            hz.AlertArea(
                area_desc=f"Suspected area {len(areas) + 1}",
                polygon=Polygon(coordinates=[ring]),
            )
        )
        positions -= count
    example = EXAMPLES["hazard.alert"].body
    assert isinstance(example, hz.HazardAlert)
    return msgspec.structs.replace(example, area=areas)


def build_messages(
    index: DirectoryIndex, shape: Shape, count: int, *, prefix: str, seed: int = 11
) -> list[Message]:
    """``count`` messages of ``shape`` from 4 senders in turn; the first is checked against the
    hub's router (a full delivery to exactly the expected inboxes)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not security
    now = datetime.now(UTC)
    size = int(shape.kb * 1024)
    body = _text_body(size, now) if shape.kind == "text" else _coords_body(size, rng)
    example = EXAMPLES["sitrep" if shape.kind == "text" else "hazard.alert"]
    out: list[Message] = []
    for i in range(count):
        sender = i % SENDERS
        others = [org_id((sender + k) % ORGANISATIONS) for k in range(1, ORGANISATIONS)]
        if shape.recipients == MISSION_WIDE:
            recipients, orgs = [f"mission:{MISSION}"], others
        else:
            assert isinstance(shape.recipients, int)
            orgs = others[: shape.recipients]
            recipients = [f"org:{o}" for o in orgs]
        envelope = msgspec.structs.replace(
            example,
            distribution_id=f"{prefix}-{i:06d}",
            sender=org_id(sender),
            sent_at=now,
            expires_at=None,
            recipients=recipients,
            classification=example.classification.UNCLASSIFIED,
            precedence=example.precedence.ROUTINE,
            body=body,
        )
        encoded = encode(envelope)
        account = index.organisations[org_id(sender)].broker_account
        if i == 0:
            _check(index, envelope, encoded, account, orgs)
        inboxes = tuple(inbox_queue(o) for o in sorted(orgs))
        out.append(Message(org_id(sender), account, envelope, encoded, inboxes))
    return out


def _check(
    index: DirectoryIndex, envelope: Envelope, encoded: bytes, account: str, orgs: list[str]
) -> None:
    if len(encoded) > MAX_MESSAGE_BYTES:
        raise AssertionError(f"{len(encoded)} bytes is over the hub's limit")
    router = Router(index, max_message_bytes=MAX_MESSAGE_BYTES)
    decision = router.decide(
        encoded, user_id=account, routing_key=envelope.sender, content_type="application/json"
    )
    if not isinstance(decision, Delivery) or sorted(decision.recipients) != sorted(orgs):
        raise AssertionError(f"sweep message is not a delivery to {len(orgs)}: {decision}")


def delivery_keys(message: Message) -> list[str]:
    """The keys the shovel's CC header carries: one per recipient inbox."""
    orgs = [q.removeprefix("inbox.") for q in message.inboxes]
    key, headers = route([f"org:{o}" for o in orgs], "routine")
    return [key, *headers.get("BCC", [])]
