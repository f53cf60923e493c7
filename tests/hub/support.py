"""Test helpers for the hub: envelopes, partners that publish as themselves, inbox readers."""

import asyncio
import functools
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import msgspec

from liaison.hub.transport import FrameStream
from liaison.schemas.examples import example
from liaison.schemas.wire import HEADER_SIGNATURE, INGRESS_EXCHANGE
from liaison.sdk.signing import Ed25519PrivateKey, load_private_key, sign

PASSWORD = "test-partner-password"
#: The sample directory's organisations sign with these (deploy/demo-keys/README.md).
DEMO_KEYS = Path(__file__).resolve().parents[2] / "deploy" / "demo-keys"


def demo_kid(org: str) -> str:
    """The kid of ``org``'s key in the sample directory."""
    return f"{org}-demo-2026"


@functools.cache
def demo_key(org: str) -> Ed25519PrivateKey | None:
    """``org``'s private key from the sample directory's demo keys, if it has one."""
    path = DEMO_KEYS / f"{org}.key"
    return load_private_key(path) if path.exists() else None


def demo_signing(org: str) -> dict[str, Any]:
    """``Client.connect`` arguments that sign as ``org`` with its demo key."""
    return {"signing_key": DEMO_KEYS / f"{org}.key", "signing_kid": demo_kid(org)}


def demo_signature(org: str | None, body: bytes) -> str | None:
    """``body`` signed with ``org``'s demo key, as that partner would send it (None: no key)."""
    key = demo_key(org) if org else None
    return None if key is None or org is None else sign(body, key, demo_kid(org))


def now_iso(delta: float = 0.0) -> str:
    """An RFC 3339 timestamp ``delta`` seconds from now."""
    return (datetime.now(UTC) + timedelta(seconds=delta)).isoformat()


def new_id(prefix: str = "d") -> str:
    """A fresh distribution id."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def sample_body(message_type: str = "hazard.eo_spot_report") -> dict[str, Any]:
    """A valid body of ``message_type``, taken from the published examples."""
    doc = msgspec.to_builtins(example(message_type).body)
    assert isinstance(doc, dict)
    return doc


def envelope(
    sender: str,
    recipients: list[str],
    body: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An envelope document as a partner would write it."""
    doc: dict[str, Any] = {
        "schema_version": "1.0",
        "distribution_id": new_id(),
        "sender": sender,
        "sent_at": now_iso(),
        "recipients": recipients,
        "body": body if body is not None else sample_body(),
    }
    doc.update(fields)
    return doc


class Partner:
    """One organisation's connection, publishing to the ingress with its own user_id."""

    def __init__(self, org: str, account: str, connection: aio_pika.abc.AbstractConnection):
        self.org = org
        self.account = account
        self.connection = connection
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def channel(self) -> aio_pika.abc.AbstractChannel:
        """The confirmed channel this partner publishes on."""
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel(publisher_confirms=True)
        return self._channel

    async def send(
        self,
        doc: dict[str, Any] | bytes,
        *,
        user_id: str | bool | None = True,
        content_type: str | None = "application/json",
        routing_key: str | None = None,
        signature: str | bool | None = True,
    ) -> None:
        """Publish one document (dict encoded as JSON, bytes as is) to the ingress.

        ``signature``: True signs with the organisation's demo key (as a partner's SDK does),
        False sends unsigned, a string is sent as the header's value.
        """
        body = doc if isinstance(doc, bytes) else msgspec.json.encode(doc)
        if signature is True:
            signature = demo_signature(self.org, body)
        headers = {HEADER_SIGNATURE: signature} if isinstance(signature, str) else None
        channel = await self.channel()
        exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body,
                content_type=content_type,
                user_id=self.account if user_id is True else (user_id or None),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=headers,
            ),
            routing_key=routing_key or self.org,
        )


async def drain(
    connection: aio_pika.abc.AbstractConnection,
    queue: str,
    *,
    expect: int,
    timeout: float = 10.0,
    settle: float = 0.3,
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Get messages from ``queue`` until ``expect`` arrived (then wait ``settle`` for extras)."""
    channel = await connection.channel()
    q = await channel.get_queue(queue, ensure=False)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    deadline = time.monotonic() + timeout
    extra_deadline: float | None = None
    while True:
        message = await q.get(no_ack=True, fail=False)
        if message is not None:
            got.append(message)
            continue
        now = time.monotonic()
        if len(got) >= expect:
            extra_deadline = extra_deadline or now + settle
            if now >= extra_deadline:
                break
        elif now >= deadline:
            break
        await asyncio.sleep(0.05)
    await channel.close()
    return got


def decode(message: aio_pika.abc.AbstractIncomingMessage) -> dict[str, Any]:
    """The JSON document a delivered message carries."""
    doc = msgspec.json.decode(message.body)
    assert isinstance(doc, dict)
    return doc


def feed(stream: FrameStream, data: bytes) -> None:
    """Hand ``data`` to ``stream`` as its transport would: into the buffer it offers, as much
    as that holds a read, then ``buffer_updated``."""
    rest = memoryview(data)
    while rest and not stream._ended:
        buffer = stream.get_buffer(-1)
        n = min(len(buffer), len(rest))
        buffer[:n] = rest[:n]
        del buffer
        rest = rest[n:]
        stream.buffer_updated(n)
