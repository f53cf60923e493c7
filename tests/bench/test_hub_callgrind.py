"""A short run of ``python -m bench.hub_callgrind``: the hub runs under callgrind and is counted."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.broker, pytest.mark.redis, pytest.mark.slow]


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_hub_callgrind_counts_instructions_per_message(tmp_path: Path) -> None:
    """20 then 60 signed messages through the hub under callgrind give a positive count each."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.hub_callgrind",
            "--messages",
            "20,60",
            "--redis",
            os.environ.get("LIAISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        timeout=600,
        capture_output=True,
    )
    results = json.loads((tmp_path / "hub_callgrind.json").read_text())
    (tree,) = results["trees"].values()
    first, second = tree["instructions"]
    assert 0 < first < second
    assert tree["instructions_per_message"] > 0
