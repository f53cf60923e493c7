"""``python -m bench.ledger_write``: what one record costs the ledger and PostgreSQL to write.

    python -m bench.ledger_write [--records N] [--batch B] [--rounds R] [--variant NAME ...]

The ledger's write path without the broker: N decision records built from the bench workload
(the catalogue's examples, 1-5 recipients each) are turned into rows (``record_rows``) and
written with ``LedgerStore.write`` in batches of B, as the consumer does, into a throwaway
database migrated with the ledger's migrations. Per record: the CPU of this process for the
rows and the write (``time.process_time``) and of the PostgreSQL backend serving it
(``/proc/<pid>/schedstat``, same machine). Variants change the schema of the throwaway
database before the run, to price one index or setting (``--variant`` names, below). Rounds
interleave the variants, so a busy machine slows each alike; medians and ranges are printed.
"""

import argparse
import asyncio
import gc
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.ledger import database_url, drop_database
from bench.workload import build_messages, write_directory
from liaison.ledger import rows as rows_module
from liaison.ledger import store as store_module
from liaison.ledger.database import migrate_database
from liaison.ledger.records import DecisionRecord, Outcome
from liaison.ledger.rows import Rows, record_rows
from liaison.ledger.run import tune_collector
from liaison.ledger.search_text import search_text
from liaison.ledger.store import LedgerStore, open_pool

#: Schema changes a variant makes to its throwaway database after migrating it.
VARIANTS: dict[str, list[str]] = {
    "as_migrated": [],
    # body_text as it was before: the body's whole JSON text.
    "whole_json_text": [],
    # The ledger process tunes the garbage collector (liaison.ledger.run); this does not.
    "default_collector": [],
    # Rows written as before: one INSERT ... SELECT FROM unnest(arrays) per table, no COPY.
    "unnest_insert": [],
    "no_text_index": ["DROP INDEX messages_text"],
    # A partitioned index takes no ALTER ... SET: made again, its partitions copy its options.
    "text_fastupdate_off": [
        "DROP INDEX messages_text",
        "CREATE INDEX messages_text ON messages USING gin "
        "(to_tsvector('simple', coalesce(body_text, ''))) WITH (fastupdate = off)",
    ],
    "no_secondary_indexes": [
        "DROP INDEX messages_text",
        "DROP INDEX messages_message_id",
        "DROP INDEX messages_sender",
        "DROP INDEX messages_type",
        "DROP INDEX messages_incident",
        "DROP INDEX recipients_org",
        "DROP INDEX recipients_message",
        "DROP INDEX events_message",
        "DROP INDEX events_org",
    ],
}


_CLEAN_PENDING = """
SELECT gin_clean_pending_list(c.oid) FROM pg_class c JOIN pg_am a ON a.oid = c.relam
WHERE a.amname = 'gin' AND c.relkind = 'i'"""


def whole_text(body: bytes) -> str | None:
    """``body_text`` as it was before: the whole body as text."""
    try:
        return body.decode("utf-8").replace("\x00", "")
    except UnicodeDecodeError:
        return None


DEFAULT_THRESHOLDS = gc.get_threshold()
APPEND = store_module._append
#: Session settings a variant gives the writing connection.
SESSION: dict[str, dict[str, str]] = {
    "pending_list_64kB": {"gin_pending_list_limit": "64"},
    "pending_list_256kB": {"gin_pending_list_limit": "256"},
    "pending_list_1MB": {"gin_pending_list_limit": "1024"},
    "pending_list_4MB": {"gin_pending_list_limit": "4096"},
}
VARIANTS.update({name: [] for name in SESSION})


def records(count: int, prefix: str) -> list[DecisionRecord]:
    """``count`` delivered records of the bench workload's messages."""
    with tempfile.TemporaryDirectory() as scratch:
        index = write_directory("write", Path(scratch) / "directory.toml")
    messages = build_messages(index, count, seed=1, prefix=prefix)
    now = time.time()
    return [
        DecisionRecord(
            record_id=f"{prefix}-{i:08d}",
            decided_at=now + i * 1e-4,
            outcome=Outcome.DELIVERED,
            user_id=m.account,
            sender=m.sender,
            distribution_id=m.envelope.distribution_id,
            message_type=m.envelope.body.__struct_config__.tag,  # type: ignore[arg-type]
            precedence=str(m.envelope.precedence),
            recipients=[q.removeprefix("inbox.").removesuffix(".flash") for q in m.inboxes],
            body=m.body,
            signature_status="absent",
        )
        for i, m in enumerate(messages)
    ]


def backend_ns(pid: int) -> int:
    """Nanoseconds on CPU of process ``pid`` (this machine's PostgreSQL backend)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


async def run(variant: str, batch: list[DecisionRecord], size: int) -> dict[str, Any]:
    """Write ``batch`` in batches of ``size`` into a fresh database changed by ``variant``."""
    name = f"liaison_bench_write_{secrets.token_hex(4)}"
    url = database_url(name)
    try:
        await migrate_database(url)
        connection = await asyncpg.connect(url)
        try:
            for statement in VARIANTS[variant]:
                await connection.execute(statement)
        finally:
            await connection.close()
        pool = await open_pool(url, max_size=1)
        store = LedgerStore(pool)
        async with pool.acquire() as connection:
            pid = await connection.fetchval("SELECT pg_backend_pid()")
        # A first small batch makes the partitions and warms the caches, not counted.
        warm = Rows()
        for record in batch[:size]:
            record_rows(warm, record, resolve=None, keep_body=True)
        await store.write(warm)
        rest = batch[size:]
        rows_module.search_text = whole_text if variant == "whole_json_text" else search_text
        store_module._append = store_module._insert if variant == "unnest_insert" else APPEND
        if variant == "default_collector":
            gc.unfreeze()
            gc.set_threshold(*DEFAULT_THRESHOLDS)
        else:
            tune_collector()
        async with pool.acquire() as connection:
            for name, value in SESSION.get(variant, {}).items():
                await connection.execute(f"SET {name} = {value}")
        python = backend = 0.0
        batch_ms: list[float] = []
        began = time.perf_counter()
        for first in range(0, len(rest), size):
            cpu = time.process_time()
            rows = Rows()
            for record in rest[first : first + size]:
                record_rows(rows, record, resolve=None, keep_body=True)
            python += time.process_time() - cpu
            pg = backend_ns(pid)
            cpu = time.process_time()
            wrote = time.perf_counter()
            await store.write(rows)
            batch_ms.append((time.perf_counter() - wrote) * 1000)
            python += time.process_time() - cpu
            backend += (backend_ns(pid) - pg) / 1e9
        wall = time.perf_counter() - began
        # GIN inserts go to a pending list, merged into the index when it fills or by
        # (auto)vacuum: that merge is part of what a record costs, so it is done and counted.
        async with pool.acquire() as connection:
            pg = backend_ns(pid)
            await connection.execute(_CLEAN_PENDING)
            pending = (backend_ns(pid) - pg) / 1e9
        await pool.close()
    finally:
        await drop_database(name)
    n = len(rest)
    return {
        "variant": variant,
        "python_us": python / n * 1e6,
        "postgres_us": backend / n * 1e6,
        "pending_us": pending / n * 1e6,
        "wall_us": wall / n * 1e6,
        "batch_p50_ms": statistics.median(batch_ms),
        "batch_max_ms": max(batch_ms),
    }


async def main_async(args: argparse.Namespace) -> None:
    built = records(args.records, f"w{secrets.token_hex(3)}")
    figures: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variant}
    for r in range(args.rounds):
        for variant in args.variant:
            row = await run(variant, built, args.batch)
            figures[variant].append(row)
            print(
                f"round {r + 1} {variant:<22} python {row['python_us']:6.1f} us  "
                f"postgres {row['postgres_us']:6.1f} us  pending {row['pending_us']:6.1f} us  "
                f"wall {row['wall_us']:6.1f} us  batch p50 {row['batch_p50_ms']:.0f} ms "
                f"max {row['batch_max_ms']:.0f} ms",
                flush=True,
            )
    for variant, rows in figures.items():
        parts = []
        for key in ("python_us", "postgres_us", "pending_us", "batch_p50_ms", "batch_max_ms"):
            values = [row[key] for row in rows]
            parts.append(
                f"{key} {statistics.median(values):6.1f} ({min(values):.0f}-{max(values):.0f})"
            )
        print(f"median {variant:<22} " + "  ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_write")
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
