"""The audit queue never drops a copy silently: full, it refuses, and the sender hears of it."""

import asyncio
from urllib.parse import quote

import aio_pika
import pytest

from liaison.common.topology import build_topology
from liaison.schemas.wire import AUDIT_QUEUE, DEAD_LETTER_QUEUE, HEADER_ERROR_CODE, inbox_queue
from tests.conftest import management
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, decode, drain, envelope

pytestmark = pytest.mark.broker


async def policy_applied(vhost: str) -> None:
    """Wait until the broker reports the tiny-audit policy in force on the audit queue."""
    path = f"/queues/{quote(vhost, safe='')}/{quote(AUDIT_QUEUE, safe='')}"
    for _ in range(100):
        queue = await management("GET", path)
        assert isinstance(queue, dict)
        if (queue.get("effective_policy_definition") or {}).get("max-length") == 3:
            await asyncio.sleep(0.5)  # the queue's replicas apply it just after
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the tiny-audit policy never applied")


def test_audit_queue_refuses_when_full_instead_of_dropping() -> None:
    """The audit queue's overflow is reject-publish, never drop-head (which loses the oldest)."""
    (audit,) = [q for q in build_topology({"mag": 100}).queues if q.name == AUDIT_QUEUE]
    assert audit.arguments["x-overflow"] == "reject-publish"
    assert audit.arguments["x-max-length"] > 0


async def test_full_audit_queue_keeps_its_oldest_and_refuses_loudly(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: aio_pika.abc.AbstractConnection,
    vhost: str,
) -> None:
    """With the audit queue at a tiny length (this run's vhost, a policy), the first copies stay
    in it and every later delivery is refused by the broker: its sender gets an error report
    and the original is kept as a dead letter, so every message is accounted for."""
    policy = f"/policies/{quote(vhost, safe='')}/tiny-audit"
    await management(
        "PUT",
        policy,
        {"pattern": "^liaison\\.audit$", "apply-to": "queues", "definition": {"max-length": 3}},
    )
    try:
        await policy_applied(vhost)
        docs = [envelope("mag", ["org:unmas"]) for _ in range(12)]
        for doc in docs:
            await partners["mag"].send(doc)
        # Most of the 12 find the audit queue full. Read the answers before the audit
        # queue: taking copies out of it would make room for later deliveries.
        reports = await drain(admin, inbox_queue("mag"), expect=4, timeout=20, settle=2.0)
        dead = await drain(admin, DEAD_LETTER_QUEUE, expect=4, timeout=20, settle=1.0)
        audited = await drain(admin, AUDIT_QUEUE, expect=3)
    finally:
        await management("DELETE", policy)
    # Quorum queues enforce max-length lazily: under load a few more copies slip in.
    kept = len(audited)
    later = {d["distribution_id"] for d in docs[kept:]}
    assert 3 <= kept < len(docs) - 2, "the audit queue refused (nearly) nothing"
    audited_ids = [decode(m)["distribution_id"] for m in audited]
    assert audited_ids == [d["distribution_id"] for d in docs[:kept]], "the oldest are kept"
    bodies = [decode(r)["body"] for r in reports]
    assert {b["ref_distribution_id"] for b in bodies} == later, "every later delivery answered"
    # 502 delivery refused; the report itself is audited too and refused while the queue is
    # full, so the hub retries the original until its delivery limit and answers 503 last.
    assert {b["code"] for b in bodies} <= {502, 503}
    assert {decode(m)["distribution_id"] for m in dead} == later
    assert {m.headers[HEADER_ERROR_CODE] for m in dead} <= {502, 503}
