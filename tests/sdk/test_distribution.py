"""Installed names: the repository's wheel is one `liaison` package; the partner's stands alone."""

import asyncio
import os
import shutil
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import amqp_url_for
from tests.hub.conftest import RunningHub
from tests.hub.support import DEMO_KEYS, PASSWORD, demo_kid

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PARTNER_SDK = ROOT / "deploy" / "partner-sdk"


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that points Python at the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def without_credentials(url: str) -> str:
    """``url`` with its user and password taken out."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5672}"))


async def run(*command: str, cwd: Path, timeout: float = 300) -> str:
    """Run ``command``; its stdout, failing the test with its output when it exits non-zero."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=clean_environment(),
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, f"{' '.join(command)}:\n{out.decode()[-3000:]}"
    return out.decode()


async def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel`` of ``source`` (no dependencies) into ``out``; the wheel's path."""
    shutil.rmtree(source / "build", ignore_errors=True)  # no stale modules from an old build
    await run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source),
              cwd=out.parent)  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


def top_level(wheel: Path) -> set[str]:
    """The top-level names a wheel installs into site-packages."""
    with zipfile.ZipFile(wheel) as archive:
        return {name.split("/")[0] for name in archive.namelist()}


async def test_repository_wheel_has_one_top_level_package(tmp_path: Path) -> None:
    """The repository's wheel installs `liaison` and its metadata: no `services`, no `schemas`."""
    wheel = await build_wheel(ROOT, tmp_path / "dist")
    names = top_level(wheel)
    assert "services" not in names
    assert "schemas" not in names
    assert {n for n in names if not n.endswith(".dist-info")} == {"liaison"}


def test_partner_sdk_version_follows_liaison() -> None:
    """The partner distribution carries the same version as Liaison."""
    main = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    partner = tomllib.loads((PARTNER_SDK / "pyproject.toml").read_text())["project"]
    assert partner["version"] == main["version"]
    assert partner["name"] == "liaison-sdk"


PARTNER_SCRIPT = """
import asyncio, importlib.util, sys

for name in ("aiohttp", "prometheus_client", "structlog", "liaison.hub", "liaison.common",
             "liaison.directory", "liaison.cli", "services", "schemas"):
    try:
        found = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        found = False
    print(f"{name} {'present' if found else 'absent'}")

import liaison.sdk
from liaison.sdk import Client, EoSpotReport, build
print("sdk from", liaison.sdk.__file__)

async def main(url: str, mag: str, unmas: str, password: str, key: str, kid: str) -> None:
    report = build(EoSpotReport, {"location": {"type": "Point", "coordinates": [15.6, 5.9]},
        "location_desc": "RN3 km 4", "device_category": "landmine", "quantity": 1,
        "action_taken": "cordoned", "found_at": "2024-03-12T06:15:00Z", "reported_by": "MAG"})
    async with (
        Client.connect(
            "mag", url, account=mag, password=password, signing_key=key, signing_kid=kid
        ) as sender,
        Client.connect("unmas", url, account=unmas, password=password) as receiver,
        receiver.inbox() as inbox,
    ):
        sent = await sender.send(report, recipients=["org:unmas"])
        delivery = await inbox.get(20)
        assert delivery is not None, "nothing arrived"
        print("sent", sent, "received", delivery.envelope.distribution_id, delivery.type)
        await delivery.ack()

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.broker
async def test_partner_wheel_installs_alone_and_delivers(
    hub: RunningHub, vhost: str, partner_accounts: dict[str, str], tmp_path: Path
) -> None:
    """The liaison-sdk wheel in a clean venv: no aiohttp, prometheus or hub; a message arrives."""
    wheel = await build_wheel(PARTNER_SDK, tmp_path / "dist")
    assert {n for n in top_level(wheel) if not n.endswith(".dist-info")} == {"liaison"}
    venv = tmp_path / "venv"
    await run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    await run(python, "-m", "pip", "install", "-q", str(wheel), cwd=tmp_path)
    installed = await run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    packages = {line.split("==")[0].lower() for line in installed.split()}
    assert "liaison-sdk" in packages
    assert not packages & {"aiohttp", "prometheus-client", "structlog", "uvloop", "liaison"}
    script = tmp_path / "partner.py"
    script.write_text(textwrap.dedent(PARTNER_SCRIPT))
    url = without_credentials(amqp_url_for(vhost))
    accounts = (partner_accounts["mag"], partner_accounts["unmas"])
    signing = (str(DEMO_KEYS / "mag.key"), demo_kid("mag"))
    out = await run(python, str(script), url, *accounts, PASSWORD, *signing, cwd=tmp_path)
    for name in ("aiohttp", "prometheus_client", "structlog", "liaison.hub", "liaison.common",
                 "liaison.directory", "liaison.cli", "services", "schemas"):  # fmt: skip
        assert f"{name} absent" in out, out
    assert f"sdk from {venv}" in out
    sent = out.split("sent ", 1)[1].split()
    assert sent[0] == sent[2], out  # received what was sent
    assert sent[3] == "hazard.eo_spot_report"
