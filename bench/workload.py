"""The workload: a bench copy of the directory, and N realistic envelopes encoded up front.

Every partner message type's published example (``error.report`` is the hub's own, so a partner
sending one is a refusal, not a delivery) is re-addressed: a sender the policy lets send that type,
and 1 to 5 ``org:`` recipients it may send it to and who are cleared for its classification. Each
message is checked against the hub's own router before the run, so every one is a full delivery
and the expected inbox totals are exact.
"""

import dataclasses
import random
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from liaison.directory.index import HUB_ONLY_TYPES, REPLY_TYPES, DirectoryIndex, load_directory
from liaison.hub.decisions import Delivery
from liaison.hub.router import Router
from liaison.schemas.envelope import Envelope, encode
from liaison.schemas.examples import EXAMPLES
from liaison.schemas.types import Precedence
from liaison.schemas.wire import flash_inbox_queue, inbox_queue
from liaison.sdk.signing import load_private_key, sign

SAMPLE_DIRECTORY = Path(__file__).resolve().parents[1] / "deploy" / "directory.toml"
DEMO_KEYS = SAMPLE_DIRECTORY.parent / "demo-keys"
#: Every type a partner sends, but ack: an ack must refer to a message the hub delivered to its
#: sender, and a preloaded workload cannot put an ack after its original, which is in another
#: sender's shard and decided concurrently.
# Receipts (ack) and status requests have their own rules (a real original, the ledger).
MIX = [t for t in EXAMPLES if t not in HUB_ONLY_TYPES | REPLY_TYPES]
INBOX_MAX_LENGTH = 2_000_000


def write_directory(run_id: str, path: Path, *, signed: bool = False) -> DirectoryIndex:
    """The sample directory with run-unique accounts and room for a long run in each inbox.

    Unless ``signed``, every organisation may send unsigned (``when_present``): the workload is
    published unsigned. ``signed`` keeps the sample's ``signatures = "required"``
    (``bench/hub_signing.py`` publishes the workload signed with ``deploy/demo-keys``).
    """
    raw: dict[str, Any] = tomllib.loads(SAMPLE_DIRECTORY.read_text())
    for org in raw["organisations"]:
        org["account"] = f"bench-{run_id}-{org['id']}"
        org["inbox_max_length"] = INBOX_MAX_LENGTH
        if not signed:
            org["signatures"] = "when_present"
    raw["hub_account"] = f"bench-{run_id}-hub"
    path.write_text(tomli_w.dumps(raw))
    return load_directory(path)


@dataclass(frozen=True, slots=True)
class Message:
    """One precomputed partner message."""

    sender: str
    account: str
    envelope: Envelope
    body: bytes
    #: Inbox queues the hub delivers it to.
    inboxes: tuple[str, ...]
    #: The ``x-liaison-signature`` value it is published with (None: unsigned).
    signature: str | None = None


def sign_messages(messages: list[Message]) -> list[Message]:
    """``messages`` signed by their senders' demo keys (``deploy/demo-keys``), as the SDK signs."""
    keys = {
        sender: load_private_key(DEMO_KEYS / f"{sender}.key")
        for sender in {m.sender for m in messages}
    }
    return [
        dataclasses.replace(m, signature=sign(m.body, keys[m.sender], f"{m.sender}-demo-2026"))
        for m in messages
    ]


def _candidates(
    index: DirectoryIndex, message_type: str, example: Envelope
) -> dict[str, list[str]]:
    """sender -> organisations it may send ``message_type`` to, cleared for the example."""
    cleared = index.cleared_for(example.classification)
    out: dict[str, list[str]] = {}
    for sender in sorted(index.organisations):
        allowed = set(index.permitted_recipients(sender, message_type))
        allowed = (allowed & cleared) - {sender}
        if allowed:
            out[sender] = sorted(allowed)
    return out


def build_messages(
    index: DirectoryIndex, count: int, *, seed: int, prefix: str, now: datetime | None = None
) -> list[Message]:
    """``count`` messages cycling through the type mix, each checked against the router."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not security
    now = now or datetime.now(UTC)
    tables = {t: _candidates(index, t, EXAMPLES[t]) for t in MIX}
    router = Router(index, max_message_bytes=1 << 20)
    out: list[Message] = []
    for i in range(count):
        message_type = MIX[i % len(MIX)]
        example = EXAMPLES[message_type]
        table = tables[message_type]
        sender = rng.choice(sorted(table))
        chosen = rng.sample(table[sender], min(len(table[sender]), rng.randint(1, 5)))
        envelope = msgspec.structs.replace(
            example,
            distribution_id=f"{prefix}-{i:07d}",
            sender=sender,
            sent_at=now,
            expires_at=None,
            recipients=[f"org:{org}" for org in chosen],
        )
        encoded = encode(envelope)
        account = index.organisations[sender].broker_account
        decision = router.decide(
            encoded, user_id=account, routing_key=sender, content_type="application/json"
        )
        if not isinstance(decision, Delivery) or decision.partial is not None:
            raise AssertionError(
                f"bench message {i} ({message_type}) is not a delivery: {decision}"
            )
        flash = envelope.precedence is Precedence.FLASH
        inboxes = tuple(flash_inbox_queue(o) if flash else inbox_queue(o) for o in sorted(chosen))
        out.append(Message(sender, account, envelope, encoded, inboxes))
    return out


def with_sent_at(message: Message, sent_at: datetime) -> bytes:
    """The message's body stamped with ``sent_at`` (for latency: stamped at publish time)."""
    return encode(msgspec.structs.replace(message.envelope, sent_at=sent_at))


class _SentAt(msgspec.Struct):
    sent_at: datetime


_sent_at_decoder = msgspec.json.Decoder(_SentAt)


def sent_at_of(body: bytes) -> float:
    """The POSIX time a body was stamped with."""
    return _sent_at_decoder.decode(body).sent_at.timestamp()
