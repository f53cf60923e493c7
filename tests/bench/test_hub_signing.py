"""bench/hub_signing.py: a signed workload the sample's keys accept, and both kinds of round."""

import asyncio
import secrets
from pathlib import Path

import pytest

from bench.hub_signing import KINDS, measure
from bench.workload import build_messages, sign_messages, write_directory
from liaison.sdk.signing import verify


def test_signed_workload_verifies_with_the_senders_registered_keys(tmp_path: Path) -> None:
    """Every bench message is signed by its own sender's demo key, registered in the sample."""
    # Built against the unsigned rounds' directory, as the bench builds them; the keys are the same.
    index = write_directory(secrets.token_hex(4), tmp_path / "directory.toml")
    messages = sign_messages(build_messages(index, 60, seed=1, prefix="t"))
    assert {m.sender for m in messages} == {m.sender for m in messages if m.signature}
    assert len({m.sender for m in messages}) > 3
    for m in messages:
        assert m.signature is not None
        key = verify(m.body, m.signature, index.signing_keys, signer=m.sender)
        assert key.org == m.sender


def test_bench_directories_differ_only_in_the_policy(tmp_path: Path) -> None:
    """The unsigned rounds' directory lets everyone send unsigned; the signed one requires it."""
    run_id = secrets.token_hex(4)
    plain = write_directory(run_id, tmp_path / "plain.toml")
    signed = write_directory(run_id, tmp_path / "signed.toml", signed=True)
    assert not plain.signatures_required
    assert signed.signatures_required == frozenset(signed.organisations)
    assert {o.broker_account for o in plain.organisations.values()} == {
        o.broker_account for o in signed.organisations.values()
    }


@pytest.mark.slow
def test_one_round_of_each_kind_is_delivered_and_reported() -> None:
    """Signed messages reach every inbox through a hub that requires signatures (none refused:
    the round fails on any dead letter), and the ratio is reported; no timing asserted."""
    results = asyncio.run(measure(messages=150, repeats=1, settle_seconds=1.0))
    for kind in KINDS:
        (row,) = results["rounds"][kind]
        assert row["msg_per_s"] > 0
        assert row["mover_cpu_us_per_message"] > 0
    assert results["signed_over_unsigned_msg_per_s"] > 0
    assert isinstance(results["met"], bool)
