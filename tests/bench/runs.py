"""A bench run as a user starts it: ``python -m <module> --quick`` in its own process."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def quick_run(
    module: str,
    out: Path,
    written: str,
    timeout: float,
    chart: str | None = None,
    args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The JSON ``module`` wrote as ``out/written`` (run with ``args`` too), once it also drew
    ``chart`` there if named; a failed run fails with its output's end."""
    run = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args, "--out", str(out)],
        cwd=ROOT,
        timeout=timeout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    if chart is not None:
        assert (out / chart).stat().st_size > 0
    data: dict[str, Any] = json.loads((out / written).read_text())
    return data
