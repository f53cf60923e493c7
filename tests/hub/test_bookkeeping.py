"""Bookkeeping: the dedupe window's bounds (the SDK's settled ids use it) and the hub's in-order
multiple-ack tracker."""

from liaison.hub.acks import AckTracker
from liaison.sdk.dedupe import DedupeWindow


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dedupe_forgets_after_the_window() -> None:
    """A key is a duplicate inside the time window and not after it."""
    clock = FakeClock()
    window = DedupeWindow(seconds=10, max_entries=100, clock=clock)
    window.add("a")
    clock.now += 9
    assert "a" in window
    clock.now += 2
    assert "a" not in window
    window.add("b")
    assert len(window) == 1


def test_dedupe_is_bounded_in_entries() -> None:
    """The oldest keys are evicted once the window holds max_entries."""
    window = DedupeWindow(seconds=3600, max_entries=3, clock=FakeClock())
    for key in "abcde":
        window.add(key)
    assert len(window) == 3
    assert "a" not in window
    assert "e" in window


def test_dedupe_discard_allows_retry() -> None:
    """A discarded key (failed delivery) is no longer a duplicate."""
    window = DedupeWindow(seconds=60, max_entries=10, clock=FakeClock())
    window.add("a")
    window.discard("a")
    assert "a" not in window


def test_acks_in_order_ack_each() -> None:
    """In-order completion acks each tag as it finishes."""
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.begin(tag)
    assert [tracker.finish(t) for t in (1, 2, 3)] == [1, 2, 3]
    assert len(tracker) == 0


def test_acks_out_of_order_wait_for_the_prefix() -> None:
    """A later tag finishing first is held until every earlier tag is done."""
    tracker = AckTracker()
    for tag in (1, 2, 3, 4):
        tracker.begin(tag)
    assert tracker.finish(3) is None
    assert tracker.finish(2) is None
    assert tracker.finish(1) == 3
    assert tracker.finish(4) == 4


def test_forgotten_tag_does_not_block() -> None:
    """A tag rejected individually no longer holds back the tags after it."""
    tracker = AckTracker()
    for tag in (1, 2, 3):
        tracker.begin(tag)
    assert tracker.finish(2) is None
    assert tracker.forget(1) == 2
    assert tracker.finish(3) == 3
    assert len(tracker) == 0
