"""The hub's outbox: hand-encoded delivery properties exactly as pamqp would put them on the
wire, and the watchdog that gives up on a channel whose broker stopped confirming."""

import asyncio
import contextlib
import itertools
from datetime import UTC, datetime
from typing import cast
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.body import ContentBody
from pamqp.frame import marshal
from pamqp.header import ContentHeader

from liaison.hub.channel import ConfirmChannel
from liaison.hub.outbox import Outbox
from liaison.hub.properties import delivery_properties
from liaison.schemas.wire import CONTENT_TYPE, HUB_SENDER

short = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
# The hub never sends an empty message id or type (pamqp would leave such a property out).
present = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    message_id=present,
    message_type=present,
    timestamp=st.integers(min_value=0, max_value=4_102_444_800),  # to 2100
    expiration=st.none() | st.integers(min_value=1, max_value=10**9).map(str),
    headers=st.dictionaries(
        st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=20),
        short | st.lists(short, max_size=5),
        max_size=5,
    ),
)
def test_delivery_properties_match_pamqp(
    message_id: str,
    message_type: str,
    timestamp: int,
    expiration: str | None,
    headers: dict[str, str | list[str]],
) -> None:
    """For any ids, timestamp, expiration and header table, the bytes equal pamqp's."""
    ours = delivery_properties(
        message_id=message_id,
        message_type=message_type,
        timestamp=timestamp,
        expiration=expiration,
        headers=headers,
    )
    reference = spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        headers=dict(sorted(headers.items())),
        delivery_mode=2,
        expiration=expiration,
        message_id=message_id,
        timestamp=datetime.fromtimestamp(timestamp, UTC),
        message_type=message_type,
        app_id=HUB_SENDER,
    )
    marshalled = ContentHeader(properties=reference, body_size=0).marshal()
    # pamqp's ContentHeader payload: class id, weight, body size (12 bytes), then properties.
    assert ours == marshalled[12:]


class _StuckChannel:
    """The two parts of a ConfirmChannel the confirm watchdog reads: the oldest unconfirmed
    publish, and close."""

    def __init__(self) -> None:
        self.confirmations: dict[int, object] = {}
        self.closed_with: BaseException | None = None

    def oldest_unconfirmed(self) -> int | None:
        return next(iter(self.confirmations), None)

    async def close(self, exc: BaseException) -> None:
        self.closed_with = exc


async def test_watchdog_closes_the_channel_when_a_confirm_never_comes() -> None:
    """A publish left unconfirmed past the timeout closes the channel (so it is redelivered)."""
    channel = _StuckChannel()
    channel.confirmations[7] = object()
    outbox = Outbox(cast(ConfirmChannel, channel), confirm_timeout=0.2)
    await asyncio.wait_for(outbox.watch(), 5)
    assert isinstance(channel.closed_with, ConnectionError)
    assert "no publish confirm" in str(channel.closed_with)


async def test_watchdog_leaves_a_channel_whose_confirms_keep_coming() -> None:
    """Confirms that arrive, however many are in flight, never trip the watchdog."""
    channel = _StuckChannel()
    outbox = Outbox(cast(ConfirmChannel, channel), confirm_timeout=0.5)
    watch = asyncio.create_task(outbox.watch())
    # Four times the timeout, each confirm arriving well within it.
    for tag in range(1, 101):
        channel.confirmations[tag] = object()
        await asyncio.sleep(0.02)
        channel.confirmations.pop(tag)
    assert not watch.done()
    assert channel.closed_with is None
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch


class _WritingChannel:
    """What Outbox.publish and send use of a ConfirmChannel, keeping what is written."""

    def __init__(self, max_content_size: int) -> None:
        self.number = 3
        self.max_content_size = max_content_size
        self.is_closed = False
        self.written: list[bytes] = []
        self.pieces: list[bytes | memoryview] = []

    def expect_confirm(self) -> "asyncio.Future[None]":
        return asyncio.get_running_loop().create_future()

    async def write(self, payload: bytes | list[bytes | memoryview]) -> None:
        pieces = payload if isinstance(payload, list) else [payload]
        self.pieces += pieces
        self.written.append(b"".join(pieces))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(
        st.sampled_from([0, 1, 7, 8, 9, 16, 17, 50]) | st.integers(0, 64), min_size=1, max_size=6
    )
)
async def test_published_frames_are_pamqps_for_any_body_size(sizes: list[int]) -> None:
    """Bodies split into body frames by the channel's frame size (none for an empty body), and
    large bodies closing a write of their own: the bytes equal pamqp's marshalling of the same
    frames, and every write ends where a publish ends (a message's frames stay together)."""
    channel = _WritingChannel(max_content_size=8)
    outbox = Outbox(cast(ConfirmChannel, channel), confirm_timeout=5)
    properties = spec.Basic.Properties(delivery_mode=2)
    expected: list[bytes] = []
    bodies = []
    with patch("liaison.hub.outbox._LARGE_BODY", 17), patch("liaison.hub.outbox._APART", 8):
        for n, size in enumerate(sizes):
            body = bytes(range(n, n + size))
            bodies.append(body)
            outbox.publish(body, exchange="x", routing_key=f"k{n}", properties=properties)
            frames = [
                marshal(spec.Basic.Publish(exchange="x", routing_key=f"k{n}"), 3),
                marshal(ContentHeader(properties=properties, body_size=size), 3),
                *(marshal(ContentBody(body[i : i + 8]), 3) for i in range(0, size, 8)),
            ]
            expected.append(b"".join(frames))
    sender = asyncio.create_task(outbox.send())
    for _ in range(3):
        await asyncio.sleep(0)
    sender.cancel()
    assert b"".join(channel.written) == b"".join(expected)
    ends = set(itertools.accumulate(len(e) for e in expected))
    assert set(itertools.accumulate(len(w) for w in channel.written)) <= ends
    assert len(channel.written) == 1 + sum(size >= 17 for size in sizes[:-1])
    # A large body's frames of _APART bytes or more reach the writer as views of the body
    # itself (no copy); smaller pieces are joined.
    views = [p for p in channel.pieces if isinstance(p, memoryview)]
    assert all(any(v.obj is body for body in bodies) for v in views)
    large = [body for body in bodies if len(body) >= 17]
    chunks = [body[i : i + 8] for body in large for i in range(0, len(body), 8)]
    assert {chunk for chunk in chunks if len(chunk) == 8} <= {bytes(v) for v in views}


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.integers(0, 40), min_size=1, max_size=6))
async def test_a_body_given_as_pieces_is_framed_as_its_join(pieces: list[int]) -> None:
    """A body handed over as pieces (the ledger's batches): the same frames pamqp marshals for
    the joined body, body frames cut across pieces, and in a large body's write the large pieces
    reaching the writer as the pieces themselves or views of them (no copy)."""
    channel = _WritingChannel(max_content_size=8)
    outbox = Outbox(cast(ConfirmChannel, channel), confirm_timeout=5)
    properties = spec.Basic.Properties(delivery_mode=2)
    parts = [bytes(range(n, n + size)) for n, size in enumerate(pieces)]
    body = b"".join(parts)
    with patch("liaison.hub.outbox._LARGE_BODY", 17), patch("liaison.hub.outbox._APART", 8):
        outbox.publish(parts, exchange="x", routing_key="k", properties=properties)
    sender = asyncio.create_task(outbox.send())
    for _ in range(3):
        await asyncio.sleep(0)
    sender.cancel()
    expected = [
        marshal(spec.Basic.Publish(exchange="x", routing_key="k"), 3),
        marshal(ContentHeader(properties=properties, body_size=len(body)), 3),
        *(marshal(ContentBody(body[i : i + 8]), 3) for i in range(0, len(body), 8)),
    ]
    assert b"".join(channel.written) == b"".join(expected)
    # A large body's write (_LARGE_BODY, 17 here) keeps pieces of _APART (8) bytes apart: each
    # part's stretch inside one body frame, when that long, reaches the writer uncopied.
    if len(body) >= 17:
        offset = 0
        for part in parts:
            cuts = sorted({0, len(part), *range(-offset % 8, len(part), 8)})
            stretches = [b - a for a, b in itertools.pairwise(cuts)]
            uncopied = [
                p
                for p in channel.pieces
                if p is part or (isinstance(p, memoryview) and p.obj is part)
            ]
            assert sum(map(len, uncopied)) == sum(n for n in stretches if n >= 8)
            offset += len(part)
