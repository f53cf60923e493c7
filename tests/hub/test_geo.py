"""The router's decoder with compiled coordinate checks: the contract's verdicts, exactly.

``liaison.hub.geo.decode_for_routing`` must accept what ``decode_envelope`` accepts and refuse
what it refuses with the same error (type, message, code, field path); ``_geo`` may say "not
sure" but never "valid" for coordinates the contract refuses. Both are checked here on
generated and mutated coordinate texts, at the boundaries, and through a running hub.
"""

import json
from typing import Any

import aio_pika
import msgspec
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from liaison.hub import geo
from liaison.hub.metrics import HubMetrics
from liaison.schemas.envelope import decode_envelope, error_code, error_message, error_path
from liaison.schemas.types import Point, Polygon
from liaison.schemas.wire import inbox_queue
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, decode, drain, envelope, sample_body

_geo = pytest.importorskip("liaison.hub._geo")

POINT = msgspec.json.Decoder(Point)
POLYGON = msgspec.json.Decoder(Polygon)
#: Where generated coordinates go: a Point (incident.report's location) and a Polygon
#: (hazard.area_report's polygon), in otherwise valid envelopes.
HOLE = "@@coordinates@@"


def _document(message_type: str, geometry: str) -> bytes:
    body = sample_body(message_type)
    body[geometry]["coordinates"] = HOLE
    doc = envelope("mag", ["org:unmas"], body=body)
    return json.dumps(doc).encode()


POINT_DOC = _document("incident.report", "location")
POLYGON_DOC = _document("hazard.area_report", "polygon")


def _in(doc: bytes, coordinates: bytes) -> bytes:
    return doc.replace(json.dumps(HOLE).encode(), coordinates)


def _outcome(decode_: Any, data: bytes) -> tuple[Any, ...]:
    try:
        decoded = decode_(data)
    except msgspec.ValidationError as exc:
        return ("refused", type(exc), str(exc), error_code(exc), error_path(exc))
    except msgspec.DecodeError as exc:
        return ("refused", type(exc), str(exc), error_code(exc))
    fields = msgspec.structs.asdict(decoded)
    fields.pop("body")
    return ("accepted", fields, type(decoded.body).__struct_config__.tag)


def _contract_accepts(decoder: msgspec.json.Decoder[Any], coordinates: bytes) -> bool:
    try:
        decoder.decode(b'{"coordinates":' + coordinates + b"}")
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return False
    return True


def _agree(coordinates: bytes) -> list[str]:
    """The router's decoder and the contract's agree on both documents, error for error; the
    compiled check never says valid for what the contract refuses. Returns which of the two
    checks took the value themselves."""
    taken = []
    for doc, decoder, check in (
        (POINT_DOC, POINT, _geo.point),
        (POLYGON_DOC, POLYGON, _geo.polygon),
    ):
        data = _in(doc, coordinates)
        assert _outcome(geo.decode_for_routing, data) == _outcome(decode_envelope, data)
        if check(coordinates):
            assert _contract_accepts(decoder, coordinates), coordinates
            taken.append(check.__name__)
    return taken


# --- generated coordinate texts -------------------------------------------------------------

_WS = st.sampled_from(["", "", "", " ", "\n", "\t", "\r", "  ", "\f", "\u00a0", "\v"])
_INTEGERS = st.one_of(
    st.integers(0, 200).map(str),
    st.sampled_from(["0", "00", "01", "-0", "90", "91", "89", "180", "181", "179", "1000"]),
    st.text("0123456789", min_size=1, max_size=30),
)
_FRACTIONS = st.one_of(
    st.just(""),
    st.just("."),
    st.text("0123456789", min_size=1, max_size=25).map(lambda d: "." + d),
    st.sampled_from([".0", ".00000000000001", ".00000000000002", ".000000000000007"]),
    st.sampled_from([".000000000000008", ".5", ".99999999999999999999", ".0000000000000000001"]),
)
_EXPONENTS = st.one_of(
    st.just(""),
    st.just(""),
    st.sampled_from(["e2", "E-5", "e+0", "e999", "e-400", "E", "e+", "e0", "e-1"]),
)
_NUMBERS = st.one_of(
    st.builds(
        lambda sign, i, f, e: sign + i + f + e,
        st.sampled_from(["", "", "-", "+", "--"]),
        _INTEGERS,
        _FRACTIONS,
        _EXPONENTS,
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(-181, 181).map(repr),
    st.floats(-91, 91).map(lambda v: f"{v:.6f}"),
    st.sampled_from(
        ["NaN", "Infinity", "-Infinity", "nan", "inf", ".5", "1.", "true", "null", '"1"', "[]"]
    ),
    st.sampled_from(["1e2", "1E-5", "-0", "-0.0", "0.0e0", "90.0", "-90.000", "180.00"]),
)


def _within(bound: int) -> st.SearchStrategy[str]:
    """Numbers the contract accepts for a bound, written in the usual ways and at the bound."""
    return st.one_of(
        st.builds(
            lambda sign, integer, fraction: sign + str(integer) + fraction,
            st.sampled_from(["", "-"]),
            st.integers(0, bound - 1),
            st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=15).map(".".__add__)),
        ),
        st.floats(-bound, bound).map(repr),
        st.floats(-bound, bound).map(lambda v: f"{v:.6f}"),
        st.sampled_from([str(bound), f"-{bound}", f"{bound}.0", f"-{bound}.000", "0", "-0"]),
    )


def _near(bound: int) -> st.SearchStrategy[str]:
    """The bound itself with a fraction: accepted up to half a unit in the last place."""
    return st.builds(
        lambda sign, zeros, digits: f"{sign}{bound}.{'0' * zeros}{digits}",
        st.sampled_from(["", "-"]),
        st.integers(0, 18),
        st.text("0123456789", max_size=3),
    )


_LONGITUDES = st.one_of(_within(180), _within(180), _within(180), _near(180), _NUMBERS)
_LATITUDES = st.one_of(_within(90), _within(90), _within(90), _near(90), _NUMBERS)
_CLEAN_WS = st.sampled_from(["", "", "", " ", "\n", "\t", "\r"])


@st.composite
def _position(draw: st.DrawFn, clean: bool = False) -> str:
    ws = _CLEAN_WS if clean else _WS
    if clean or draw(st.integers(0, 3)):
        numbers = [draw(_LONGITUDES), draw(_LATITUDES)]
        if clean:
            numbers = [draw(_within(180)), draw(_within(90))]
    else:
        numbers = draw(st.lists(_NUMBERS, max_size=3))
    inner = ",".join(draw(ws) + n + draw(ws) for n in numbers)
    return "[" + inner + "]"


@st.composite
def _ring(draw: st.DrawFn, clean: bool = False) -> str:
    positions = draw(st.lists(_position(clean), min_size=1, max_size=3))
    sizes = [4, 4, 5, 6, 2000, 3, 2001]
    size = draw(st.sampled_from(sizes if clean else [*sizes, 0, 1]))
    # A few distinct positions repeated to the ring's size (sizes 2,000 and 2,001 included).
    ring = [positions[i % len(positions)] for i in range(size)]
    return "[" + ("," + draw(_CLEAN_WS if clean else _WS)).join(ring) + "]"


@st.composite
def _polygon(draw: st.DrawFn, clean: bool = False) -> str:
    rings = draw(st.lists(_ring(clean), min_size=1, max_size=2))
    count = draw(st.sampled_from([1, 1, 2, 16, 17, 0]))
    return "[" + ",".join(rings[i % len(rings)] for i in range(count)) + "]"


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> bytes:
    text = draw(base).encode()
    mutation = draw(st.sampled_from(["none"] * 5 + ["truncate", "insert", "wrap", "unwrap"]))
    if mutation == "truncate" and text:
        return text[: draw(st.integers(0, len(text) - 1))]
    if mutation == "insert":
        at = draw(st.integers(0, len(text)))
        extra = draw(
            st.sampled_from([b",", b"[", b"]", b" ", b"0", b"-", b".", b"\xc3\xa9", b"\xff", b"e"])
        )
        return text[:at] + extra + text[at:]
    if mutation == "wrap":
        return b"[" + text + b"]"
    if mutation == "unwrap" and text.startswith(b"[") and text.endswith(b"]"):
        return text[1:-1]
    return text


_SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_mutated(_position(clean=True) | _position()))
@example(b"[180.00000000000001,0]")
@example(b"[0,90.000000000000007]")
@example(b"[1e2,1E-5]")
def test_positions_decide_as_the_contract(coordinates: bytes) -> None:
    """Generated and mutated Point coordinates: same verdict and error as the contract."""
    event(f"compiled check took it: {_agree(coordinates)}")


@_SETTINGS
@given(_mutated(_polygon(clean=True) | _polygon()))
def test_polygons_decide_as_the_contract(coordinates: bytes) -> None:
    """Generated and mutated Polygon coordinates (ring sizes 0..2,001, 0..17 rings): same
    verdict and error as the contract."""
    event(f"compiled check took it: {_agree(coordinates)}")


# --- boundaries, exactly --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[180,90]",
        "[-180,-90]",
        "[180.0,90.000]",
        "[-180.00000000000000,-90.0]",
        "[-0,0]",
        "[-0.0,-0]",
        "[0.5,-0.25]",
        "[ 15.6012 ,\n\t5.9347\r]",
        "[179.99999999999999,89.999999999999999]",
        "[12.345678901234567,0.00012345678901234567]",
        "[-0.000000000000000000000001,1]",
    ],
)
def test_ordinary_and_boundary_positions_take_the_compiled_path(text: str) -> None:
    """Values the contract accepts, the bounds included, are accepted by the compiled check
    itself (not only after falling back)."""
    assert _contract_accepts(POINT, text.encode())
    assert _geo.point(text.encode())


@pytest.mark.parametrize(
    ("text", "contract"),
    [
        ("[180.00000000000001,0]", True),  # rounds to 180.0 (msgspec), which the bound allows
        ("[180.00000000000002,0]", False),
        ("[0,90.000000000000007]", True),  # below 90 + half an ulp of 90 (2^-47)
        ("[0,90.000000000000008]", False),
        ("[180.1,0]", False),
        ("[181,0]", False),
        ("[0,-90.5]", False),
        ("[1e2,0]", True),
        ("[1E-5,0]", True),
        ("[1.2345678901234567890123,0]", True),
        ("[01,0]", False),
        ("[+1,0]", False),
        ("[.5,0]", False),
        ("[1.,0]", False),
        ("[NaN,0]", False),
        ("[Infinity,0]", False),
        ("[1,2,3]", False),
        ("[1]", False),
        ("[[1,2]]", False),
        ("[1,\f2]", False),
        ("[1,2", False),
        ("[1,2]]", False),
        ("[1" + "0" * 400 + ",0]", False),
        ("[0." + "0" * 40 + "1,0]", True),  # 44 bytes: long, if valid
    ],
)
def test_unusual_positions_are_left_to_the_contract(text: str, contract: bool) -> None:
    """Between a bound and the next integer, exponents, long digit strings and bad grammar:
    the compiled check says not sure, and the contract's decoder decides as it always has."""
    assert _contract_accepts(POINT, text.encode()) is contract
    assert not _geo.point(text.encode())
    _agree(text.encode())


@pytest.mark.parametrize("digits", range(1, 20))
def test_fraction_digit_runs_of_every_length_and_end(digits: int) -> None:
    """Fractions of 1..19 digits (the compiled check reads them eight bytes at a time), each
    followed by every byte near the digits and by what JSON allows there: the check accepts
    only what the contract accepts, and the router's verdict is the contract's."""
    fraction = "".join(str((i * 7 + 3) % 10) for i in range(digits))
    for end in ["", " ", "/", ":", "e", "E", "0", ".", "\x00", "\x7f", "a", "\u00e9"]:
        text = f"[1.{fraction}{end},2.{fraction}]".encode()
        if _geo.point(text):
            assert _contract_accepts(POINT, text), text
        if not end and digits < 17:  # at most 17 significant digits: taken by the check
            assert _geo.point(text)
        _agree(text)


@pytest.mark.parametrize(
    ("positions", "rings", "accepted"),
    [
        (3, 1, False),
        (4, 1, True),
        (2000, 1, True),
        (2001, 1, False),
        (4, 0, False),
        (4, 16, True),
        (4, 17, False),
    ],
)
def test_ring_and_polygon_sizes(positions: int, rings: int, accepted: bool) -> None:
    """Rings of 4..2,000 positions, 1..16 rings: the compiled check agrees with the contract
    at each limit."""
    ring = "[" + ",".join(["[15.5,5.5]"] * positions) + "]"
    text = ("[" + ",".join([ring] * rings) + "]").encode()
    assert _contract_accepts(POLYGON, text) is accepted
    assert _geo.polygon(text) is accepted
    _agree(text)


def test_a_repeated_coordinates_key_gets_the_contracts_error() -> None:
    """A geometry whose first ``coordinates`` is invalid and last valid: the contract refuses
    it (it checks every value); so does the router's decoder, written plainly or escaped."""
    body = sample_body("incident.report")
    body["location"]["coordinates"] = HOLE
    body["type"] = body.pop("type")  # the union's tag last: still one decode per geometry
    tag_last = json.dumps(envelope("mag", ["org:unmas"], body=body)).encode()
    for doc in (POINT_DOC, tag_last):
        for key in (b'"coordinates"', b'"coordinate\\u0073"', b'"\\u0063oordinates"'):
            data = _in(doc, b"[500,0]," + key + b":[1,2]")
            expected = _outcome(decode_envelope, data)
            assert expected[0] == "refused"
            assert _outcome(geo.decode_for_routing, data) == expected


def test_an_accepted_geometry_decodes_once_per_key() -> None:
    """The count the repeated-key guard relies on: one check per geometry object, and the
    key counted once per object."""
    data = _in(POLYGON_DOC, b"[[[1,2],[1,2],[1,2],[1,2]],[[3,4],[3,4],[3,4],[3,4]]]")
    geo.decode_for_routing(data)
    assert geo._Tally.checked == 1
    blanked = _geo.blank(data)
    assert blanked is not None
    assert blanked[1] == 1


def test_checked_coordinates_are_marked_and_decoded_without_a_second_pass() -> None:
    """``_geo.blank`` replaces each checked value with its geometry's mark, keeps every other
    byte, and the router's decode of the copy holds the marks: the compiled path was taken."""
    polygon = b"[[[1,2],[1,2],[1,2],[1,2]],[[3,4],[3,4],[3,4],[3,4]]]"
    for doc, coordinates, mark, field in (
        (POINT_DOC, b"[ 15.6012 ,\n5.9347]", b'"point"', "location"),
        (POLYGON_DOC, polygon, b'"polygon"', "polygon"),
    ):
        data = _in(doc, coordinates)
        blanked = _geo.blank(data)
        assert blanked is not None
        light, keys = blanked
        assert keys == 1
        assert light == _in(doc, mark)
        decoded = geo.decode_for_routing(data)
        assert bytes(getattr(decoded.body, field).coordinates) == mark
        assert _outcome(geo.decode_for_routing, data) == _outcome(decode_envelope, data)


def test_a_document_without_coordinates_is_decoded_as_it_is() -> None:
    """No key, nothing to copy: ``blank`` hands back the same object."""
    data = json.dumps(envelope("mag", ["org:unmas"], body=sample_body("sitrep"))).encode()
    blanked = _geo.blank(data)
    assert blanked is not None
    assert blanked[0] is data
    assert blanked[1] == 0


def _leading(doc: bytes, member: bytes) -> bytes:
    """``doc`` with ``member`` as the envelope's first member."""
    return b"{" + member + b"," + doc[1:]


@pytest.mark.parametrize(
    "edit",
    [
        # The key where the contract skips it (unknown fields are skipped, not refused).
        lambda d: _leading(d, b'"coordinates":[1,2]'),
        lambda d: _leading(d, b'"coordinates":[[[1,2],[1,2],[1,2],[1,2]]]'),
        # The word as a value, and as text inside a string.
        lambda d: _leading(d, b'"note":"coordinates"'),
        lambda d: _leading(d, b'"note":"\\"coordinates\\": [1,2]"'),
        lambda d: _leading(d, b'"note":"\\"coordinates":[1,2]'),
        # A polygon where a point must be, a point where a polygon must be.
        lambda d: _in(POINT_DOC, b"[[[1,2],[1,2],[1,2],[1,2]]]"),
        lambda d: _in(POLYGON_DOC, b"[1,2]"),
        # Whitespace JSON allows and forbids between the key and its value.
        lambda d: d.replace(b'"coordinates":', b'"coordinates" \n\t:\r ', 1),
        lambda d: d.replace(b'"coordinates":', b'"coordinates"\f:', 1),
        # Not an array at all, or cut short.
        lambda d: _in(POINT_DOC, b"null"),
        # The marks themselves, sent as coordinates.
        lambda d: _in(POINT_DOC, b'"point"'),
        lambda d: _in(POLYGON_DOC, b'"polygon"'),
        lambda d: _in(POINT_DOC, b"[1,2"),
    ],
)
def test_coordinates_keys_anywhere_get_the_contracts_verdict(edit: Any) -> None:
    """However the key, its value or the word ``coordinates`` is placed, the router's decoder
    says what the contract's says, error for error."""
    data = edit(_in(POINT_DOC, b"[15.6012,5.9347]"))
    assert b"coordinates" in data
    assert _outcome(geo.decode_for_routing, data) == _outcome(decode_envelope, data)


def test_a_forged_mark_behind_an_escaped_key_gets_the_contracts_error() -> None:
    """The mark sent as a Point's coordinates under a key spelt with an escape: no copy is made,
    and the contract's decoder refuses it with its own error."""
    data = _in(POINT_DOC, b'"point"').replace(b'"coordinates"', b'"coordinate\\u0073"')
    assert _geo.blank(data) is None
    expected = _outcome(decode_envelope, data)
    assert expected[0] == "refused"
    assert _outcome(geo.decode_for_routing, data) == expected


# --- the compiled path is the one in use -----------------------------------------------------


def test_this_install_uses_the_compiled_check() -> None:
    """`make install` builds ``_geo``, and the router uses it: the contract's geometry is what
    the compiled check assumes (bounds, ring and polygon sizes)."""
    assert _geo.__file__.endswith(".so")
    assert geo.DECODER_PATH == "compiled"
    assert geo.contract_shape() == {
        name: getattr(_geo, name)
        for name in (
            "LONGITUDE_BOUND",
            "LATITUDE_BOUND",
            "RING_MIN",
            "RING_MAX",
            "RINGS_MIN",
            "RINGS_MAX",
        )
    }
    metrics = HubMetrics()
    metrics.decoder.labels(geo.DECODER_PATH).set(1)
    assert metrics.registry.get_sample_value("liaison_hub_decoder", {"path": "compiled"}) == 1


def _structs(info: Any, seen: set[type]) -> set[type]:
    inspect = msgspec.inspect
    if isinstance(info, inspect.StructType):
        if info.cls in seen:
            return seen
        seen.add(info.cls)
        for field in info.fields:
            _structs(field.type, seen)
    elif isinstance(info, inspect.Metadata | inspect.ListType):
        _structs(info.type if isinstance(info, inspect.Metadata) else info.item_type, seen)
    elif isinstance(info, inspect.UnionType | inspect.TupleType):
        for item in info.types if isinstance(info, inspect.UnionType) else info.item_types:
            _structs(item, seen)
    return seen


def test_the_routing_types_keep_the_contracts_config() -> None:
    """Each Raw-geometry type subclasses its contract type with the same wire name, config
    and fields, the geometry's coordinates aside; bodies keep their wire type names."""
    routing_envelope = geo._ROUTING_ENVELOPE
    assert routing_envelope is not None
    everything = _structs(msgspec.inspect.type_info(routing_envelope), set())
    routing = [cls for cls in everything if cls.__module__ == geo.__name__]
    assert {cls.__name__ for cls in routing} >= {"RawEnvelope", "RawPoint", "RawPolygon"}
    for cls in routing:
        (contract,) = cls.__bases__
        if cls in geo.ROUTING_TAGS:
            assert geo.ROUTING_TAGS[cls] == geo.ROUTING_TAGS[contract]
        options = [name for name in dir(cls.__struct_config__) if not name.startswith("_")]
        assert "forbid_unknown_fields" in options
        for option in options:
            assert getattr(cls.__struct_config__, option) == getattr(
                contract.__struct_config__, option
            ), (cls, option)
        assert set(cls.__struct_encode_fields__) == set(contract.__struct_encode_fields__)


# --- through a running hub ------------------------------------------------------------------


@pytest.mark.broker
async def test_the_hub_reports_a_latitude_beyond_the_pole_as_before(
    hub: RunningHub, partners: dict[str, Partner], admin: aio_pika.abc.AbstractConnection
) -> None:
    """A polygon with latitude 90.5: the contract's 301, reason and field path in the error
    report, and nothing delivered."""
    body = sample_body("hazard.area_report")
    body["polygon"]["coordinates"][0][2] = [15.6043, 90.5]
    doc = envelope("mag", ["org:unmas"], body=body)
    data = json.dumps(doc).encode()
    with pytest.raises(msgspec.ValidationError) as canonical:
        decode_envelope(data)
    await partners["mag"].send(data)
    (message,) = await drain(admin, inbox_queue("mag"), expect=1)
    report = decode(message)["body"]
    assert report["type"] == "error.report"
    assert report["code"] == 301
    assert report["field_path"] == error_path(canonical.value)
    assert report["field_path"] == "$.body.polygon.coordinates[0][2][1]"
    assert report["reason"] == error_message(canonical.value)
    assert report["ref_distribution_id"] == doc["distribution_id"]
    assert await drain(admin, inbox_queue("unmas"), expect=0) == []
