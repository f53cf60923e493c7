"""A short run of ``python -m bench.ledger_write`` against the real PostgreSQL."""

import asyncio
import re
import sys
from pathlib import Path

import asyncpg
import pytest

from bench.ledger import SERVER_URL

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("as_migrated", "whole_json_text", "default_collector")
ARGS = ("--records", "700", "--batch", "300", "--rounds", "1", "--variant", *VARIANTS)


@pytest.mark.postgres
async def test_ledger_write_prices_each_variant() -> None:
    """Each variant named gets a median per-record CPU for this process and for PostgreSQL,
    and every throwaway database is dropped afterwards."""
    before = await _bench_databases()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.ledger_write",
        *ARGS,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    stdout = out.decode()
    assert process.returncode == 0, stdout[-2000:] + err.decode()[-3000:]
    for variant in VARIANTS:
        median = re.search(
            rf"^median {variant} +python_us +([\d.]+) .* postgres_us +([\d.]+) ",
            stdout,
            re.MULTILINE,
        )
        assert median is not None, stdout
        assert float(median.group(1)) > 0
        assert float(median.group(2)) > 0
    assert await _bench_databases() <= before


async def _bench_databases() -> set[str]:
    connection = await asyncpg.connect(SERVER_URL)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'liaison_bench_write_%'"
        )
    finally:
        await connection.close()
    return {row["datname"] for row in rows}
