"""The partner guide: its examples work against the real hub and are the files shown."""

import ast
import asyncio
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

import liaison.sdk
from liaison.schemas.codes import markdown_table
from liaison.sdk import Component, Sitrep, build
from tests.conftest import amqp_url_for
from tests.hub.conftest import RunningHub
from tests.hub.support import DEMO_KEYS, PASSWORD, demo_kid

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "partners.md"
EXAMPLE = ROOT / "docs" / "examples" / "node" / "partner.mjs"
PYTHON_EXAMPLE = ROOT / "docs" / "examples" / "python" / "partner.py"
NODE_MODULES = ROOT / ".tools" / "node" / "node_modules"


def test_guide_shows_the_example_file() -> None:
    """The guide's Node.js code block is exactly docs/examples/node/partner.mjs."""
    text = GUIDE.read_text()
    block = re.search(r"<!-- docs/examples/node/partner\.mjs -->\n```js\n(.*?)```", text, re.S)
    assert block is not None
    assert block.group(1) == EXAMPLE.read_text()


def test_guide_shows_the_python_example_file() -> None:
    """The guide's complete Python example is exactly docs/examples/python/partner.py."""
    text = GUIDE.read_text()
    block = re.search(r"<!-- docs/examples/python/partner\.py -->\n```python\n(.*?)```", text, re.S)
    assert block is not None
    assert block.group(1) == PYTHON_EXAMPLE.read_text()


def test_python_example_uses_the_public_sdk_only() -> None:
    """The example imports nothing of Liaison but the liaison.sdk package itself."""
    tree = ast.parse(PYTHON_EXAMPLE.read_text())
    modules = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {m for m in modules if m and m.startswith("liaison")} == {"liaison.sdk"}


def test_guide_lists_every_error_code() -> None:
    """The guide's error-code table is the one generated from schemas/codes.py."""
    text = GUIDE.read_text()
    for row in markdown_table().splitlines()[4:]:
        assert row in text


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5672}"))


@pytest.mark.broker
async def test_node_example_delivers(
    hub: RunningHub,
    vhost: str,
    partner_accounts: dict[str, str],
    tmp_path: Path,
    trusted_keys: Path,
) -> None:
    """node partner.mjs signs with jose and publishes as mag (the hub accepts the signature),
    reads it from unmas's inbox, and verifies mag's signature the hub forwarded."""
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "amqplib").is_dir():
        pytest.skip("node or amqplib missing: run 'make node-tools'")
    if not (NODE_MODULES / "jose").is_dir():
        pytest.fail("jose is missing from the node tools: run 'make node-tools'")
    # As a partner would have it: the script beside a node_modules holding amqplib.
    script = tmp_path / "partner.mjs"
    shutil.copy(EXAMPLE, script)
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    env = {
        "PATH": "/usr/bin:/bin",
        "LIAISON_AMQP_URL": _without_credentials(amqp_url_for(vhost)),
        "SENDER_ORG": "mag",
        "SENDER_ACCOUNT": partner_accounts["mag"],
        "SENDER_PASSWORD": PASSWORD,
        "SENDER_SIGNING_KEY": str(DEMO_KEYS / "mag.key"),
        "SENDER_SIGNING_KID": demo_kid("mag"),
        "LIAISON_TRUSTED_KEYS": str(trusted_keys),
        "RECIPIENT_ORG": "unmas",
        "RECIPIENT_ACCOUNT": partner_accounts["unmas"],
        "RECIPIENT_PASSWORD": PASSWORD,
    }
    process = await asyncio.create_subprocess_exec(
        node, str(script), env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 40)
    assert process.returncode == 0, err.decode()
    sent = re.search(r"^sent (mag-[0-9a-f-]+)$", out.decode(), re.M)
    assert sent is not None, out.decode()
    assert f"unmas received mag/{sent.group(1)}: hazard.eo_spot_report from mag" in out.decode()
    assert "verified: signed by mag with key mag-demo-2026" in out.decode()


def _section_six() -> str:
    text = GUIDE.read_text()
    return text[text.index("## 6. Python: the SDK") : text.index("## 7.")]


def test_guide_python_builds_its_body() -> None:
    """§6's Python example compiles, imports only from the SDK, and its build() call is valid."""
    block = re.search(r"```python\n(.*?)```", _section_six(), re.S)
    assert block is not None
    tree = ast.parse(block.group(1))
    sdk_names = [
        alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module == "liaison.sdk"
        for alias in node.names
    ]
    assert sdk_names, "the example imports from liaison.sdk"
    for name in sdk_names:
        assert hasattr(liaison.sdk, name), name
    namespace: dict[str, object] = {"UTC": UTC, "datetime": datetime, "liaison": liaison}
    exec("from liaison.sdk import " + ", ".join(sdk_names), namespace)  # noqa: S102
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "build"
    ]
    assert calls, "the example shows how to build a body"
    body = eval(compile(ast.Expression(calls[0]), "guide", "eval"), namespace)  # noqa: S307
    assert isinstance(body, liaison.sdk.EoSpotReport)


def test_guide_sitrep_command_is_complete() -> None:
    """§6's `liaison send --type sitrep` body has every required field, component included."""
    command = re.search(r"--type sitrep .*--body-json '(\{.*?\})'", _section_six())
    assert command is not None
    body = build("sitrep", json.loads(command.group(1)))
    assert isinstance(body, Sitrep)
    assert body.component is Component.MINE_ACTION
