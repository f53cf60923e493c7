"""Signed messages through the real broker and hub: each bad signature refused with its code,
a good one forwarded unchanged, the hub's own reports signed."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import msgspec
import pytest

from liaison.common.hub_key import load_hub_key
from liaison.directory.index import DirectoryIndex, load_directory
from liaison.directory.keys import new_signing_key
from liaison.directory.partners import rotate_signing_key
from liaison.schemas.wire import HEADER_SIGNATURE, inbox_queue
from liaison.sdk.signing import generate_private_key, load_private_key, sign, verify
from tests.hub.conftest import RunningHub
from tests.hub.support import DEMO_KEYS, Partner, decode, demo_key, demo_kid, drain, envelope

Admin = aio_pika.abc.AbstractConnection
FIELD = f"headers.{HEADER_SIGNATURE}"


def body_of(doc: dict[str, object]) -> bytes:
    """The exact bytes a partner publishes for ``doc``."""
    return msgspec.json.encode(doc)


def mag_signs(body: bytes) -> str:
    """``body`` signed with mag's registered demo key."""
    key = demo_key("mag")
    assert key is not None
    return sign(body, key, demo_kid("mag"))


async def refused_with(admin: Admin, code: int, distribution_id: str) -> dict[str, object]:
    """The one error report in mag's inbox: its code, field and reference; nothing delivered."""
    (message,) = await drain(admin, inbox_queue("mag"), expect=1)
    report = decode(message)["body"]
    assert (report["code"], report["field_path"]) == (code, FIELD), report
    assert report["ref_distribution_id"] == distribution_id
    assert await drain(admin, inbox_queue("unmas"), expect=0, settle=0.2) == []
    return report


async def mag_sends(partners: dict[str, Partner], signature_of: Callable[[bytes], str]) -> str:
    """A new message of mag's to unmas, its body signed by ``signature_of``; its distribution id."""
    doc = envelope("mag", ["org:unmas"])
    body = body_of(doc)
    await partners["mag"].send(body, signature=signature_of(body))
    return str(doc["distribution_id"])


@pytest.fixture
def swap_directory(hub: RunningHub) -> Iterator[None]:
    """Puts the hub's directory back after a test that swaps it."""
    original = hub.router.directory
    yield
    hub.router.directory = original


async def test_valid_signature_is_forwarded_unchanged(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin, directory: DirectoryIndex
) -> None:
    """A body signed with the sender's key is delivered with the same bytes and header, and
    verifies at the recipient as mag's."""
    doc = envelope("mag", ["org:unmas"])
    body = body_of(doc)
    signature = mag_signs(body)
    await partners["mag"].send(body, signature=signature)
    (message,) = await drain(admin, inbox_queue("unmas"), expect=1)
    assert message.body == body
    assert message.headers[HEADER_SIGNATURE] == signature
    key = verify(message.body, message.headers[HEADER_SIGNATURE], directory.signing_keys)
    assert (key.org, key.kid) == ("mag", demo_kid("mag"))


async def test_unsigned_and_malformed_are_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """No header: 208; a header that is not a detached Ed25519 JWS: 209."""
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc, signature=False)
    await refused_with(admin, 208, str(doc["distribution_id"]))
    doc = envelope("mag", ["org:unmas"])
    compact = mag_signs(body_of(doc)).replace("..", ".e30.")  # an attached payload
    await partners["mag"].send(doc, signature=compact)
    await refused_with(admin, 209, str(doc["distribution_id"]))


async def test_forged_signature_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A signature under mag's kid made with a key that is not mag's: 212, nothing delivered."""
    forger = generate_private_key()
    sent = await mag_sends(partners, lambda body: sign(body, forger, demo_kid("mag")))
    await refused_with(admin, 212, sent)


async def test_another_organisations_key_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """mag's message signed with unmas's registered key is an unknown key for mag: 210."""
    unmas_key = load_private_key(DEMO_KEYS / "unmas.key")
    sent = await mag_sends(partners, lambda body: sign(body, unmas_key, demo_kid("unmas")))
    report = await refused_with(admin, 210, sent)
    assert "of mag" in str(report["reason"])


async def test_body_changed_by_one_byte_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """Signed, then one byte of the body changed (still valid JSON, same envelope): 212."""
    doc = envelope("mag", ["org:unmas"])
    body = body_of(doc)
    signature = mag_signs(body)
    at = body.index(b'"quantity":') + len(b'"quantity":')
    altered = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]  # 1 -> 0, 2 -> 3, ...
    assert len(altered) == len(body)
    assert altered != body
    await partners["mag"].send(altered, signature=signature)
    await refused_with(admin, 212, str(doc["distribution_id"]))


async def test_replayed_signature_on_another_message_is_refused(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin
) -> None:
    """A valid signature of one message, attached to another message of mag's: 212."""
    first = envelope("mag", ["org:unmas"])
    signature = mag_signs(body_of(first))
    await partners["mag"].send(body_of(first), signature=signature)
    assert len(await drain(admin, inbox_queue("unmas"), expect=1)) == 1
    second = envelope("mag", ["org:unmas"])
    await partners["mag"].send(body_of(second), signature=signature)
    await refused_with(admin, 212, str(second["distribution_id"]))


def _with_mag_key(
    directory_file: Path, tmp_path: Path, not_before: datetime, not_after: datetime
) -> tuple[DirectoryIndex, str]:
    """The test directory with one more key of mag's, valid between the times given."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "directory.toml"
    path.write_text(directory_file.read_text())
    new = new_signing_key("mag", public_key=None, generate_into=tmp_path, kid="mag-window")
    key = msgspec.structs.replace(new.key, not_before=not_before, not_after=not_after)
    rotate_signing_key(path, "mag", key, overlap=timedelta(days=3650))
    assert new.private_key_file is not None
    return load_directory(path), str(new.private_key_file)


@pytest.mark.usefixtures("swap_directory")
async def test_expired_key_is_refused(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: Admin,
    directory_file: Path,
    tmp_path: Path,
) -> None:
    """A key whose not_after passed before the message was received: 211; not yet valid: 211."""
    now = datetime.now(UTC)
    past = (now - timedelta(days=2), now - timedelta(days=1))
    future = (now + timedelta(days=1), now + timedelta(days=2))
    for name, window in (("past", past), ("future", future)):
        index, key_file = _with_mag_key(directory_file, tmp_path / name, *window)
        hub.router.directory = index
        key = load_private_key(key_file)
        sent = await mag_sends(partners, lambda body, key=key: sign(body, key, "mag-window"))
        await refused_with(admin, 211, sent)


@pytest.mark.usefixtures("swap_directory")
async def test_rotated_key_inside_and_after_the_overlap(
    hub: RunningHub,
    partners: dict[str, Partner],
    admin: Admin,
    directory_file: Path,
    tmp_path: Path,
) -> None:
    """After `rotate-signing-key`, old and new keys both verify inside the overlap; once the
    overlap is over the old key is refused (211) and the new one still verifies."""
    path = tmp_path / "directory.toml"
    path.write_text(directory_file.read_text())
    new = new_signing_key("mag", public_key=None, generate_into=tmp_path, kid="mag-rotated")
    assert new.private_key_file is not None
    new_key = load_private_key(new.private_key_file)

    async def delivered(signature_of: Callable[[bytes], str]) -> None:
        sent = await mag_sends(partners, signature_of)
        (message,) = await drain(admin, inbox_queue("unmas"), expect=1)
        assert decode(message)["distribution_id"] == sent

    rotate_signing_key(path, "mag", new.key, overlap=timedelta(hours=1))
    hub.router.directory = load_directory(path)
    await delivered(mag_signs)  # the old key, inside the overlap
    await delivered(lambda body: sign(body, new_key, "mag-rotated"))

    # The same rotation seen two hours later: the old key ended an hour ago.
    path.write_text(directory_file.read_text())
    rotate_signing_key(
        path, "mag", new.key, overlap=timedelta(hours=1), now=datetime.now(UTC) - timedelta(hours=2)
    )
    hub.router.directory = load_directory(path)
    report = await refused_with(admin, 211, await mag_sends(partners, mag_signs))
    assert demo_kid("mag") in str(report["reason"])
    await delivered(lambda body: sign(body, new_key, "mag-rotated"))


async def test_error_reports_are_signed_by_the_hub(
    hub: RunningHub, partners: dict[str, Partner], admin: Admin, hub_key_file: Path
) -> None:
    """The hub's error report carries its signature over the report's bytes (kid: the hub's)."""
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc, signature=False)
    (message,) = await drain(admin, inbox_queue("mag"), expect=1)
    hub_key = load_hub_key(hub_key_file).trusted()
    signed_by = verify(message.body, message.headers[HEADER_SIGNATURE], {hub_key.kid: hub_key})
    assert signed_by.org == "liaison"
