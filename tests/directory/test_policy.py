"""A partner's published policy is what the hub enforces: checked against Router.decide."""

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from liaison.cli.__main__ import main
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.directory.policy import PartnerPolicy, markdown, partner_policy
from liaison.hub.decisions import Delivery, Refusal, Verdict
from liaison.hub.router import Router
from liaison.schemas.catalogue import PARTNER_TYPES
from liaison.schemas.codes import ErrorCode
from liaison.schemas.types import Classification
from tests.hub.support import demo_signature, envelope, sample_body

SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"
ORG = "mag"


@pytest.fixture(scope="module")
def index() -> DirectoryIndex:
    """The sample directory."""
    return load_directory(SAMPLE)


@pytest.fixture(scope="module")
def policy(index: DirectoryIndex) -> PartnerPolicy:
    """mag's policy."""
    return partner_policy(index, ORG)


def _decide(index: DirectoryIndex, message_type: str, recipients: list[str], **kw: Any) -> Verdict:
    router = Router(index, max_message_bytes=1 << 18)
    raw = msgspec.json.encode(envelope(ORG, recipients, body=sample_body(message_type), **kw))
    return router.decide(
        raw,
        user_id=ORG,
        routing_key=ORG,
        content_type="application/json",
        signature=demo_signature(ORG, raw),
    )


def test_policy_covers_every_partner_type_once(policy: PartnerPolicy) -> None:
    """Each partner type is sendable, listed as not, or a reply with its own rule (ack, status)."""
    sendable = [entry.type for entry in policy.sends]
    assert sorted(sendable + policy.may_not_send + policy.replies) == sorted(PARTNER_TYPES)
    assert policy.replies == ["ack", "status.request"]
    assert policy.clearance is Classification.UNCLASSIFIED


def test_listed_addresses_are_delivered_whole(index: DirectoryIndex, policy: PartnerPolicy) -> None:
    """Every address listed for a type is delivered with nothing refused."""
    checked = 0
    for entry in policy.sends:
        for address in entry.addresses:
            decision = _decide(index, entry.type, [address])
            assert isinstance(decision, Delivery), (entry.type, address, decision)
            assert decision.partial is None, (entry.type, address, decision.partial)
            checked += 1
    assert checked > 100


def test_partly_addresses_deliver_to_the_listed_members(
    index: DirectoryIndex, policy: PartnerPolicy
) -> None:
    """A `partly` address reaches exactly the members listed; the rest are refused with 204."""
    partly = [(e.type, a, m) for e in policy.sends for a, m in e.partly.items()]
    assert partly, "the sample directory has addresses mag may reach only in part"
    for message_type, address, members in partly:
        decision = _decide(index, message_type, [address])
        assert isinstance(decision, Delivery), (message_type, address, decision)
        assert decision.recipients == members
        assert decision.partial is not None
        assert decision.partial.code is ErrorCode.RECIPIENT_NOT_PERMITTED


def test_types_not_listed_are_refused_203(index: DirectoryIndex, policy: PartnerPolicy) -> None:
    """Every type the policy says mag may not send is refused with 203."""
    assert policy.may_not_send
    for message_type in policy.may_not_send:
        decision = _decide(index, message_type, ["org:unmas"])
        assert isinstance(decision, Refusal)
        assert decision.code is ErrorCode.TYPE_NOT_PERMITTED


def test_cleared_lists_are_who_receives_each_classification(
    index: DirectoryIndex, policy: PartnerPolicy
) -> None:
    """Sent to every permitted organisation, a classification reaches exactly its cleared list."""
    for entry in policy.sends:
        everyone = [f"org:{org}" for org in entry.cleared[Classification.UNCLASSIFIED]]
        for level, cleared in entry.cleared.items():
            decision = _decide(index, entry.type, everyone, classification=level.value)
            assert isinstance(decision, Delivery), (entry.type, level)
            assert decision.recipients == cleared


def test_cli_prints_the_policy(policy: PartnerPolicy, capsys: pytest.CaptureFixture[str]) -> None:
    """`liaison partner policy mag` prints the Markdown; --json the same policy as JSON."""
    assert main(["partner", "--directory", str(SAMPLE), "policy", ORG]) == 0
    assert capsys.readouterr().out == markdown(policy)
    assert main(["partner", "--directory", str(SAMPLE), "policy", ORG, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert msgspec.convert(printed, PartnerPolicy) == policy


def test_cli_refuses_an_unknown_organisation(capsys: pytest.CaptureFixture[str]) -> None:
    """An organisation not in the directory is exit 1 with one line naming it."""
    assert main(["partner", "--directory", str(SAMPLE), "policy", "no-such-org"]) == 1
    assert "no organisation 'no-such-org'" in capsys.readouterr().err
