"""The effects planner without a broker: what each verdict publishes, with which properties,
what the hub then remembers, and that nothing is remembered before the broker confirmed."""

import asyncio
import struct
from pathlib import Path
from typing import Any

import aiormq
import msgspec
import pytest
from pamqp import commands as spec
from pamqp.header import ContentHeader

from liaison.directory.index import DirectoryIndex, load_directory
from liaison.hub.decisions import Delivery, Refusal, Verdict
from liaison.hub.effects import Effects, Memo, Publish, carry_out, memory_key, plan
from liaison.hub.memory import Handled, LocalMemory
from liaison.hub.properties import Properties
from liaison.hub.router import Router
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import (
    DEAD_LETTER_EXCHANGE,
    DELIVERY_EXCHANGE,
    HEADER_ERROR_CODE,
    HEADER_ERROR_FIELD,
    HEADER_ORIGINAL_USER,
    HEADER_POSSIBLE_REPEAT,
    HEADER_SENDER,
    HUB_SENDER,
)
from tests.hub.support import demo_signature, envelope

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"
NOW = 1_795_000_000.0


class FakePublisher:
    """The outbox's interface: records each publish; its confirm is an ack, or a nack."""

    def __init__(self, *, nack_exchange: str | None = None) -> None:
        self.published: list[Publish] = []
        self._nack_exchange = nack_exchange

    def publish(
        self, body: bytes, *, exchange: str, routing_key: str, properties: Properties
    ) -> "asyncio.Future[Any]":
        self.published.append(Publish(exchange, routing_key, properties, body))
        confirm: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if exchange == self._nack_exchange:
            confirm.set_exception(aiormq.exceptions.DeliveryError(None, spec.Basic.Nack()))
        else:
            confirm.set_result(spec.Basic.Ack())
        return confirm


@pytest.fixture(scope="module")
def router() -> Router:
    """A router over the sample directory (accounts are the organisation ids)."""
    sample: DirectoryIndex = load_directory(SAMPLE)
    return Router(sample, max_message_bytes=4096)


def received(user: str | None = "mag", **headers: Any) -> spec.Basic.Properties:
    """The properties an ingress message arrives with."""
    return spec.Basic.Properties(
        content_type="application/json", user_id=user, message_id="m-1", headers=headers or None
    )


def effects_of(
    router: Router,
    raw: bytes,
    handled: Handled | None = None,
    user: str | None = "mag",
    *,
    redelivered: bool = False,
) -> tuple[Verdict, Effects]:
    """Decide ``raw`` as published by ``user`` on routing key ``mag``, and plan its effects."""
    verdict = router.decide(
        raw,
        user_id=user,
        routing_key="mag",
        content_type="application/json",
        signature=demo_signature(user, raw),
    )
    effects = plan(
        verdict,
        handled,
        key=memory_key(verdict, raw),
        original=raw,
        properties=received(user),
        routing_key="mag",
        now=NOW,
        redelivered=redelivered,
    )
    return verdict, effects


def header_of(publish: Publish) -> spec.Basic.Properties:
    """The properties of a planned publish, read back as pamqp reads them off the wire."""
    raw = publish.properties
    if not isinstance(raw, bytes):
        return raw
    header = ContentHeader()
    header.unmarshal(struct.pack(">HHQ", 60, 0, len(publish.body)) + raw)
    return header.properties


def test_delivery_is_one_publish_with_bcc_and_remembers_its_recipients(router: Router) -> None:
    """A group message is one persistent publish (first inbox + BCC), remembered as delivered."""
    raw = msgspec.json.encode(envelope("mag", ["group:mine-action-operators"]))
    verdict, effects = effects_of(router, raw)
    assert isinstance(verdict, Delivery)
    assert effects.outcome == "delivered"
    (publish,) = effects.publishes
    assert (publish.exchange, publish.routing_key, publish.body) == (
        DELIVERY_EXCHANGE,
        "halo-trust",
        raw,
    )
    props = header_of(publish)
    assert props.message_id == verdict.message_id
    assert props.delivery_mode == 2
    assert props.app_id == HUB_SENDER
    assert props.headers is not None
    assert props.headers["BCC"] == ["unmas"]
    assert props.headers[HEADER_SENDER] == "mag"
    assert props.timestamp is not None
    assert props.timestamp.timestamp() == int(NOW)
    assert effects.remember == Memo(verdict.message_id, Handled.DELIVERED, ["halo-trust", "unmas"])


def test_partial_delivery_also_answers_the_sender(router: Router) -> None:
    """Recipients left out are named in an error report to the sender, after the delivery."""
    raw = msgspec.json.encode(
        envelope("dpko", ["mission:minusca"], classification="strictly_confidential")
    )
    verdict, effects = effects_of(router, raw, user="dpko")
    assert isinstance(verdict, Delivery)
    assert effects.outcome == "partial"
    delivery, report = effects.publishes
    assert delivery.routing_key == "minusca"
    assert (report.exchange, report.routing_key) == (DELIVERY_EXCHANGE, "dpko")
    body = msgspec.json.decode(report.body)
    assert body["sender"] == HUB_SENDER
    assert body["body"]["code"] == int(ErrorCode.INSUFFICIENT_CLEARANCE)
    # The address the sender wrote, through which an organisation (unmas) was left out.
    assert body["body"]["refused_recipients"] == ["mission:minusca"]
    assert verdict.partial is not None
    assert "unmas" in verdict.partial.refused_recipients
    assert effects.remember is not None
    assert effects.remember.handled is Handled.DELIVERED


def test_refusal_dead_letters_the_original_then_reports_under_the_remembered_id(
    router: Router,
) -> None:
    """A refusal keeps the original with its reason and answers with the id the memory keeps."""
    raw = msgspec.json.encode(envelope("mag", ["role:nobody"]))
    verdict, effects = effects_of(router, raw)
    assert isinstance(verdict, Refusal)
    assert effects.outcome == "refused"
    dead, report = effects.publishes
    assert (dead.exchange, dead.routing_key, dead.body) == (DEAD_LETTER_EXCHANGE, "mag", raw)
    kept = header_of(dead)
    assert kept.headers is not None
    assert kept.headers[HEADER_ERROR_CODE] == int(ErrorCode.UNKNOWN_RECIPIENT)
    assert kept.headers[HEADER_ERROR_FIELD] == "$.recipients[0]"
    assert kept.headers[HEADER_ORIGINAL_USER] == "mag"
    assert kept.message_id == "m-1"
    assert effects.remember is not None
    key = effects.remember.key
    assert effects.remember.handled is Handled.REFUSED
    assert msgspec.json.decode(report.body)["distribution_id"] == key
    assert header_of(report).message_id == f"{HUB_SENDER}/{key}"


def test_refusal_nobody_can_be_told_of_is_kept_and_remembered(router: Router) -> None:
    """An account outside the directory: only the dead letter, and the memory still records it."""
    raw = msgspec.json.encode(envelope("mag", ["org:unmas"]))
    verdict, effects = effects_of(router, raw, user="stranger")
    assert isinstance(verdict, Refusal)
    assert verdict.reply_to is None
    assert [p.exchange for p in effects.publishes] == [DEAD_LETTER_EXCHANGE]
    assert effects.remember is not None
    assert effects.remember.handled is Handled.REFUSED


def test_report_id_is_the_same_for_a_redelivery_and_differs_by_code(router: Router) -> None:
    """The refusal's memory key depends on what was refused, not on when."""
    raw = msgspec.json.encode(envelope("mag", ["role:nobody"]))
    verdict, _ = effects_of(router, raw)
    again, _ = effects_of(router, raw)
    assert memory_key(verdict, raw) == memory_key(again, raw)
    assert isinstance(verdict, Refusal)
    other = Refusal(ErrorCode.POISON, "x", None, verdict.distribution_id, None, "mag")
    assert memory_key(other, raw) != memory_key(verdict, raw)


@pytest.mark.parametrize(
    "recipients", [["org:unmas"], ["role:nobody"]], ids=["delivery", "refusal"]
)
@pytest.mark.parametrize("redelivered", [False, True])
def test_a_redelivery_nothing_recalls_marks_every_publish_as_a_possible_repeat(
    router: Router, recipients: list[str], redelivered: bool
) -> None:
    """A redelivered message the memory does not know is published again with
    x-liaison-possible-repeat on its copy, report and dead letter; a first delivery is not."""
    raw = msgspec.json.encode(envelope("mag", recipients))
    _, effects = effects_of(router, raw, redelivered=redelivered)
    assert effects.publishes
    for publish in effects.publishes:
        headers = header_of(publish).headers or {}
        assert (headers.get(HEADER_POSSIBLE_REPEAT) == "true") is redelivered
        assert (HEADER_POSSIBLE_REPEAT in headers) is redelivered


@pytest.mark.parametrize("handled", list(Handled))
def test_something_handled_before_publishes_nothing(router: Router, handled: Handled) -> None:
    """A recalled message (republished, or redelivered) is only acked."""
    raw = msgspec.json.encode(envelope("mag", ["org:unmas"]))
    _, effects = effects_of(router, raw, handled=handled)
    assert effects.publishes == []
    assert effects.remember is None
    assert effects.outcome == "duplicate"


async def test_carry_out_publishes_in_order_then_remembers(router: Router) -> None:
    """Every planned publish reaches the publisher in plan order; the memo follows the confirms."""
    raw = msgspec.json.encode(envelope("mag", ["role:nobody"]))
    verdict, effects = effects_of(router, raw)
    publisher = FakePublisher()
    memory = LocalMemory(seconds=60, max_entries=10)
    await carry_out(effects, publisher, memory)
    assert publisher.published == effects.publishes
    assert effects.remember is not None
    assert await memory.recall(effects.remember.key) is Handled.REFUSED
    # Planned again with what the memory now recalls: nothing more to publish.
    key = memory_key(verdict, raw)
    again = plan(
        verdict,
        await memory.recall(key),
        key=key,
        original=raw,
        properties=received(),
        routing_key="mag",
        now=NOW,
    )
    assert again.publishes == []


async def test_nothing_is_remembered_when_the_broker_refuses_a_publish(router: Router) -> None:
    """A nacked delivery raises and leaves the memory untouched, so a retry delivers it."""
    raw = msgspec.json.encode(envelope("mag", ["org:unmas"]))
    verdict, effects = effects_of(router, raw)
    assert isinstance(verdict, Delivery)
    memory = LocalMemory(seconds=60, max_entries=10)
    with pytest.raises(aiormq.exceptions.DeliveryError):
        await carry_out(effects, FakePublisher(nack_exchange=DELIVERY_EXCHANGE), memory)
    assert await memory.recall(verdict.message_id) is None
