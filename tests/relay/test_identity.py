"""Identity across the relay: a site speaks only for the organisations registered at it."""

from pathlib import Path

import aio_pika
import aiormq
import msgspec
import pytest

from liaison.common.errors import DirectoryError
from liaison.directory.definitions import desired_state
from liaison.directory.index import DirectoryIndex, compile_directory, load_directory
from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.router import Router
from liaison.schemas.codes import ErrorCode
from liaison.schemas.wire import INGRESS_EXCHANGE
from tests.hub.support import demo_signature, envelope
from tests.relay.conftest import Headquarters, drain, needs_root, write_directory


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> DirectoryIndex:
    """The sample directory with sites bria (mag-bria, unmas-bria) and obo (nrc-obo)."""
    return load_directory(write_directory(tmp_path_factory.mktemp("sites")))


def decide(index: DirectoryIndex, sender: str, user: str, routing_key: str) -> object:
    """The hub's verdict on an information request from ``sender`` to unmas."""
    doc = envelope(sender, ["org:unmas"], {"type": "information.request", "question": "Road open?"})
    router = Router(index, max_message_bytes=1 << 16)
    raw = msgspec.json.encode(doc)
    # Signed as the publisher would (the sample requires unmas's signature; site partners here
    # have no keys and may send unsigned).
    signature = demo_signature(routing_key, raw)
    return router.decide(
        raw, user_id=user, routing_key=routing_key, content_type=None, signature=signature
    )


def test_a_site_account_carries_its_own_partners(index: DirectoryIndex) -> None:
    """A message relayed by site-bria for mag-bria is delivered as mag-bria's."""
    verdict = decide(index, "mag-bria", "site-bria", "mag-bria")
    assert isinstance(verdict, Delivery)
    assert verdict.sender == "mag-bria"
    assert verdict.recipients == ["unmas"]


@pytest.mark.parametrize(
    ("sender", "routing_key", "told"),
    [
        ("nrc-obo", "mag-bria", "mag-bria"),  # another site's partner
        ("unmas", "mag-bria", "mag-bria"),  # a headquarters organisation
        ("unmas-bria", "mag-bria", "mag-bria"),  # a partner of the same site, not the publisher
        ("nrc-obo", "nrc-obo", None),  # routing key outside the site (the broker refuses it too)
    ],
)
def test_a_compromised_site_cannot_speak_for_others(
    index: DirectoryIndex, sender: str, routing_key: str, told: str | None
) -> None:
    """Refused with sender_mismatch on $.sender; the report goes only to a partner of the site."""
    verdict = decide(index, sender, "site-bria", routing_key)
    assert isinstance(verdict, Refusal)
    assert verdict.code == ErrorCode.SENDER_MISMATCH
    assert verdict.field_path == "$.sender"
    assert verdict.reply_to == told


def test_direct_accounts_are_judged_as_before(index: DirectoryIndex) -> None:
    """A partner's own account may still not claim to be a site's partner."""
    verdict = decide(index, "mag-bria", "unmas", "unmas")
    assert isinstance(verdict, Refusal)
    assert verdict.code == ErrorCode.SENDER_MISMATCH


def test_site_accounts_get_narrow_rights(index: DirectoryIndex) -> None:
    """site-bria may publish to ingress with its partners' keys and read only their inboxes."""
    state = desired_state(index, "liaison")
    rights = state.permissions["site-bria"]
    assert rights.configure == "^$"
    assert rights.write == r"^liaison\.ingress$"
    assert rights.read == r"^inbox\.(mag\-bria|unmas\-bria)(\.flash)?$"
    assert state.topic_permissions["site-bria"].write == r"^(mag\-bria|unmas\-bria)$"
    assert state.accounts["site-obo"] is None


def test_sites_are_checked_when_the_directory_loads(tmp_path: Path) -> None:
    """An organisation at an unknown site, or a site account taken by a partner, is refused."""
    good = load_directory(write_directory(tmp_path)).directory
    unknown = msgspec.structs.replace(
        good,
        organisations=[
            msgspec.structs.replace(o, site="nowhere") if o.id == "mag-bria" else o
            for o in good.organisations
        ],
    )
    with pytest.raises(DirectoryError, match="unknown site 'nowhere'"):
        compile_directory(unknown)
    clash = msgspec.structs.replace(
        good, sites=[msgspec.structs.replace(good.sites[0], account="unmas"), *good.sites[1:]]
    )
    with pytest.raises(DirectoryError, match="'unmas' is used twice"):
        compile_directory(clash)


@pytest.mark.slow
@needs_root
async def test_a_compromised_site_is_refused_by_broker_and_hub(hq: Headquarters) -> None:
    """With site-bria's own login: another site's key is refused by the broker, a forged
    headquarters sender by the hub (its report reaches the partner whose key was used)."""
    connection = await aio_pika.connect(hq.url("site-bria"))
    try:
        channel = await connection.channel()
        ingress = await channel.get_exchange(INGRESS_EXCHANGE, ensure=False)
        forged = envelope("unmas", ["org:ocha"], {"type": "information.request", "question": "?"})
        message = aio_pika.Message(
            msgspec.json.encode(forged), user_id="site-bria", content_type="application/json"
        )
        await ingress.publish(message, routing_key="mag-bria")
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await ingress.publish(message, routing_key="nrc-obo")
    finally:
        await connection.close()
    (report,) = await drain(hq.url("mag-bria"), "inbox.mag-bria", expect=1, timeout=30)
    body = msgspec.json.decode(report.body)["body"]
    assert (body["code"], body["field_path"]) == (202, "$.sender")
    assert body["ref_distribution_id"] == forged["distribution_id"]
