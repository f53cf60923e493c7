"""The error-code catalogue and the message catalogue are complete and consistent."""

from liaison.schemas.catalogue import FAMILIES, MESSAGE_TYPES, tag_of
from liaison.schemas.codes import BANDS, CATALOGUE, ErrorCode, info, markdown_table
from liaison.schemas.envelope import Body
from liaison.schemas.types import CLASSIFICATION_RANK, Classification


def test_every_code_is_catalogued() -> None:
    """Each ErrorCode has a catalogue entry whose code and name match it."""
    assert set(CATALOGUE) == set(ErrorCode)
    for code in ErrorCode:
        assert info(code).code == int(code)
        assert info(code).name == code.name.lower()


def test_band_matches_hundreds_digit() -> None:
    """A code's band is the one its hundreds digit names (1xx transport/format ... 5xx)."""
    for code, entry in CATALOGUE.items():
        assert entry.band == BANDS[int(code) // 100]


def test_names_and_codes_unique() -> None:
    """No two codes share a name or a number."""
    assert len({e.name for e in CATALOGUE.values()}) == len(CATALOGUE)
    assert len({e.code for e in CATALOGUE.values()}) == len(CATALOGUE)


def test_pinned_code_numbers() -> None:
    """Code numbers partners rely on are pinned: they never change."""
    assert (ErrorCode.MALFORMED, ErrorCode.UNSUPPORTED_SCHEMA_VERSION) == (100, 103)
    assert (ErrorCode.SENDER_MISMATCH, ErrorCode.RESERVED_TYPE) == (202, 206)
    assert (ErrorCode.INVALID_BODY, ErrorCode.INCONSISTENT, ErrorCode.EXPIRED) == (301, 303, 400)
    assert (ErrorCode.NO_RECIPIENTS, ErrorCode.POISON) == (501, 503)


def test_markdown_table_lists_every_code() -> None:
    """The generated codes table has one row per code."""
    table = markdown_table()
    for entry in CATALOGUE.values():
        assert f"| {entry.code} | `{entry.name}` |" in table


def test_catalogue_has_all_23_types_in_families() -> None:
    """23 wire types (21 + status.request/report), each in one family, all in the Body union."""
    assert len(MESSAGE_TYPES) == 23
    in_families = [t for types in FAMILIES.values() for t in types]
    assert sorted(in_families) == sorted(MESSAGE_TYPES)
    assert set(Body.__args__) == set(MESSAGE_TYPES.values())
    for type_name, cls in MESSAGE_TYPES.items():
        assert tag_of(cls) == type_name


def test_classification_rank_orders_sensitivity() -> None:
    """Unclassified < confidential < strictly confidential, ranks 0, 1, 2."""
    assert [CLASSIFICATION_RANK[c] for c in Classification] == [0, 1, 2]
