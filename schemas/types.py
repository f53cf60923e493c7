"""Constrained types shared by the envelope and every message body.

Constraints live here, in the types, so the generated JSON Schema and msgspec validation are
built from the same declaration and cannot drift apart.
"""

import enum
from datetime import date, datetime
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "CLASSIFICATION_RANK",
    "DISTRIBUTION_ID_MAX",
    "DISTRIBUTION_ID_PATTERN",
    "Address",
    "AwareDatetime",
    "Classification",
    "Count",
    "Date",
    "DistributionId",
    "GroupId",
    "Keyword",
    "Latitude",
    "Longitude",
    "MissionId",
    "OrgId",
    "Percent",
    "Point",
    "Polygon",
    "Position",
    "Precedence",
    "Reference",
    "ShortText",
    "SquareMetres",
    "Status",
    "Text",
    "Unit",
    "Uri",
    "ecma_pattern",
    "whole",
]

#: Organisation ids: 2-32 characters. Everywhere an organisation is named (sender, `org:`
#: addresses, ack.ref_sender, the directory) uses this one pattern.
_ORG_SLUG = r"[a-z][a-z0-9-]{1,31}"
#: Group, role and mission ids: 2-48 characters, as the directory defines them (longer than an
#: organisation id because they often compose several names, e.g. `minusca-tcc`).
_NAME_SLUG = r"[a-z][a-z0-9-]{1,47}"


def whole(body: str) -> str:
    """A pattern that ``body`` must match from the first character to the last.

    msgspec applies patterns with ``re.search``, where ``$`` also matches just before a final
    newline, so the hub would take ``"unmas\\n"`` for ``unmas``; ``\\Z`` ends at the end only.
    ECMA-262, the published schemas' dialect, has no ``\\Z`` but its ``$`` already means the
    end: ``ecma_pattern`` writes the published form.
    """
    return rf"^{body}\Z"


def ecma_pattern(pattern: str) -> str:
    """The published (ECMA-262) form of a pattern built by ``whole``.

    Kept to the interoperable subset JSON Schema recommends (no look-around, which Go's and
    Rust's regex engines lack), so validators in every partner's language accept it.
    """
    return pattern[:-2] + "$" if pattern.endswith("\\Z") else pattern


#: A sender's distribution id, as the pattern the envelope declares.
DISTRIBUTION_ID_PATTERN: Final = whole(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
#: The longest distribution id.
DISTRIBUTION_ID_MAX: Final = 128

OrgId = Annotated[
    str,
    Meta(
        pattern=whole(_ORG_SLUG),
        description="Organisation id, as registered in the Liaison directory (e.g. `unmas`): "
        "2-32 characters.",
    ),
]
MissionId = Annotated[
    str,
    Meta(pattern=whole(_NAME_SLUG), description="Mission id, lower case (e.g. `minusca`)."),
]
GroupId = Annotated[
    str,
    Meta(pattern=whole(_NAME_SLUG), description="Coordination group id (e.g. `icg-ma`)."),
]
Address = Annotated[
    str,
    Meta(
        pattern=whole(rf"(org:{_ORG_SLUG}|(group|role|mission):{_NAME_SLUG})"),
        description="Recipient: `org:<id>` (an organisation id, 2-32 characters), "
        "`group:<id>`, `role:<id>` or `mission:<id>` (2-48 characters).",
    ),
]
DistributionId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=DISTRIBUTION_ID_MAX,
        pattern=DISTRIBUTION_ID_PATTERN,
        description="Sender-chosen id, unique per sender: the idempotency key.",
    ),
]
Reference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._:/-]*"),
        description="An identifier from another system (incident, task, request, area).",
    ),
]
AwareDatetime = Annotated[
    datetime, Meta(tz=True, description="RFC 3339 timestamp with a UTC offset.")
]
Date = Annotated[date, Meta(description="Calendar date, YYYY-MM-DD.")]

ShortText = Annotated[str, Meta(min_length=1, max_length=200)]
Text = Annotated[str, Meta(min_length=1, max_length=4000)]
Keyword = Annotated[str, Meta(min_length=1, max_length=64, pattern=whole(r"\S(.*\S)?"))]
Unit = Annotated[str, Meta(min_length=1, max_length=32, description="Unit of measure.")]
Uri = Annotated[
    str, Meta(max_length=2048, pattern=whole(r"https://\S+"), description="An https:// link.")
]

Count = Annotated[int, Meta(ge=0, le=10_000_000)]
Percent = Annotated[int, Meta(ge=0, le=100)]
SquareMetres = Annotated[float, Meta(ge=0, le=1e12, description="Area in square metres.")]

Latitude = Annotated[float, Meta(ge=-90, le=90, description="WGS 84 latitude, degrees.")]
Longitude = Annotated[float, Meta(ge=-180, le=180, description="WGS 84 longitude, degrees.")]
Position = tuple[Longitude, Latitude]
_Ring = Annotated[
    list[Position],
    Meta(min_length=4, max_length=2000, description="Closed ring: first position = last."),
]


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """A GeoJSON Point: `coordinates` is `[longitude, latitude]` (WGS 84)."""

    type: Literal["Point"] = "Point"
    coordinates: Position


class Polygon(msgspec.Struct, frozen=True, kw_only=True):
    """A GeoJSON Polygon: an outer ring, then any holes; each ring has at least 4 positions."""

    type: Literal["Polygon"] = "Polygon"
    coordinates: Annotated[list[_Ring], Meta(min_length=1, max_length=16)]


class Precedence(enum.StrEnum):
    """How fast the recipient must act; `flash` goes to the recipient's flash inbox."""

    FLASH = "flash"
    IMMEDIATE = "immediate"
    PRIORITY = "priority"
    ROUTINE = "routine"


class Classification(enum.StrEnum):
    """UN information sensitivity (ST/SGB/2007/6)."""

    UNCLASSIFIED = "unclassified"
    CONFIDENTIAL = "confidential"
    STRICTLY_CONFIDENTIAL = "strictly_confidential"


#: Order of sensitivity: a recipient may read a message if its clearance rank is at least this.
CLASSIFICATION_RANK: Final[dict[Classification, int]] = {
    Classification.UNCLASSIFIED: 0,
    Classification.CONFIDENTIAL: 1,
    Classification.STRICTLY_CONFIDENTIAL: 2,
}


class Status(enum.StrEnum):
    """Whether to act on the message: real, an exercise, or a technical test."""

    ACTUAL = "actual"
    EXERCISE = "exercise"
    TEST = "test"
