"""The base every message body derives from: a frozen Struct tagged by its `type` field."""

import msgspec


class BodyBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A message body; each subclass sets an explicit `tag`, which is its wire type name."""
