"""Bad input at volume and code that fails: the hub answers everything and keeps going."""

import asyncio
import random
from typing import Any
from urllib.parse import quote

import aio_pika
import msgspec
import pytest

from liaison.hub.decisions import Verdict
from liaison.schemas.wire import (
    DEAD_LETTER_QUEUE,
    HEADER_ERROR_CODE,
    HEADER_POSSIBLE_REPEAT,
    inbox_queue,
)
from tests.conftest import management
from tests.hub.conftest import RunningHub, classic_for
from tests.hub.following import admin_following_hub, partners_following_hub  # noqa: F401
from tests.hub.support import Partner, decode, drain, envelope

pytestmark = pytest.mark.broker

Admin = aio_pika.abc.AbstractConnection


def fuzz_payloads(count: int, seed: int) -> list[bytes]:
    """Random bytes, random JSON, and envelopes with one field replaced by junk."""
    rng = random.Random(seed)
    junk: list[Any] = [None, 0, -1, 1e308, "", "x" * 300, [], {}, [1, "a"], {"a": {"b": []}}, True]
    out: list[bytes] = []
    for n in range(count):
        kind = n % 3
        if kind == 0:
            out.append(rng.randbytes(rng.randint(0, 200)))
        elif kind == 1:
            out.append(msgspec.json.encode(rng.choice([*junk, [rng.random()] * 3])))
        else:
            doc = envelope("mag", ["org:unmas"])
            field = rng.choice([*doc.keys(), "body"])
            target = doc["body"] if field == "body" else doc
            key = rng.choice(list(target.keys())) if field == "body" else field
            target[key] = rng.choice(junk)
            out.append(msgspec.json.encode(doc))
    return out


async def test_fuzz_every_message_is_delivered_or_answered(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Random bytes and broken JSON: the hub never stops and answers each one."""
    payloads = fuzz_payloads(240, seed=20261123)
    for payload in payloads:
        await partners["mag"].send(payload)
    reports = await drain(admin, inbox_queue("mag"), expect=1, timeout=5, settle=2.0)
    delivered = await drain(admin, inbox_queue("unmas"), expect=0, settle=0.5)
    assert len(reports) + len(delivered) == len(payloads)
    assert all(decode(r)["body"]["type"] == "error.report" for r in reports)
    dead = await drain(admin, DEAD_LETTER_QUEUE, expect=len(reports))
    assert len(dead) == len(reports)
    assert hub.consumer.ready


async def test_poison_message_is_dead_lettered_and_the_hub_goes_on(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: Admin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message that makes the hub fail every time is dead-lettered as 503; others flow."""
    real = hub.router.route

    def failing(body: bytes, **kwargs: Any) -> Verdict:
        if b"POISON-PILL" in body:
            raise RuntimeError("simulated hub bug")
        return real(body, **kwargs)

    # The routing fails; the router's own poison rule (at the delivery limit) must not.
    monkeypatch.setattr(hub.router, "route", failing)
    poison = envelope("mag", ["org:unmas"], incident_id="POISON-PILL")
    healthy = envelope("mag", ["org:unmas"])
    await partners["mag"].send(poison)
    await partners["mag"].send(healthy)
    (report,) = await drain(admin, inbox_queue("mag"), expect=1, timeout=20)
    assert decode(report)["body"]["code"] == 503
    assert decode(report)["body"]["ref_distribution_id"] == poison["distribution_id"]
    (dead,) = await drain(admin, DEAD_LETTER_QUEUE, expect=1)
    assert dead.headers[HEADER_ERROR_CODE] == 503
    assert b"POISON-PILL" in dead.body
    delivered = await drain(admin, inbox_queue("unmas"), expect=1)
    assert [decode(m)["distribution_id"] for m in delivered] == [healthy["distribution_id"]]
    assert hub.consumer.ready


async def close_hub_connection(vhost: str) -> None:
    """Have the broker close the hub's connection, as an operator (or a network fault) would."""
    for _ in range(100):
        connections = await management("GET", f"/vhosts/{quote(vhost, safe='')}/connections")
        names = [
            c["name"]
            for c in connections  # type: ignore[attr-defined]
            if c.get("client_properties", {}).get("connection_name", "").startswith("liaison-hub")
        ]
        if names:
            break
        await asyncio.sleep(0.2)
    assert names, "the hub's connection never showed up in the management API"
    await management("DELETE", f"/connections/{quote(names[0], safe='')}")


async def test_hub_reconnects_after_its_connection_is_closed(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin, vhost: str
) -> None:
    """When the broker drops the hub's connection, the hub reconnects and delivers again."""
    await close_hub_connection(vhost)
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc)
    (got,) = await drain(admin, inbox_queue("unmas"), expect=1, timeout=20)
    assert decode(got)["distribution_id"] == doc["distribution_id"]
    assert hub.consumer.metrics.reconnects._value.get() >= 1
    assert hub.consumer.ready


@pytest.mark.parametrize(
    ("hub_delivery", "kind"),
    [
        ("confirm", "policies"),
        ("transaction", "policies"),
        ("transaction", "operator-policies"),
    ],
)
async def test_full_inbox_is_answered_as_undeliverable(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: Admin,
    vhost: str,
    kind: str,
    hub_delivery: str,
    request: pytest.FixtureRequest,
) -> None:
    """When a policy (or an operator policy) shrinks a recipient's inbox to 10 and it fills,
    the broker (confirm mode) or the hub's guard, which reads the policy (transaction mode),
    refuses: the sender gets 502, nothing is lost; the guard keeps a headroom of a tenth, so
    that inbox takes 9."""
    if (classic := classic_for(request, hub_delivery)) is not None:
        vhost = classic.vhost
    limit = 10
    policy = f"/{kind}/{quote(vhost, safe='')}/tiny-inbox"
    await management(
        "PUT",
        policy,
        {
            "pattern": "^inbox\\.halo-trust$",
            "apply-to": "queues",
            "definition": {"max-length": limit},
        },
    )
    guarded = hub.consumer.settings.delivery == "transaction"
    try:
        await asyncio.sleep(1.0)  # policies apply to existing queues asynchronously
        if guarded:
            census = hub.consumer.inboxes
            for _ in range(50):
                if census.limit(inbox_queue("halo-trust")) == limit:
                    break
                await asyncio.sleep(0.1)
            assert census.limit(inbox_queue("halo-trust")) == limit, "the policy was not read"
        docs = [envelope("mag", ["org:halo-trust"]) for _ in range(limit + 3)]
        for doc in docs:
            await partners["mag"].send(doc)
        reports = await drain(admin, inbox_queue("mag"), expect=1, timeout=15, settle=1.0)
        delivered = await drain(admin, inbox_queue("halo-trust"), expect=limit - 1)
        dead = await drain(admin, DEAD_LETTER_QUEUE, expect=len(reports))
    finally:
        await management("DELETE", policy)
    # Quorum queues enforce max-length lazily, so one more may slip in; none may go missing.
    delivered_ids = [decode(m)["distribution_id"] for m in delivered]
    bodies = [decode(r)["body"] for r in reports]
    refused_ids = [b["ref_distribution_id"] for b in bodies]
    assert reports
    assert sorted(delivered_ids + refused_ids) == sorted(d["distribution_id"] for d in docs)
    assert all(b["code"] == 502 and b["retryable"] for b in bodies)
    assert len(dead) == len(reports)
    assert all(m.headers[HEADER_ERROR_CODE] == 502 for m in dead)
    if guarded:
        # The hub counts its own copies exactly: up to the limit less a tenth, not one more.
        assert delivered_ids == [d["distribution_id"] for d in docs[: limit - 1]]
    assert hub.consumer.ready


async def test_deeply_nested_documents_get_exactly_one_report_each(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A thousand levels of nesting (as a document, in the body, in an unknown field): one
    error report with a code and one dead letter each; nothing delivered, the hub goes on."""
    doc = envelope("mag", ["org:unmas"])
    encoded = msgspec.json.encode({**doc, "body": "BODY", "x_extra": "EXTRA"})
    deep = b"[" * 1000 + b"]" * 1000
    payloads = [
        b'{"a":' * 1000 + b"1" + b"}" * 1000,
        encoded.replace(b'"BODY"', deep).replace(b'"EXTRA"', b"1"),
        encoded.replace(b'"BODY"', msgspec.json.encode(doc["body"])).replace(b'"EXTRA"', deep),
    ]
    for payload in payloads:
        await partners["mag"].send(payload)
    reports = await drain(admin, inbox_queue("mag"), expect=len(payloads), settle=1.5)
    codes = [decode(r)["body"]["code"] for r in reports]
    assert len(codes) == len(payloads), codes
    assert all(100 <= code < 400 for code in codes), codes
    dead = await drain(admin, DEAD_LETTER_QUEUE, expect=len(payloads), settle=0.5)
    assert sorted(m.body for m in dead) == sorted(payloads)
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []
    assert hub.consumer.ready


def recalled(hub: RunningHub) -> float:
    """Messages the hub found in its memory (outcome ``duplicate``), over every type."""
    return sum(
        sample.value
        for metric in hub.consumer.metrics.messages.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["outcome"] == "duplicate"
    )


# Confirm mode only: there a refusal's publishes are confirmed before its ack leaves, which is
# the window this test opens; in transaction mode they commit with the ack, so it has none.
@pytest.mark.parametrize("hub_delivery", ["confirm"])
async def test_a_redelivered_refusal_is_answered_and_kept_once(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: Admin,
    vhost: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refusals whose publishes were confirmed but whose ack never left (the connection closed)
    come back redelivered: the hub remembers them and publishes no second report or dead letter."""
    unacked: list[int] = []
    monkeypatch.setattr(hub.consumer, "_ack", unacked.append)
    forged = envelope("unmas", ["org:nrc"])  # sent by mag: sender mismatch, 201
    payloads = [b"{not json", msgspec.json.encode(forged)]
    for payload in payloads:
        await partners["mag"].send(payload)
    first = await drain(admin, inbox_queue("mag"), expect=len(payloads), settle=0.5)
    assert len(first) == len(payloads)
    assert unacked, "the refusals were never finished"
    # The reports are out (so their publishes were confirmed); the acks are not: drop the
    # connection, and the broker hands both messages to the reconnected hub again.
    monkeypatch.undo()
    recalled_before = recalled(hub)
    await close_hub_connection(vhost)

    async def both_recalled() -> bool:
        return recalled(hub) - recalled_before >= len(payloads)

    for _ in range(200):
        if await both_recalled():
            break
        await asyncio.sleep(0.1)
    assert await both_recalled(), "the refused messages were not redelivered and recalled"
    again = await drain(admin, inbox_queue("mag"), expect=0, settle=1.0)
    assert again == []
    dead = await drain(admin, DEAD_LETTER_QUEUE, expect=len(payloads), settle=1.0)
    assert sorted(m.body for m in dead) == sorted(payloads)
    assert hub.consumer.ready


async def test_a_copy_published_again_without_a_record_says_it_may_repeat(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: Admin,
    vhost: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Confirm mode's window, opened on purpose: a copy confirmed but neither recorded nor acked
    (a hub stopped there) is published again on redelivery, with the same message id and
    x-liaison-possible-repeat, which the first copy does not carry."""
    unacked: list[int] = []

    async def forget(*_: object) -> None:
        return None

    monkeypatch.setattr(hub.consumer, "_ack", unacked.append)
    monkeypatch.setattr(hub.consumer.memory, "remember", forget)
    await partners["mag"].send(msgspec.json.encode(envelope("mag", ["org:unmas"])))
    (first,) = await drain(admin, inbox_queue("unmas"), expect=1, settle=0.5)
    assert unacked, "the delivery was never finished"
    monkeypatch.undo()
    await close_hub_connection(vhost)
    (again,) = await drain(admin, inbox_queue("unmas"), expect=1, timeout=30, settle=0.5)
    assert again.message_id == first.message_id
    assert HEADER_POSSIBLE_REPEAT not in (first.headers or {})
    assert (again.headers or {}).get(HEADER_POSSIBLE_REPEAT) == "true"
    assert again.body == first.body
