"""Pure parts of the SDK: envelope composition, time-to-live parsing, the dedupe window."""

from datetime import UTC, datetime, timedelta

import pytest

from liaison.schemas.examples import example
from liaison.schemas.types import Precedence
from liaison.sdk import InvalidArgument, compose, parse_ttl
from liaison.sdk.dedupe import DedupeWindow


def test_compose_fills_the_envelope() -> None:
    """compose sets sender, a fresh uuid-based id, sent_at now (UTC) and expiry from ttl."""
    now = datetime(2024, 3, 12, 8, 0, tzinfo=UTC)
    envelope = compose(
        example("sitrep").body,
        sender="minusca",
        recipients=["org:dpko"],
        precedence="flash",
        ttl=timedelta(hours=1),
        now=now,
    )
    assert envelope.sender == "minusca"
    assert envelope.distribution_id.startswith("minusca-")
    assert len(envelope.distribution_id) == len("minusca-") + 32
    assert envelope.sent_at == now
    assert envelope.expires_at == now + timedelta(hours=1)
    assert envelope.precedence is Precedence.FLASH


def test_compose_refuses_both_expiries() -> None:
    """An absolute expiry and a ttl together are a mistake, not a silent choice."""
    with pytest.raises(InvalidArgument):
        compose(
            example("sitrep").body,
            sender="minusca",
            recipients=["org:dpko"],
            ttl=timedelta(hours=1),
            expires_at=datetime.now(UTC),
        )


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1.5h", 5400)]
)
def test_parse_ttl(text: str, seconds: float) -> None:
    """Durations use s, m, h or d."""
    assert parse_ttl(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1", "1w", "-1h", "0s", "h"])
def test_parse_ttl_rejects(text: str) -> None:
    """Anything else is an InvalidArgument with an example of the right form."""
    with pytest.raises(InvalidArgument, match=r"90s, 15m, 1h or 2d|positive"):
        parse_ttl(text)


def test_seen_window_is_bounded_in_time_and_size() -> None:
    """Ids expire after the window and the oldest are evicted beyond max_entries."""
    clock = [0.0]
    seen = DedupeWindow(seconds=10, max_entries=3, clock=lambda: clock[0])
    for key in "abcd":
        seen.add(key)
    assert "a" not in seen
    assert all(k in seen for k in "bcd")
    assert len(seen) == 3
    clock[0] = 10.5
    assert "d" not in seen
