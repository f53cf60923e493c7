"""The ledger batch as pieces (``encode_batch_pieces``): the same bytes as ``encode_batch``,
with each large body the very object the record holds, never copied."""

from hypothesis import given, settings
from hypothesis import strategies as st

from liaison.ledger.records import (
    PIECE_FROM,
    DecisionRecord,
    Outcome,
    decode_batch,
    encode_batch,
    encode_batch_pieces,
)

# Around every MessagePack length boundary a body or a batch can cross.
body_sizes = st.sampled_from(
    [0, 1, 255, 256, PIECE_FROM - 1, PIECE_FROM, 65_535, 65_536, 70_000, 240_000]
)
text = st.none() | st.text(max_size=30)


@st.composite
def decision_records(draw: st.DrawFn) -> DecisionRecord:
    size = draw(body_sizes)
    return DecisionRecord(
        record_id=draw(st.text(min_size=1, max_size=32)),
        decided_at=draw(st.floats(0, 2e9)),
        outcome=draw(st.sampled_from(list(Outcome))),
        sender=draw(text),
        recipients=draw(st.lists(st.text(max_size=12), max_size=4)),
        reason=draw(text),
        body=draw(st.binary(min_size=size, max_size=size)) if size < 300 else b"b" * size,
        signature=draw(text),
        signature_status=draw(text),
    )


@settings(max_examples=80, deadline=None)
@given(batch=st.lists(decision_records(), min_size=1, max_size=20))
def test_pieces_join_to_the_batchs_own_bytes(batch: list[DecisionRecord]) -> None:
    """Any mixture of small and large bodies: the pieces join to exactly encode_batch's bytes,
    each body of PIECE_FROM or more is itself a piece (the same object), and the batch decodes
    back to the records."""
    pieces = encode_batch_pieces(batch)
    joined = pieces if isinstance(pieces, bytes) else b"".join(pieces)
    assert joined == encode_batch(batch)
    assert decode_batch(joined).records == batch
    large = [record.body for record in batch if len(record.body) >= PIECE_FROM]
    if not large:
        assert isinstance(pieces, bytes)
    else:
        assert isinstance(pieces, list)
        assert [p for p in pieces if any(p is body for body in large)] == large


def test_a_batch_of_seventeen_and_of_65536_records_keeps_its_list_head() -> None:
    """The list's head changes form at 16 and 65,536 items; the pieces follow it."""
    for count in (16, 17, 65_536):
        batch = [
            DecisionRecord(record_id=str(n), decided_at=0.0, outcome=Outcome.DELIVERED)
            for n in range(count - 1)
        ]
        batch.append(
            DecisionRecord(
                record_id="large", decided_at=0.0, outcome=Outcome.REFUSED, body=b"x" * PIECE_FROM
            )
        )
        assert b"".join(encode_batch_pieces(batch)) == encode_batch(batch)
