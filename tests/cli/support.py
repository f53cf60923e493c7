"""Running the ``liaison`` command as a subprocess without blocking the test's event loop."""

import asyncio
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from tests.hub.support import DEMO_KEYS, demo_kid

LIAISON = str(Path(sys.executable).with_name("liaison"))
SAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"


@dataclass(frozen=True)
class Result:
    """Exit code and output of one command."""

    code: int
    stdout: str
    stderr: str


async def liaison(*args: str, env: dict[str, str], timeout: float = 30.0) -> Result:
    """Run ``liaison ARGS`` and wait for it."""
    process = await asyncio.create_subprocess_exec(
        LIAISON,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


def assert_one_line_failure(result: Result) -> None:
    """Exit 1 with a single line on stderr and no traceback."""
    assert result.code == 1, result
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def directory_with_accounts(folder: Path, prefix: str) -> Path:
    """The sample directory with accounts ``<prefix><org>``, written into ``folder``.

    Each test package uses its own prefix: broker users are global, and two packages sharing
    account names would delete each other's users at the end of the session.
    """
    raw: dict[str, Any] = tomllib.loads(SAMPLE.read_text())
    for org in raw["organisations"]:
        org["account"] = f"{prefix}{org['id']}"
    raw["hub_account"] = f"{prefix}hub"
    raw["operator_account"] = f"{prefix}operator"
    raw["ledger_account"] = f"{prefix}ledger"
    path = folder / "directory.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def signing(org: str) -> list[str]:
    """``liaison send`` flags that sign as ``org`` with its demo key (deploy/demo-keys)."""
    return ["--signing-key", str(DEMO_KEYS / f"{org}.key"), "--signing-kid", demo_kid(org)]
