"""`liaison evidence`: a bundle a third party checks with panva/jose and sha256sum, no Liaison."""

import asyncio
import os
import re
import shutil
import zipfile
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from liaison.directory.index import DirectoryIndex
from liaison.ledger.app import create_app
from liaison.ledger.audit import verify_ledger
from liaison.ledger.evidence import export_bundle
from liaison.ledger.heads import sign_heads
from tests.cli.support import liaison
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, demo_kid, envelope
from tests.ledger.conftest import RunningLedger, ledger_settings, wait_for
from tests.ledger.support_chain import hub_key, published_keys, record, sender_key, write

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / ".tools" / "node" / "node_modules"


@pytest.fixture
def node() -> str:
    """Node.js with jose from the node tools (make node-tools)."""
    found = shutil.which("node")
    if found is None or not (NODE_MODULES / "jose").is_dir():
        pytest.skip("needs node and 'make node-tools' (jose)")
    return found


async def _ledger(database_url: str, db: asyncpg.Connection, tmp_path: Path) -> dict[str, str]:
    """Eight signed records, a head signed after the fifth; the env the commands run with.

    The keys come as a third party has them: the published signing-keys.json, holding the
    sender's key and the hub's (which signs the heads).
    """
    sender = Ed25519PrivateKey.generate()
    _, hub, key = hub_key(tmp_path)
    published_keys(
        tmp_path / "signing-keys.json", sender_key("mag", "mag-1", sender), hub.trusted()
    )
    await write(database_url, [record(n, key=sender) for n in range(5)])
    await sign_heads(db, key)
    await write(database_url, [record(n, key=sender) for n in range(5, 8)])  # after the head
    return {**os.environ, "LIAISON_DATABASE_URL": database_url}


def _keys(folder: Path) -> tuple[str, str]:
    return ("--keys", str(folder / "signing-keys.json"))


async def _check(bundle: Path) -> tuple[int, str]:
    """Run the bundle's own check.sh (sha256sum + node/jose), with jose reachable."""
    (bundle / "node_modules").symlink_to(NODE_MODULES)
    process = await asyncio.create_subprocess_exec(
        "sh",
        "check.sh",
        cwd=bundle,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    (bundle / "node_modules").unlink()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_bundle_verifies_with_jose_and_sha256sum(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, node: str
) -> None:
    """The exported bundle passes check.sh: jose verifies both JWS, sha256sum the chain."""
    env = await _ledger(database_url, db, tmp_path)
    bundle = tmp_path / "bundle"
    result = await liaison("evidence", "mag/d-2", "--out", str(bundle), *_keys(tmp_path), env=env)
    assert result.code == 0, result
    names = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    assert {"body.bin", "body.jws", "sender-key.json", "ledger-key.json", "README.md"} <= names
    assert {"records/" + p.name for p in (bundle / "records").iterdir()} == {
        n for n in names if n.startswith("records/")
    }
    day = next((bundle / "chain").iterdir()).name
    # Record 3 of 5 up to the head at link 5: links 3, 4, 5 and the head.
    assert sorted(p.name for p in (bundle / "chain" / day).iterdir()) == [
        "3.json",
        "4.json",
        "5.json",
        "head.jws",
    ]
    code, out = await _check(bundle)
    assert code == 0, out
    assert "signed by mag with mag-1" in out
    assert out.strip().endswith("to a signed head")


@pytest.mark.parametrize(
    ("tamper", "complaint"),
    [
        ("body", "is not a record of body.bin"),
        ("signature", "signature verification failed"),
        ("link", "prev is not the hash"),
        ("record", "does not hold"),
        ("head", "signature verification failed"),
    ],
)
async def test_tampered_bundle_fails_its_check(
    database_url: str,
    db: asyncpg.Connection,
    tmp_path: Path,
    node: str,
    tamper: str,
    complaint: str,
) -> None:
    """One byte changed in the body, its signature, a link, a record or the head fails check.sh."""
    env = await _ledger(database_url, db, tmp_path)
    bundle = tmp_path / "bundle"
    result = await liaison("evidence", "mag/d-2", "--out", str(bundle), *_keys(tmp_path), env=env)
    assert result.code == 0, result
    chain = next((bundle / "chain").iterdir())
    if tamper == "body":
        data = (bundle / "body.bin").read_bytes()
        (bundle / "body.bin").write_bytes(data.replace(b"route clear", b"route CLEAR"))
    elif tamper == "signature":
        # One character of the signature changed: the chain is intact, jose refuses it.
        protected, _, signature = (bundle / "body.jws").read_text().split(".")
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        (bundle / "body.jws").write_text(f"{protected}..{flipped}")
    elif tamper == "link":
        path = chain / "4.json"
        path.write_bytes(path.read_bytes().replace(b'"seq":4', b'"seq":44'))
    elif tamper == "record":
        path = next((bundle / "records").iterdir())
        path.write_bytes(
            path.read_bytes().replace(b'"outcome":"delivered"', b'"outcome":"refused"')
        )
    else:
        protected, payload, signature = (chain / "head.jws").read_text().split(".")
        (chain / "head.jws").write_text(f"{protected}.{payload[:-2]}AA.{signature}")
    code, out = await _check(bundle)
    assert code != 0, out
    assert complaint in out


async def test_evidence_as_zip_and_refusals(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """--out x.zip writes a zip; an unknown message or one past the last head is refused."""
    env = await _ledger(database_url, db, tmp_path)
    keys = _keys(tmp_path)
    result = await liaison("evidence", "mag/d-1", "--out", str(tmp_path / "e.zip"), *keys, env=env)
    assert result.code == 0, result
    with zipfile.ZipFile(tmp_path / "e.zip") as archive:
        assert {"body.bin", "body.jws", "check.sh"} <= set(archive.namelist())
    unknown = await liaison("evidence", "mag/nope", "--out", str(tmp_path / "u"), *keys, env=env)
    assert unknown.code == 1
    assert "no chained record of mag/nope" in unknown.stderr
    unsigned = await liaison("evidence", "mag/d-6", "--out", str(tmp_path / "n"), *keys, env=env)
    assert unsigned.code == 1
    assert "no signed head covers" in unsigned.stderr


def test_operations_guide_shows_the_jose_check() -> None:
    """docs/operations.md shows exactly the verify-jws.mjs every bundle carries."""
    text = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(
        r"<!-- services/ledger/bundle/verify-jws\.mjs -->\n```js\n(.*?)```", text, re.S
    )
    assert block is not None
    assert block.group(1) == (ROOT / "services/ledger/bundle/verify-jws.mjs").read_text()


async def test_a_message_signed_through_the_real_hub_is_evidence(
    hub: RunningHub,
    ledger: RunningLedger,
    partners: dict[str, Partner],
    directory: DirectoryIndex,
    db: asyncpg.Connection,
    tmp_path: Path,
    node: str,
) -> None:
    """Hub → ledger: the stored signature verifies in audit and the bundle passes check.sh."""
    doc = envelope("mag", ["org:unmas"])
    await partners["mag"].send(doc)  # signed with mag's demo key, as its SDK would
    message_id = f"mag/{doc['distribution_id']}"
    linked = await wait_for(
        db,
        "SELECT count(*) FROM chain_links l JOIN messages m USING (decided_at, record_id) "
        "WHERE m.message_id = $1 AND m.signature_status = 'verified'",
        message_id,
        expect=1,
    )
    assert linked == 1
    _, hub_signing, key = hub_key(tmp_path)
    await sign_heads(db, key)
    report = await verify_ledger(
        db, head_keys={key.kid: key.private.public_key()}, sender_keys=directory.signing_keys
    )
    assert report.ok, report.problems
    assert report.signatures_verified == report.signatures >= 1
    bundle = await export_bundle(
        db,
        message_id,
        tmp_path / "bundle",
        sender_keys=directory.signing_keys,
        hub_keys={key.kid: hub_signing.trusted()},
    )
    code, out = await _check(bundle)
    assert code == 0, out
    assert f"signed by mag with {demo_kid('mag')}" in out


async def test_the_ledger_app_signs_and_publishes_heads(
    hub: RunningHub,
    topology: str,
    database_url: str,
    db: asyncpg.Connection,
    directory: DirectoryIndex,
    partners: dict[str, Partner],
    tmp_path: Path,
) -> None:
    """With LIAISON_HUB_SIGNING_KEY the running ledger signs heads and serves them."""
    key_file, hub_signing, _ = hub_key(tmp_path)
    settings = ledger_settings(
        topology, database_url, hub_signing_key=key_file, head_seconds=0.2, token="t" * 16
    )
    app = create_app(settings, directory=directory)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        doc = envelope("mag", ["org:unmas"])
        await partners["mag"].send(doc)
        heads: list[dict[str, object]] = []
        for _ in range(150):
            answer = await client.get(
                "/api/chain/heads", headers={"Authorization": "Bearer " + "t" * 16}
            )
            heads = (await answer.json())["heads"]
            if heads:
                break
            await asyncio.sleep(0.1)
        assert len(heads) == 1, heads
        assert heads[0]["kid"] == hub_signing.kid
        health = await (
            await client.get("/api/health", headers={"Authorization": "Bearer " + "t" * 16})
        ).json()
        assert health["chain_heads"]["kid"] == hub_signing.kid
    finally:
        await client.close()
    report = await verify_ledger(
        db, head_keys={hub_signing.kid: hub_signing.private_key.public_key()}, sender_keys=None
    )
    assert report.ok, report.problems
    assert report.heads == 1
    assert not report.unsigned_tail
