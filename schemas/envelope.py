"""The envelope around every message: routing, handling and correlation, then a typed body.

Shape borrowed from EDXL-DE 2.0. The body is a tagged union keyed by its `type` field; one
decoder for the whole document is built at import and reused.
"""

import re
from typing import Annotated, Any, Final, TypeAlias

import msgspec
from msgspec import Meta

from liaison.schemas.codes import ErrorCode
from liaison.schemas.messages.coordination import (
    DdrReport,
    InformationRequest,
    InformationResponse,
    MeetingNotice,
)
from liaison.schemas.messages.hazards import (
    AccessRestriction,
    AreaReport,
    ClearanceReport,
    EoSpotReport,
    HazardAlert,
    IncidentReport,
)
from liaison.schemas.messages.operations import (
    GuidanceNotice,
    MandateUpdate,
    Sitrep,
    TaskingOrder,
    TaskingStatus,
)
from liaison.schemas.messages.resources import (
    ResourceDeploymentStatus,
    ResourceRelease,
    ResourceRequest,
    ResourceResponse,
)
from liaison.schemas.messages.system import Ack, ErrorReport, StatusReport, StatusRequest
from liaison.schemas.types import (
    Address,
    AwareDatetime,
    Classification,
    DistributionId,
    OrgId,
    Precedence,
    Reference,
    Status,
    whole,
)

__all__ = [
    "ENCODER",
    "ENVELOPE_DECODER",
    "SCHEMA_VERSION",
    "Body",
    "Envelope",
    "MalformedMessage",
    "SchemaVersion",
    "decode_envelope",
    "encode",
    "error_code",
    "error_message",
    "error_path",
]

#: The version this code writes. Minor bumps are additive; see `schemas/EVOLUTION.md`.
SCHEMA_VERSION: Final = "1.0"

SchemaVersion = Annotated[
    str, Meta(pattern=whole(r"1\.[0-9]+"), description="Contract version `1.<minor>`.")
]

Body: TypeAlias = (
    HazardAlert
    | EoSpotReport
    | AreaReport
    | ClearanceReport
    | IncidentReport
    | AccessRestriction
    | MandateUpdate
    | TaskingOrder
    | TaskingStatus
    | Sitrep
    | GuidanceNotice
    | ResourceRequest
    | ResourceResponse
    | ResourceDeploymentStatus
    | ResourceRelease
    | MeetingNotice
    | InformationRequest
    | InformationResponse
    | DdrReport
    | Ack
    | ErrorReport
    | StatusRequest
    | StatusReport
)


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One Liaison message: who sends it to whom, how to handle it, and the typed body."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    distribution_id: DistributionId
    sender: OrgId
    sent_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    status: Status = Status.ACTUAL
    recipients: Annotated[list[Address], Meta(min_length=1, max_length=64)]
    precedence: Precedence = Precedence.ROUTINE
    classification: Classification = Classification.UNCLASSIFIED
    incident_id: Reference | None = None
    in_reply_to: DistributionId | None = None
    body: Body


ENVELOPE_DECODER: Final = msgspec.json.Decoder(Envelope)
ENCODER: Final = msgspec.json.Encoder()


class MalformedMessage(msgspec.DecodeError):
    """Bytes the decoder could not read as a JSON document, whatever msgspec raised for them.

    A subclass of `msgspec.DecodeError`, so every caller that handles decode errors handles
    these too; `code` is always `ErrorCode.MALFORMED`.
    """

    code: Final = ErrorCode.MALFORMED


def decode_envelope(data: bytes) -> Envelope:
    """Decode and validate one message; raises nothing but `msgspec.DecodeError`.

    Raises `msgspec.ValidationError` (a `DecodeError`) for JSON that breaks the contract; the
    message names the path, e.g. ``Expected `str` of length <= 200 - at `$.body.headline```.
    Anything else the bytes provoke (not JSON, invalid UTF-8, nesting deeper than the
    interpreter's recursion limit, exhausted memory) is a `MalformedMessage`, also a
    `DecodeError`. `error_code` gives the error code either way.
    """
    try:
        return ENVELOPE_DECODER.decode(data)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as exc:
        raise MalformedMessage(str(exc)) from exc
    except UnicodeDecodeError as exc:
        # msgspec lets invalid UTF-8 inside a JSON string escape as UnicodeDecodeError.
        raise MalformedMessage(f"Invalid UTF-8 at byte {exc.start}") from exc
    except RecursionError as exc:
        # A document of ~1000 nested arrays (2 KB) exhausts the recursion limit; no valid
        # envelope nests deeper than a dozen levels.
        raise MalformedMessage("JSON is nested too deeply") from exc
    except Exception as exc:  # the contract: no input escapes as anything else
        raise MalformedMessage(f"JSON could not be decoded: {type(exc).__name__}") from exc


def error_code(exc: msgspec.DecodeError) -> ErrorCode:
    """The error code for a decode error: where a validation error points decides it."""
    if not isinstance(exc, msgspec.ValidationError):
        return ErrorCode.MALFORMED
    path = error_path(exc)
    if path == "$.schema_version":
        return ErrorCode.UNSUPPORTED_SCHEMA_VERSION
    if path == "$.body.type":
        return ErrorCode.UNKNOWN_MESSAGE_TYPE
    if path.startswith("$.body"):
        return ErrorCode.INVALID_BODY
    return ErrorCode.INVALID_ENVELOPE


def encode(obj: Any) -> bytes:
    """Encode an envelope, a body or any msgspec-encodable value as compact JSON."""
    return ENCODER.encode(obj)


_AT: Final = re.compile(r" - at `(\$[^`]*)`$")
_MISSING: Final = re.compile(r"^Object missing required field `([^`]+)`")


def error_message(exc: msgspec.DecodeError) -> str:
    """The validation message without its path suffix, which travels in its own field."""
    return _AT.sub("", str(exc))


def error_path(exc: msgspec.ValidationError) -> str:
    """The JSON path of the offending field, e.g. `$.body.severity`, or `$` for the document.

    msgspec names the path in the message except at the root; for a missing field the path
    names the missing field itself, so it can go straight into `error.report.field_path`.
    """
    message = str(exc)
    at = _AT.search(message)
    path = at.group(1) if at else "$"
    missing = _MISSING.match(message)
    return f"{path}.{missing.group(1)}" if missing else path
