"""``liaison partner`` and ``liaison provision`` end to end, run in-process against the broker."""

import asyncio
import re
from pathlib import Path

import aio_pika
import pytest

from liaison.cli.__main__ import main
from liaison.directory.settings import ProvisionSettings
from liaison.schemas.wire import DELIVERY_EXCHANGE, inbox_queue
from tests.conftest import amqp_url_for
from tests.directory.conftest import directory_text, login_refused

pytestmark = pytest.mark.broker


@pytest.fixture
def directory(
    settings: ProvisionSettings, tag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A directory file with partner alpha, and the environment pointing the CLI at it."""
    path = tmp_path / "directory.toml"
    path.write_text(directory_text(tag, ["alpha"]))
    for name, value in {
        "LIAISON_VHOST": settings.vhost,
        "LIAISON_DIRECTORY": str(path),
        "LIAISON_CREDENTIALS_DIR": str(settings.credentials_dir),
        "LIAISON_AMQP_URL": settings.amqp_url,
        "LIAISON_MANAGEMENT_URL": settings.management_url,
        "LIAISON_ADMIN_USER": settings.admin_user,
        "LIAISON_ADMIN_PASSWORD": settings.admin_password.reveal(),
        "LIAISON_HUB_SIGNING_KEY": str(tmp_path / "hub-signing.key"),
    }.items():
        monkeypatch.setenv(name, value)
    return path


async def liaison(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in a worker thread (it owns its event loop); exit code, stdout, stderr."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _issued_url(out: str) -> str:
    match = re.search(r"AMQP URL: (\S+)", out)
    assert match is not None, out
    return match.group(1)


async def _closed_soon(connection: aio_pika.abc.AbstractConnection) -> bool:
    for _ in range(50):
        if not connection.connected.is_set():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_provision_twice_says_nothing_to_change(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`liaison provision` a second time prints "nothing to change" and exits 0."""
    assert (await liaison(capsys, "provision"))[0] == 0
    code, out, _ = await liaison(capsys, "provision")
    assert code == 0
    assert out.strip().endswith("nothing to change")
    code, out, _ = await liaison(capsys, "provision", "--dry-run")
    assert code == 0
    assert "nothing to change (dry run" in out


async def test_partner_lifecycle(
    directory: Path, tag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """add prints credentials once; rotate ends old sessions; remove refuses logins, keeps mail."""
    org = f"golf-{tag}"
    code, out, err = await liaison(
        capsys,
        "partner",
        "add",
        org,
        "--name",
        "Golf Demining",
        "--kind",
        "ngo",
        "--role",
        "demining",
        "--mission",
        "minusca",
        "--clearance",
        "confidential",
    )
    assert code == 0, err
    assert out.count("password: ") == 1
    first_url = _issued_url(out)
    text = directory.read_text()
    assert "# alpha comes first" in text
    assert f'id = "{org}"' in text
    first = await aio_pika.connect(first_url)

    code, out, err = await liaison(capsys, "partner", "rotate-credentials", org)
    assert code == 0, err
    second_url = _issued_url(out)
    assert second_url != first_url
    assert await _closed_soon(first)
    await first.close()
    assert await login_refused(first_url)
    second = await aio_pika.connect(second_url)

    code, out, _ = await liaison(capsys, "partner", "list")
    assert code == 0
    assert re.search(rf"^{org}\s+ngo\s+{org}\s+demining\s+0$", out, re.MULTILINE), out

    async with await aio_pika.connect(amqp_url_for(directory_vhost(second_url))) as admin:
        delivery = await (await admin.channel()).get_exchange(DELIVERY_EXCHANGE, ensure=False)
        await delivery.publish(aio_pika.Message(b"waiting"), routing_key=org)
    code, out, err = await liaison(capsys, "partner", "remove", org)
    assert code == 0, err
    assert f"kept {inbox_queue(org)} with 1 messages for an operator" in out
    assert await _closed_soon(second)
    await second.close()
    assert await login_refused(second_url)
    assert org not in directory.read_text()
    assert "# alpha comes first" in directory.read_text()


def directory_vhost(url: str) -> str:
    """The vhost of an AMQP URL."""
    return url.rsplit("/", 1)[1]


async def test_unknown_partner_is_one_line_error(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """remove / rotate-credentials of an unknown organisation: one line on stderr, exit 1."""
    for action in ("remove", "rotate-credentials"):
        code, _, err = await liaison(capsys, "partner", action, "nobody-here")
        assert code == 1
        assert err.count("\n") == 1
        assert "no organisation 'nobody-here'" in err


async def test_adding_an_existing_partner_is_refused(
    directory: Path, tag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """partner add of an id already in the directory changes nothing and says why."""
    before = directory.read_text()
    code, _, err = await liaison(
        capsys, "partner", "add", f"alpha-{tag}", "--name", "Again", "--kind", "ngo"
    )
    assert code == 1
    assert "already in the directory" in err
    assert directory.read_text() == before


async def test_removing_a_partner_named_by_a_rule_is_refused(
    directory: Path, tag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A partner still named by a group cannot be removed; the file stays as it was."""
    directory.write_text(
        directory_text(tag, ["alpha", "hotel"]) + f'[[groups]]\nid = "pair"\nname = "Pair"\n'
        f'members = {{ organisations = ["hotel-{tag}"] }}\n'
    )
    before = directory.read_text()
    code, _, err = await liaison(capsys, "partner", "remove", f"hotel-{tag}")
    assert code == 1
    assert f"unknown organisation 'hotel-{tag}'" in err
    assert directory.read_text() == before
