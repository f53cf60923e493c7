"""``liaison evidence SENDER/DISTRIBUTION_ID``: one message as a bundle anyone can check.

The bundle (a directory, or a .zip of it) holds only files a third party checks with a standard
JOSE library and ``sha256sum`` — no Liaison code — as its README.md explains::

    body.bin                  the message exactly as the sender published it
    body.jws                  the sender's signature: compact JWS, detached unencoded payload
    sender-key.json           the sender's public key (OKP JWK) and validity, from the directory
    ledger-key.json           the hub's public key(s) that sign chain heads (JWK set)
    records/<day>-<seq>.json  the ledger's records of the message (canonical bytes, chain.py)
    chain/<day>/<seq>.json    every link from the first record's up to a signed head
    chain/<day>/head.jws      that head: compact JWS (attached payload) by the ledger's key
    manifest.json             which file is which, for a script
    check.sh, verify-jws.mjs  the checks README.md describes, as scripts (sha256sum, jq, jose)

Export re-checks what it writes (record hashes, links, head) and refuses a ledger that does not
match itself: a bundle is only made from a chain that verifies.
"""

import json
import shutil
from collections.abc import Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from liaison.common.errors import LiaisonError
from liaison.ledger.chain import link_bytes, record_bytes, sha256_hex
from liaison.ledger.jws import JwsError, verify_compact
from liaison.sdk.errors import SignatureError
from liaison.sdk.signing import TrustedKey, keys_document, parse_signature, public_x

Connection = asyncpg.Connection | PoolConnectionProxy

#: Files copied into every bundle from ``services/ledger/bundle``.
KIT = ("README.md", "check.sh", "verify-jws.mjs")


class EvidenceError(LiaisonError):
    """The message cannot be exported as evidence (unknown, unsigned head, ledger mismatch)."""


_RECORDS = """
SELECT m.*, l.day, l.seq, l.record_hash, l.prev_hash, l.link_hash,
       coalesce((SELECT array_agg(x.org) FROM recipients x WHERE x.decided_at = m.decided_at
                 AND x.record_id = m.record_id AND NOT x.refused), '{}') AS delivered,
       coalesce((SELECT array_agg(x.org) FROM recipients x WHERE x.decided_at = m.decided_at
                 AND x.record_id = m.record_id AND x.refused), '{}') AS refused_orgs
FROM messages m
JOIN chain_links l ON l.day = (m.decided_at AT TIME ZONE 'UTC')::date AND l.record_id = m.record_id
WHERE m.message_id = $1
ORDER BY m.decided_at, m.record_id"""


async def export_bundle(
    connection: Connection,
    message_id: str,
    out: Path,
    *,
    sender_keys: Mapping[str, TrustedKey],
    hub_keys: Mapping[str, TrustedKey],
) -> Path:
    """Write the bundle of ``message_id`` to ``out`` (a directory, or a ``.zip``); returns it."""
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        records = await connection.fetch(_RECORDS, message_id)
        if not records:
            raise EvidenceError(f"the ledger has no chained record of {message_id}")
        days = sorted({r["day"] for r in records})
        links: dict[date, list[asyncpg.Record]] = {}
        heads: dict[date, asyncpg.Record] = {}
        for day in days:
            first = min(r["seq"] for r in records if r["day"] == day)
            head = await connection.fetchrow(
                "SELECT * FROM chain_heads WHERE day = $1 AND seq >= $2 ORDER BY seq LIMIT 1",
                day,
                max(r["seq"] for r in records if r["day"] == day),
            )
            if head is None:
                raise EvidenceError(
                    f"no signed head covers {message_id}'s records of {day} yet: wait for the "
                    "next one (LIAISON_LEDGER_HEAD_SECONDS) and export again"
                )
            heads[day] = head
            links[day] = await connection.fetch(
                "SELECT * FROM chain_links WHERE day = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
                day,
                first,
                head["seq"],
            )
    directory = out.with_suffix("") if out.suffix == ".zip" else out
    directory.mkdir(parents=True, exist_ok=False)
    manifest: dict[str, Any] = {"message": message_id, "records": [], "chains": []}
    main = next((r for r in records if r["body"] is not None and r["signature"]), records[0])
    _write_message(directory, main, sender_keys, manifest)
    # The hub's keys in the published signing-keys.json form (JWK set, org and validity).
    (directory / "ledger-key.json").write_bytes(keys_document(hub_keys.values()))
    (directory / "records").mkdir()
    for record in records:
        data = record_bytes(dict(record), record["delivered"], record["refused_orgs"])
        if sha256_hex(data) != record["record_hash"]:
            raise EvidenceError(
                f"record {record['record_id']} differs from the record chained: "
                "run 'liaison audit verify'"
            )
        name = f"records/{record['day'].isoformat()}-{record['seq']}.json"
        (directory / name).write_bytes(data)
        manifest["records"].append(
            {
                "file": name,
                "record_id": record["record_id"],
                "outcome": record["outcome"],
                "chain": record["day"].isoformat(),
                "seq": record["seq"],
            }
        )
    for day in days:
        manifest["chains"].append(_write_chain(directory, day, links[day], heads[day], hub_keys))
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    kit = resources.files("liaison.ledger").joinpath("bundle")
    for name in KIT:
        text = kit.joinpath(name).read_text()
        (directory / name).write_text(text.replace("{message}", message_id))
    (directory / "check.sh").chmod(0o755)
    if out.suffix == ".zip":
        shutil.make_archive(str(directory), "zip", root_dir=directory)
        shutil.rmtree(directory)
        return out
    return directory


def _write_message(
    directory: Path,
    record: asyncpg.Record,
    sender_keys: Mapping[str, TrustedKey],
    manifest: dict[str, Any],
) -> None:
    if record["body"] is None:
        raise EvidenceError("the ledger kept no body of this message (LIAISON_LEDGER_KEEP_BODY)")
    (directory / "body.bin").write_bytes(bytes(record["body"]))
    manifest["body"] = "body.bin"
    signature = record["signature"]
    if not signature:
        manifest["signature"] = None
        return
    (directory / "body.jws").write_text(signature)
    manifest["signature"] = "body.jws"
    try:
        _, kid, _ = parse_signature(signature)
    except SignatureError as exc:
        raise EvidenceError(f"the stored signature is malformed: {exc}") from None
    key = sender_keys.get(kid)
    if key is None:
        raise EvidenceError(f"no published or registered signing key {kid!r}")
    (directory / "sender-key.json").write_text(
        json.dumps(
            {
                "org": key.org,
                "kid": key.kid,
                "jwk": {"kty": "OKP", "crv": "Ed25519", "x": public_x(key.public_key), "kid": kid},
                "not_before": key.not_before.isoformat(),
                "not_after": key.not_after.isoformat(),
            },
            indent=2,
        )
        + "\n"
    )
    manifest["sender_key"] = "sender-key.json"


def _write_chain(
    directory: Path,
    day: date,
    links: list[asyncpg.Record],
    head: asyncpg.Record,
    hub_keys: Mapping[str, TrustedKey],
) -> dict[str, Any]:
    folder = directory / "chain" / day.isoformat()
    folder.mkdir(parents=True)
    files = []
    prev = links[0]["prev_hash"]
    for link in links:
        data = link_bytes(day, link["seq"], link["prev_hash"], link["record_hash"])
        if sha256_hex(data) != link["link_hash"] or link["prev_hash"] != prev:
            raise EvidenceError(f"chain {day} link {link['seq']} does not match: audit verify")
        prev = link["link_hash"]
        name = f"chain/{day.isoformat()}/{link['seq']}.json"
        (directory / name).write_bytes(data)
        files.append(name)
    if prev != head["head"]:
        raise EvidenceError(f"chain {day} does not reach its signed head: audit verify")
    try:
        _, payload = verify_compact(head["jws"], {k: v.public_key for k, v in hub_keys.items()})
    except JwsError as exc:
        raise EvidenceError(f"the signed head of {day} does not verify: {exc}") from None
    if msgspec.json.decode(payload).get("head") != head["head"]:
        raise EvidenceError(f"the signed head of {day} differs from the stored one")
    (folder / "head.jws").write_text(head["jws"])
    return {
        "chain": day.isoformat(),
        "links": files,
        "head": f"chain/{day.isoformat()}/head.jws",
        "head_seq": head["seq"],
    }
