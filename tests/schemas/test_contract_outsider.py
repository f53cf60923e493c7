"""The contract as an outsider reads it: the AsyncAPI document, the guide and the code agree."""

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from contract_helpers import REPO, example_json
from fuzz_decide import make_router

from liaison.directory import index
from liaison.directory.settings import DEFAULT_VHOST
from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.reports import error_report, report_id
from liaison.hub.settings import DEFAULT_AMQP_URL
from liaison.schemas import wire
from liaison.schemas.catalogue import FLASH_TYPES, HUB_ONLY_TYPES, MESSAGE_TYPES, PARTNER_TYPES
from liaison.schemas.codes import CATALOGUE, Delivered, ErrorCode, info
from liaison.schemas.envelope import decode_envelope
from liaison.schemas.generate import GENERATED_DIR
from liaison.schemas.messages.system import ErrorReport
from liaison.schemas.wire import HUB_SENDER

GUIDE = (REPO / "docs" / "partners.md").read_text()


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((GENERATED_DIR / "asyncapi.json").read_text())
    return document


def _types(document: dict[str, Any], refs: list[dict[str, str]]) -> set[str]:
    """The message type names a list of `$ref`s to messages points at."""
    names = set()
    for ref in refs:
        message_id = ref["$ref"].rsplit("/", 1)[-1]
        names.add(document["components"]["messages"][message_id]["name"])
    return names


def _guide_table_row(name: str) -> list[str]:
    """The cells of the guide's row whose first cell is ``name`` (in backticks or not)."""
    for line in GUIDE.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].strip("`") == name:
            return cells
    raise AssertionError(f"the guide has no table row for {name!r}")


def test_vhost_is_one_truth() -> None:
    """Servers, channel bindings, the guide's URLs and the provisioned default name one vhost."""
    document = _asyncapi()
    assert {s["pathname"] for s in document["servers"].values()} == {f"/{wire.VHOST}"}
    vhosts = {
        binding.get("exchange", binding.get("queue", {})).get("vhost")
        for channel in document["channels"].values()
        for binding in [channel["bindings"]["amqp"]]
    }
    assert vhosts == {wire.VHOST}
    assert DEFAULT_VHOST == wire.VHOST
    assert urlsplit(DEFAULT_AMQP_URL).path == f"/{wire.VHOST}"
    guide_urls = re.findall(r"amqps?://[^\s`/\"]+(/[^\s`\",?]*)", GUIDE)
    assert guide_urls, "the guide names no AMQP URL"
    assert set(guide_urls) == {f"/{wire.VHOST}"}
    assert f"virtual host is `{wire.VHOST}`" in GUIDE


def test_error_report_sender_is_the_hub_sender_id() -> None:
    """Example, hub, directory and guide agree: error reports come from sender `liaison`."""
    assert example_json("error.report")["sender"] == wire.HUB_SENDER
    assert HUB_SENDER == index.HUB_SENDER_ID == wire.HUB_SENDER
    assert f"sender `{wire.HUB_SENDER}`" in GUIDE
    assert f"sender `{wire.HUB_SENDER}`" in _asyncapi()["info"]["description"]


def test_partners_may_publish_every_type_but_error_report() -> None:
    """The publish operation and the ingress channel list the partner types, not error.report."""
    document = _asyncapi()
    assert HUB_ONLY_TYPES == index.HUB_ONLY_TYPES == {"error.report", "status.report"}
    publish = document["operations"]["publish"]
    assert _types(document, publish["messages"]) == set(PARTNER_TYPES)
    ingress = document["channels"]["ingress"]["messages"]
    assert _types(document, list(ingress.values())) == set(PARTNER_TYPES)
    assert "error.report" not in PARTNER_TYPES


def test_flash_inbox_gets_only_flash_precedence_types() -> None:
    """The flash inbox lists neither error reports nor receipts; the inbox lists every type."""
    document = _asyncapi()
    flash = document["operations"]["consumeFlashInbox"]
    assert _types(document, flash["messages"]) == set(FLASH_TYPES)
    assert not {"error.report", "ack"} & set(FLASH_TYPES)
    inbox = document["operations"]["consumeInbox"]
    assert _types(document, inbox["messages"]) == set(MESSAGE_TYPES)


def test_publish_binding_and_guide_table_agree() -> None:
    """`mandatory` and `delivery_mode` in the AsyncAPI binding are the guide's table values."""
    binding = _asyncapi()["operations"]["publish"]["bindings"]["amqp"]
    assert binding["mandatory"] is wire.PUBLISH_MANDATORY is True
    assert _guide_table_row("mandatory")[1] == "`true`"
    assert binding["deliveryMode"] == wire.PUBLISH_DELIVERY_MODE
    assert _guide_table_row("delivery_mode")[1].startswith(f"`{wire.PUBLISH_DELIVERY_MODE}`")
    assert (
        "`mandatory` set"
        in _asyncapi()["components"]["messageTraits"]["amqpProperties"]["description"]
    )


@pytest.mark.parametrize(
    ("content_type", "user_id", "code"),
    [
        ("text/plain", "mag", ErrorCode.UNSUPPORTED_CONTENT_TYPE),
        ("application/xml", None, ErrorCode.UNSUPPORTED_CONTENT_TYPE),
        ("application/json", None, ErrorCode.MISSING_USER_ID),
    ],
)
def test_report_names_the_refused_message_whenever_it_can_be_read(
    content_type: str, user_id: str | None, code: ErrorCode
) -> None:
    """A 102 (or 200) report carries the body's distribution id and type in ref_* fields."""
    doc = {**example_json("ack"), "sender": "mag", "distribution_id": "mag-2024-0001"}
    decision = make_router().decide(
        json.dumps(doc).encode(), user_id=user_id, routing_key="mag", content_type=content_type
    )
    assert isinstance(decision, Refusal)
    assert decision.code is code
    encoded = error_report(decision, report=report_id(decision, b""), now=datetime.now(UTC))
    report = decode_envelope(encoded)
    assert isinstance(report.body, ErrorReport)
    assert (report.body.ref_distribution_id, report.body.ref_type) == ("mag-2024-0001", "ack")
    assert report.in_reply_to == "mag-2024-0001"


def _report_for(doc: dict[str, Any], user_id: str) -> ErrorReport:
    """The error report a partner gets for the partial refusal of ``doc``."""
    decision = make_router().decide(
        json.dumps(doc).encode(), user_id=user_id, routing_key=user_id, content_type=None
    )
    assert isinstance(decision, Delivery), decision
    assert decision.partial is not None
    assert info(decision.partial.code).delivered is Delivered.THE_REST
    partial = decision.partial
    encoded = error_report(partial, report=report_id(partial, b""), now=datetime.now(UTC))
    report = decode_envelope(encoded).body
    assert isinstance(report, ErrorReport)
    return report


def test_refused_recipients_are_the_addresses_the_sender_wrote() -> None:
    """A 205 names `org:`, `group:` and `mission:` addresses as written, in the sender's order."""
    recipients = ["org:unmas", "group:icg-ma", "org:minusca", "mission:minusca"]
    doc = {
        **example_json("sitrep"),
        "sender": "dpko",
        "recipients": recipients,
        "classification": "strictly_confidential",
    }
    report = _report_for(doc, "dpko")
    assert report.code == ErrorCode.INSUFFICIENT_CLEARANCE
    # minusca is cleared; unmas (confidential) is reached through the other three.
    assert report.refused_recipients == ["org:unmas", "group:icg-ma", "mission:minusca"]
    assert report.reason.startswith("delivered to ")
    assert "unmas" in report.reason


def test_codes_say_what_was_delivered() -> None:
    """204, 205, 401 and 504 deliver to the rest, 502 may have; the table and the guide say so."""
    partial = {c for c, i in CATALOGUE.items() if i.delivered is Delivered.THE_REST}
    assert partial == {
        ErrorCode.RECIPIENT_NOT_PERMITTED,
        ErrorCode.INSUFFICIENT_CLEARANCE,
        ErrorCode.EXPIRED_UNREAD,
        ErrorCode.NO_INBOX,
    }
    assert info(ErrorCode.DELIVERY_REFUSED).delivered is Delivered.UNKNOWN
    codes_md = (GENERATED_DIR / "codes.md").read_text()
    assert "| retryable | delivered | meaning |" in codes_md
    for entry in CATALOGUE.values():
        row = f"| {entry.code} | `{entry.name}` | {entry.band} | "
        row += f"{'yes' if entry.retryable else 'no'} | {entry.delivered.value} |"
        assert row in codes_md
        assert row in GUIDE
    for value in Delivered:
        assert f"- `{value.value}` — " in codes_md


def test_guide_says_what_the_hub_does_with_fan_out_unknown_fields_and_originals() -> None:
    """Sender left out of its fan-out, unknown fields passed through, which originals are kept."""
    decision = make_router().decide(
        json.dumps(
            {**example_json("sitrep"), "sender": "unmas", "recipients": ["group:icg-ma"]}
        ).encode(),
        user_id="unmas",
        routing_key="unmas",
        content_type=None,
    )
    assert isinstance(decision, Delivery)
    assert "unmas" not in decision.recipients
    assert "**You are left out of your own fan-out**" in GUIDE
    assert "**passed through unchanged**" in GUIDE
    assert "are ignored" not in GUIDE
    assert "The original is not kept in the dead-letter queue (it was delivered)" in GUIDE
