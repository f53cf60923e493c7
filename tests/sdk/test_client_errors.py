"""Partner mistakes against the real broker and hub: SDK errors that say what to change."""

import asyncio
import sys
import textwrap

import pytest

from liaison.schemas.examples import example
from liaison.sdk import (
    Client,
    ClientClosed,
    InvalidMessage,
    LoginRefused,
    SdkError,
    VhostRefused,
)
from tests.conftest import amqp_url_for
from tests.hub.conftest import RunningHub
from tests.hub.support import DEMO_KEYS, PASSWORD, demo_kid
from tests.sdk.conftest import Connect
from tests.sdk.support import spot_report

pytestmark = pytest.mark.broker


async def test_wrong_vhost_says_to_change_the_path(
    vhost: str, partner_accounts: dict[str, str]
) -> None:
    """A vhost that does not exist is a VhostRefused naming it and the URL's path, no repr."""
    url = amqp_url_for(vhost).rsplit("/", 1)[0] + "/no-such-vhost-here"
    with pytest.raises(VhostRefused) as caught:
        await Client.connect("mag", url, account=partner_accounts["mag"], password=PASSWORD)
    text = str(caught.value)
    assert "'no-such-vhost-here'" in text
    assert "path" in text
    assert " object at 0x" not in text
    assert PASSWORD not in text


async def test_vhost_the_account_may_not_use(vhost: str, partner_accounts: dict[str, str]) -> None:
    """The default vhost '/' (a URL without a path), where partners have no rights, says so."""
    url = amqp_url_for(vhost).rsplit("/", 1)[0]
    with pytest.raises(VhostRefused, match="no path means vhost '/'"):
        await Client.connect("mag", url, account=partner_accounts["mag"], password=PASSWORD)


async def test_bad_password_is_login_refused(vhost: str, partner_accounts: dict[str, str]) -> None:
    """A wrong password is a LoginRefused naming the account, never the password."""
    with pytest.raises(LoginRefused) as caught:
        await Client.connect(
            "mag", amqp_url_for(vhost), account=partner_accounts["mag"], password="not-it-42"
        )
    assert repr(partner_accounts["mag"]) in str(caught.value)
    assert "not-it-42" not in str(caught.value)


async def test_receipt_level_must_be_known(hub: RunningHub, connect: Connect) -> None:
    """receipt('seen') is an InvalidMessage listing the levels; nothing is sent."""
    mag, unmas = await connect("mag"), await connect("unmas")
    inbox = await unmas.inbox()
    await mag.send(spot_report(), recipients=["org:unmas"])
    delivery = await inbox.get(10)
    assert delivery is not None
    with pytest.raises(InvalidMessage) as caught:
        await delivery.receipt("seen")
    assert caught.value.field_path == "$.body.level"
    assert "'accepted'" in str(caught.value)
    await delivery.ack()
    mag_inbox = await mag.inbox()
    assert await mag_inbox.get(1.0) is None


async def test_reserved_type_is_not_published(hub: RunningHub, connect: Connect) -> None:
    """send(ErrorReport) raises before publishing: no 206 refusal ever comes back."""
    mag = await connect("mag")
    inbox = await mag.inbox()
    with pytest.raises(InvalidMessage, match="only the hub"):
        await mag.send(example("error.report").body, recipients=["org:unmas"])
    assert await inbox.get(1.5) is None


async def test_closed_client_says_so(hub: RunningHub, connect: Connect) -> None:
    """Sending on, or opening the inbox of, a closed client is ClientClosed, not a hang."""
    mag = await connect("mag")
    await mag.close()
    with pytest.raises(ClientClosed):
        await mag.send(spot_report(), recipients=["org:unmas"])
    with pytest.raises(ClientClosed):
        await mag.inbox()
    assert issubclass(ClientClosed, SdkError)


SILENT = """
import asyncio, logging, sys
from liaison.sdk import Client, build, EoSpotReport
from liaison.schemas.examples import example
import msgspec

async def main() -> None:
    async with Client.connect(
        sys.argv[1], sys.argv[2], signing_key=sys.argv[4], signing_kid=sys.argv[5]
    ) as client:
        if sys.argv[3] == "configured":
            logging.basicConfig(level=logging.DEBUG, format="%(name)s %(message)s")
        body = example("hazard.eo_spot_report").body
        await client.send(body, recipients=["org:unmas"])
        inbox = await client.inbox()
        await inbox.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("logging_setup", ["unconfigured", "configured"])
async def test_sdk_logs_only_through_logging(
    hub: RunningHub, vhost: str, partner_accounts: dict[str, str], logging_setup: str
) -> None:
    """With logging unconfigured a send prints nothing; configured, its debug line is logged."""
    url = amqp_url_for(vhost, partner_accounts["mag"], PASSWORD)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(SILENT), "mag", url, logging_setup,
        str(DEMO_KEYS / "mag.key"), demo_kid("mag"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert out == b""
    if logging_setup == "unconfigured":
        assert err == b""
    else:
        assert "liaison.sdk.client sent mag-" in err.decode()
