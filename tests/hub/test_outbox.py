"""The hub's hand-encoded delivery properties are exactly what pamqp would put on the wire."""

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as spec
from pamqp.header import ContentHeader

from schemas.wire import CONTENT_TYPE
from services.hub.outbox import delivery_properties
from services.hub.refusal import HUB_SENDER

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
