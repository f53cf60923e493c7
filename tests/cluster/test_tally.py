"""The failover test's bookkeeping: what counts as lost, refused, repeated and out of order."""

import pytest

from tests.cluster.load import RecipientLog, SenderLog, everyone_again_after, tally


def test_tally_counts_each_kind_of_anomaly() -> None:
    """A missing message, a repeat and a late first arrival are told apart."""
    sender = SenderLog("mag", confirmed=["1", "2", "3", "4"])
    arrivals = [("1", 0.0), ("3", 0.1), ("2", 0.2), ("3", 0.3)]
    counts = tally(RecipientLog("unmas", arrivals=arrivals), [sender])
    assert (counts.lost, counts.refused, counts.duplicates, counts.inversions) == (1, 0, 1, 1)


def test_a_message_answered_to_its_sender_is_refused_not_lost_nor_out_of_order() -> None:
    """Reported messages leave the lost count and the order check; arriving anyway is counted."""
    sender = SenderLog("mag", confirmed=["1", "2", "3", "4"])
    arrivals = [("1", 0.0), ("3", 0.1), ("2", 0.2)]
    counts = tally(RecipientLog("unmas", arrivals=arrivals), [sender], {"2": 502, "4": 502})
    assert (counts.lost, counts.refused, counts.refused_yet_arrived) == (0, 1, 1)
    assert counts.inversions == 0


def test_orders_are_per_sender() -> None:
    """Two senders' messages interleaving is no inversion; one sender's going backwards is."""
    a = SenderLog("mag", confirmed=["a1", "a2"])
    b = SenderLog("nrc", confirmed=["b1", "b2"])
    fine = [("b1", 0.0), ("a1", 0.1), ("b2", 0.2), ("a2", 0.3)]
    assert tally(RecipientLog("unmas", arrivals=fine), [a, b]).inversions == 0
    backwards = [("a1", 0.0), ("b2", 0.1), ("b1", 0.2), ("a2", 0.3)]
    assert tally(RecipientLog("unmas", arrivals=backwards), [a, b]).inversions == 1


def test_routing_again_counts_when_every_recipient_has_a_new_message() -> None:
    """A copy in one inbox is not enough: the time is when one new message is in all."""
    sender = SenderLog("mag", first_tried={"old": 0.5, "a": 2.0, "b": 3.0})
    unmas = RecipientLog("unmas", arrivals=[("old", 1.5), ("a", 2.1), ("b", 3.2)])
    unicef = RecipientLog("unicef", arrivals=[("old", 1.6), ("b", 3.5), ("a", 9.0)])
    assert everyone_again_after(1.0, [unmas, unicef], [sender]) == 2.5
    assert everyone_again_after(1.0, [unmas], [sender]) == pytest.approx(1.1)
    assert everyone_again_after(5.0, [unmas, unicef], [sender]) is None
