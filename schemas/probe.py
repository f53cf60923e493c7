"""What can still be read of a message the contract refused: its distribution id and type.

An error report names the refused message by these two when they can be read, whatever else is
wrong with it (wrong content type, unknown account, a schema violation, malformed or absurdly
nested JSON). `probe` never raises.
"""

import re
from typing import Final

import msgspec

__all__ = ["PROBE_ID_MAX", "PROBE_TYPE_MAX", "probe"]

#: Longest distribution id and type an error report repeats back (its fields' limits).
PROBE_ID_MAX: Final = 256
PROBE_TYPE_MAX: Final = 64


class _Body(msgspec.Struct):
    type: msgspec.Raw = msgspec.Raw()


class _Probe(msgspec.Struct):
    distribution_id: msgspec.Raw = msgspec.Raw()
    body: msgspec.Raw = msgspec.Raw()


_PROBE: Final = msgspec.json.Decoder(_Probe)
_BODY: Final = msgspec.json.Decoder(_Body)
_STRING: Final = msgspec.json.Decoder(str)
#: JSON tokens that matter for finding an object's members: strings and structure.
_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\],:]', re.DOTALL)


def probe(data: bytes) -> tuple[str | None, str | None]:
    """The distribution id and body type of a message, each None where it cannot be read."""
    try:
        found = _PROBE.decode(data)
        distribution_id, body = bytes(found.distribution_id), bytes(found.body)
    except Exception:  # malformed, invalid UTF-8, too deep: read by hand
        members = _members(data)
        distribution_id, body = members.get("distribution_id", b""), members.get("body", b"")
    try:
        body_type = bytes(_BODY.decode(body).type) if body else b""
    except Exception:  # as above, one level down
        body_type = _members(body).get("type", b"")
    return _string(distribution_id, PROBE_ID_MAX), _string(body_type, PROBE_TYPE_MAX)


def _string(raw: bytes, max_length: int) -> str | None:
    try:
        value = _STRING.decode(raw) if raw else None
    except Exception:  # not a readable JSON string: nothing to report
        return None
    return value if value and len(value) <= max_length else None


def _members(data: bytes) -> dict[str, bytes]:
    """The top-level members of a JSON object, as raw values, read without recursion.

    For documents msgspec gives up on (too deep, or broken after the members wanted), so it is
    lenient: it reads members up to the first point where the document stops making sense.
    """
    document = data.strip().removeprefix(b"\xef\xbb\xbf")
    members: dict[str, bytes] = {}
    if not document.startswith(b"{"):
        return members
    depth = 0
    key: str | None = None
    value_start = -1
    for token in _TOKEN.finditer(document):
        text = token.group()
        if depth == 1 and text.startswith(b'"') and key is None and value_start < 0:
            key = _string(text, 1024) or ""
        elif text in (b"{", b"["):
            depth += 1
        elif text in (b"}", b"]") or (depth == 1 and text == b","):
            if depth == 1 and key is not None and value_start >= 0:
                members[key] = document[value_start : token.start()].strip()
                key, value_start = None, -1
            if text != b",":
                depth -= 1
                if depth <= 0:
                    break
        elif depth == 1 and text == b":" and key is not None:
            value_start = token.end()
    return members
