"""What text search reads of a message (``search_text``): pure, bad input included."""

import msgspec

from liaison.ledger.search_text import search_text

ENVELOPE = {
    "schema_version": "1.0",
    "distribution_id": "okapi-7",
    "sender": "mag",
    "sent_at": "2026-11-23T10:00:00+00:00",
    "recipients": ["group:icg-ma", "org:unmas"],
    "incident_id": "INC-7",
    "precedence": "flash",
    "body": {
        "type": "hazard.eo_spot_report",
        "location": {"type": "Point", "coordinates": [15.6012, 5.9347]},
        "location_desc": "RN3 km 4 west of Bouar",
        "quantity": 3,
        "marked": True,
        "found_at": "2024-03-12T06:15:00Z",
        "surveyed_on": "2024-03-13",
        "casualties": [],
        "photos": None,
        "notes": ["2024-03-12 second visit", {"by": "MAG EOD team 3"}],
    },
}


def test_only_the_bodys_strings_are_searched() -> None:
    """The body's string values, in order, are kept; its keys, numbers, booleans, nulls,
    dates and times, and every envelope field are left out."""
    text = search_text(msgspec.json.encode(ENVELOPE))
    assert text is not None
    assert text.splitlines() == [
        "hazard.eo_spot_report",
        "Point",
        "RN3 km 4 west of Bouar",
        "2024-03-12 second visit",
        "MAG EOD team 3",
    ]


def test_json_without_a_body_gives_all_its_strings() -> None:
    """A refused message with no ``body`` object is searched by every string value it has."""
    text = search_text(b'{"sender": "mag", "note": ["route", 4, {"k": "closed"}]}')
    assert text == "mag\nroute\nclosed"


def test_bodies_that_are_not_json_or_not_text() -> None:
    """Text that is not JSON is searched whole (NULs removed); bytes that are not UTF-8 give
    nothing to search."""
    assert search_text(b"{not json \x00 at all") == "{not json  at all"
    assert search_text(b"\xff\xfe{}") is None
    assert search_text(b'{"body": "a\\u0000b"}') == "ab"


def test_json_too_deep_to_decode_is_searched_as_text() -> None:
    """JSON nested deeper than msgspec decodes (the hub refuses it as malformed) is searched as
    its whole text, never raises."""
    deep = b'{"body": ["top", ' + b"[" * 5000 + b'"deep"' + b"]" * 5000 + b"]}"
    assert search_text(deep) == deep.decode()
