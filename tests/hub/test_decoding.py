"""The router holds the garbage collector off while it reads a large message, and only then."""

import gc
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from liaison.directory.index import load_directory
from liaison.hub.decisions import Delivery, Refusal
from liaison.hub.decoding import SMALL_BODY_BYTES, CollectorHeldOff
from liaison.hub.router import Router
from liaison.schemas.codes import ErrorCode
from liaison.schemas.envelope import decode_envelope, encode, error_path
from liaison.schemas.examples import EXAMPLES
from liaison.schemas.messages import hazards as hz
from liaison.schemas.types import Polygon
from liaison.schemas.wire import MAX_MESSAGE_BYTES
from tests.hub.support import demo_signature

DIRECTORY = Path(__file__).resolve().parents[2] / "deploy" / "directory.toml"


def _alert(positions: int) -> bytes:
    """A hazard alert whose areas carry ``positions`` positions, rings of 1,000."""
    rng = random.Random(5)
    ring = [(round(rng.uniform(14, 27), 6), round(rng.uniform(2, 11), 6)) for _ in range(999)]
    ring.append(ring[0])
    areas = [
        hz.AlertArea(area_desc=f"area {i}", polygon=Polygon(coordinates=[ring]))
        for i in range(max(1, positions // 1000))
    ]
    example = EXAMPLES["hazard.alert"]
    body = msgspec.structs.replace(example.body, area=areas)
    return encode(
        msgspec.structs.replace(example, sent_at=datetime.now(UTC), expires_at=None, body=body)
    )


@pytest.fixture
def collections() -> Iterator[list[str]]:
    """Every garbage collection that starts while the test runs."""
    started: list[str] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(f"gen{info['generation']}")

    gc.callbacks.append(callback)
    try:
        yield started
    finally:
        gc.callbacks.remove(callback)


def _router() -> Router:
    return Router(load_directory(DIRECTORY), max_message_bytes=MAX_MESSAGE_BYTES)


def _decide(router: Router, body: bytes) -> Delivery | Refusal:
    # The example's sender, unmas, may send hazard alerts to anyone (deploy/directory.toml).
    return router.decide(
        body,
        user_id="unmas",
        routing_key="unmas",
        content_type="application/json",
        signature=demo_signature("unmas", body),
    )


def test_a_large_polygon_is_routed_without_a_collection(collections: list[str]) -> None:
    """5,000 positions: decoding alone sets the collector off; the router's decision does not."""
    body = _alert(5000)
    assert len(body) > SMALL_BODY_BYTES
    router = _router()
    decode_envelope(body)
    assert collections, "the plain decode of 5,000 tuples should set the collector off"
    collections.clear()
    verdict = _decide(router, body)
    assert isinstance(verdict, Delivery), verdict
    assert collections == []
    assert gc.isenabled()


def test_a_refused_large_polygon_keeps_the_contracts_error() -> None:
    """A latitude beyond the pole deep in a large body: the contract's path in the refusal, and
    the collector back on afterwards."""
    body = _alert(3000)
    # The last position of the last ring, replaced by one 1 degree beyond the pole.
    head, _, tail = body.rpartition(b"],[")
    bad = head + b"],[20.5,91.0" + tail[tail.index(b"]") :]
    with pytest.raises(msgspec.ValidationError) as canonical:
        decode_envelope(bad)
    verdict = _decide(_router(), bad)
    assert isinstance(verdict, Refusal)
    assert verdict.code is ErrorCode.INVALID_BODY
    assert verdict.field_path == error_path(canonical.value)
    assert verdict.field_path.startswith("$.body.area[2].polygon.coordinates[0]")
    assert gc.isenabled()


def test_the_collector_comes_back_as_it_was() -> None:
    """Held off inside, on again after; a collector someone else switched off stays off."""
    with CollectorHeldOff():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with CollectorHeldOff():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
