"""The generated AsyncAPI document is valid under the reference parser (@asyncapi/parser)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from contract_helpers import REPO

from liaison.schemas import wire
from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.generate import GENERATED_DIR

SCRIPT = REPO / "deploy" / "node-tools" / "validate_asyncapi.mjs"
PARSER = REPO / ".tools" / "node" / "node_modules" / "@asyncapi" / "parser" / "package.json"
ASYNCAPI = GENERATED_DIR / "asyncapi.json"


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not PARSER.exists():
        pytest.fail("node or @asyncapi/parser is missing: run `make node-tools`")
    return subprocess.run(
        [node, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def test_committed_asyncapi_is_valid() -> None:
    """@asyncapi/parser reports no error for the committed document."""
    result = _validate(ASYNCAPI)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid AsyncAPI 3.0.0" in result.stdout


@pytest.mark.parametrize(
    "breakage",
    ["drop-info", "bad-channel-ref", "bad-action"],
)
def test_broken_asyncapi_is_rejected(tmp_path: Path, breakage: str) -> None:
    """A document with no info, a dangling channel ref or a bad action is rejected (exit 1)."""
    document = json.loads(ASYNCAPI.read_text())
    if breakage == "drop-info":
        del document["info"]
    elif breakage == "bad-channel-ref":
        document["operations"]["publish"]["channel"] = {"$ref": "#/channels/nowhere"}
    else:
        document["operations"]["publish"]["action"] = "broadcast"
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document))
    result = _validate(broken)
    assert result.returncode == 1, result.stdout + result.stderr


def test_asyncapi_names_come_from_wire() -> None:
    """Channel addresses and every message type match liaison.schemas.wire and the catalogue."""
    document = json.loads(ASYNCAPI.read_text())
    channels = document["channels"]
    assert channels["ingress"]["address"] == wire.INGRESS_EXCHANGE
    assert channels["inbox"]["address"] == wire.inbox_queue("{organisation}")
    assert channels["flashInbox"]["address"] == wire.flash_inbox_queue("{organisation}")
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert names == set(MESSAGE_TYPES)
    assert document["operations"]["publish"]["action"] == "send"
    assert document["operations"]["consumeInbox"]["action"] == "receive"
