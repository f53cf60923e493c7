"""The hub's decision answers every input: a short run of `make fuzz`, and pathological JSON."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_decide import check, make_router, seeds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pathological import pathological_documents

from liaison.hub.decisions import Refusal
from liaison.hub.router import Router
from liaison.schemas.codes import ErrorCode

HARNESS = Path(__file__).with_name("fuzz_decide.py")


@pytest.fixture(scope="module")
def router() -> Router:
    """One router over deploy/directory.toml, as the fuzzer builds it."""
    return make_router()


def test_fuzz_smoke(tmp_path: Path) -> None:
    """`make fuzz` for 3,000 inputs: atheris runs the harness and finds no failing input."""
    if importlib.util.find_spec("atheris") is None:
        pytest.fail("atheris is missing: `make pytest` installs it (pip install -e '.[fuzz]')")
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            "-runs=3000",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/crash-",
            str(tmp_path / "corpus"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    # libFuzzer ran the instrumented harness to the end, guided by coverage (cov: edges seen).
    instrumented = re.search(r"Instrumenting (\d+) functions of Liaison", output)
    assert instrumented is not None, output[-2000:]
    # The decision path's modules (envelope, router, directory, reports), not a handful.
    assert int(instrumented.group(1)) >= 200, instrumented.group(0)
    assert " cov: " in output, output[-2000:]
    assert "Done 3000 runs" in output, output[-2000:]
    assert not list(tmp_path.glob("crash-*")), "the fuzzer saved a crashing input"
    assert len(list((tmp_path / "corpus").iterdir())) >= len(seeds())


def test_every_seed_gets_a_decision(router: Router) -> None:
    """Every seed (examples and pathological documents, under each property choice) decides."""
    for seed in seeds():
        check(router, seed)


@pytest.mark.parametrize("header", [1, 9, 65])
def test_deep_nesting_is_refused_as_malformed_with_its_id(router: Router, header: int) -> None:
    """A 1,000-level document gets a 100 (or an earlier code) naming its distribution id."""
    doc = b'{"distribution_id": "mag-deep-1", "body": {"type": "ack", "x": '
    data = doc + b"[" * 1_000 + b"]" * 1_000 + b"}}"
    decision = router.decide(
        data, user_id="mag", routing_key="mag", content_type="application/json"
    )
    assert isinstance(decision, Refusal)
    assert decision.code is ErrorCode.MALFORMED
    assert (decision.distribution_id, decision.message_type) == ("mag-deep-1", "ack")
    check(router, bytes([header]) + data)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(min_value=0, max_value=255), pathological_documents())
def test_pathological_json_gets_a_decision(router: Router, header: int, data: bytes) -> None:
    """Pathological JSON under any properties gets a decision with a catalogue code."""
    check(router, bytes([header]) + data)
