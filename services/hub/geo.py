"""The router's decoder: the contract's, with GeoJSON coordinates checked on the raw bytes.

Decoding a coordinate-heavy body with the contract's decoder builds a Python float for every
number and a tuple for every position (a 233 KB polygon: 22,000 and 11,000), about 5 µs of the
hub's CPU per KB, for values the hub never reads: it routes on the envelope's fields and
forwards the bytes it received. So the router checks coordinates on the raw bytes and decodes
the rest with the contract's own types:

1. ``_geo.blank`` finds every ``"coordinates"`` key in the document, checks its value with the
   compiled check (a position, or a polygon's rings) and returns a copy with each value
   replaced by the string ``"point"`` or ``"polygon"``. Any value it does not accept (invalid,
   or unusual: an exponent, 20 digits), the string ``"coordinates"`` written other than as a
   key, or a ``\\u006x``/``\\u007x`` escape that could spell the key another way: no copy,
   and the contract's decoder decides.
2. The copy is decoded with a subclass of the contract's Envelope in which every Struct that
   holds a ``Point`` or a ``Polygon``, directly or deeper, is a subclass whose geometry has
   ``coordinates: msgspec.Raw``; its ``__post_init__`` insists on its own geometry's mark.
   Every other constraint is the contract's own, unchanged.
3. The number of geometries decoded must equal the number of keys replaced; otherwise (a key
   outside any geometry, or repeated in one, where a Raw field keeps only the last) the
   contract's decoder decides.

Why the copy decodes as the original would: it differs from the original only inside values
``_geo`` checked, each a complete JSON array replaced by a complete JSON string. Taking the
marks in order: before the first, the copy's bytes are the original's, so where the copy's
decode takes it as a geometry's coordinates, the original's decode stood at the same place and
reads there the complete array ``_geo`` accepted; after it both are in the same state, and the
same holds for the next mark. A mark the decode reads anywhere else (inside a string, an
unknown field) is not counted, and the count comes up short (step 3). Before
this, msgspec stepped over each Raw value itself, parsing every number once more: twice the
compiled check's time.

``_geo`` answers "valid" only for values the contract accepts, and "invalid or not sure" for the
rest; on any refusal the message is decoded again by the contract's ``decode_envelope``, so a
refused message gets exactly today's error (code, message, field path), and an unusual but
valid one is accepted by it. The decoded envelope never leaves the router (a ``Delivery``
carries ids and names, records carry the bytes received), so nothing downstream sees the marks.
Not thread-safe (the count is per process): the hub decides on one thread.

Without the compiled module (no compiler where Liaison was installed), when the contract's
geometry no longer matches what it checks, or with ``LIAISON_HUB_DECODER=python`` in the
environment (to compare the two: ``python -m bench.decode_geo --hub``), the router uses the
contract's decoder alone: ``DECODER_PATH`` says which, and the hub logs it and exports it as a
metric.
"""

import importlib
import os
import types
import typing
from types import ModuleType
from typing import Annotated, Any, Final, Literal, cast

import msgspec

from liaison.schemas.catalogue import MESSAGE_TYPES
from liaison.schemas.envelope import Envelope, decode_envelope
from liaison.schemas.types import Point, Polygon


def _compiled() -> ModuleType | None:
    try:
        return importlib.import_module("liaison.hub._geo")
    except ImportError:  # an install without a C compiler
        return None


_geo: Final = _compiled()

__all__ = ["DECODER_PATH", "ROUTING_TAGS", "contract_shape", "decode_for_routing"]


class _Tally:
    """Geometry objects checked during the current decode."""

    checked = 0


def _unwrap(info: Any) -> Any:
    # Descriptions and examples wrap a type in Metadata; the limits live on the type itself.
    return info.type if isinstance(info, msgspec.inspect.Metadata) else info


def contract_shape() -> dict[str, int]:
    """The contract's geometry limits, read from its types as msgspec sees them; ValueError
    for a shape the compiled check does not decide."""
    inspect = msgspec.inspect
    point, polygon = inspect.type_info(Point), inspect.type_info(Polygon)
    if not isinstance(point, inspect.StructType) or not isinstance(polygon, inspect.StructType):
        raise ValueError("Point and Polygon are no longer Structs")
    (position,) = (_unwrap(f.type) for f in point.fields if f.name == "coordinates")
    (rings,) = (_unwrap(f.type) for f in polygon.fields if f.name == "coordinates")
    ring = _unwrap(rings.item_type) if isinstance(rings, inspect.ListType) else None
    if not isinstance(ring, inspect.ListType) or not isinstance(position, inspect.TupleType):
        raise ValueError("a geometry nesting the compiled check does not know")
    if ring.item_type != position:
        raise ValueError("a Polygon's positions are not a Point's")
    axes = [_unwrap(item) for item in position.item_types]
    bounds = []
    for axis in axes:
        # Symmetric closed bounds and nothing else is what the compiled check decides.
        if not isinstance(axis, inspect.FloatType):
            raise ValueError("a coordinate that is not a float")
        if axis.gt is not None or axis.lt is not None or axis.multiple_of is not None:
            raise ValueError("a coordinate constraint the compiled check does not know")
        if axis.le is None or axis.ge != -axis.le or axis.le != int(axis.le):
            raise ValueError("coordinate bounds the compiled check does not know")
        bounds.append(int(axis.le))
    if len(bounds) != 2:
        raise ValueError("a position that is not two numbers")
    return {
        "LONGITUDE_BOUND": bounds[0],
        "LATITUDE_BOUND": bounds[1],
        "RING_MIN": ring.min_length or 0,
        "RING_MAX": ring.max_length or 0,
        "RINGS_MIN": rings.min_length or 0,
        "RINGS_MAX": rings.max_length or 0,
    }


def _compiled_matches_contract() -> bool:
    if _geo is None:
        return False
    try:
        shape = contract_shape()
    except ValueError:
        return False
    return all(getattr(_geo, name) == value for name, value in shape.items())


#: What ``_geo.blank`` writes in place of coordinates it checked, by geometry.
_MARKS: Final = {Point: msgspec.Raw(b'"point"'), Polygon: msgspec.Raw(b'"polygon"')}


def _geometry(base: type[msgspec.Struct]) -> type[msgspec.Struct]:
    mark = _MARKS[base]

    def __post_init__(self: Any) -> None:
        if self.coordinates != mark:
            # Not coordinates _geo checked for this geometry (a polygon's where a point's must
            # be, say): the contract's decoder decides, and words the error.
            raise ValueError("coordinates not checked by the compiled check")
        _Tally.checked += 1

    return msgspec.defstruct(
        f"Raw{base.__name__}",
        [("coordinates", msgspec.Raw)],
        bases=(base,),
        namespace={"__post_init__": __post_init__},
        module=__name__,
    )


class _Substitute:
    """Rebuilds annotations with the Raw-geometry types in place of the contract's."""

    def __init__(self, replace: dict[Any, Any]) -> None:
        self.replace = replace

    def annotation(self, tp: Any) -> Any:
        if tp in self.replace:
            return self.replace[tp]
        origin = typing.get_origin(tp)
        if origin is Annotated:
            inner, *metadata = typing.get_args(tp)
            swapped = self.annotation(inner)
            return tp if swapped is inner else Annotated[(swapped, *metadata)]
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            return self.struct(tp)
        if origin is None or origin is Literal:
            return tp
        args = typing.get_args(tp)
        swapped_args = tuple(self.annotation(arg) for arg in args)
        if all(a is b for a, b in zip(args, swapped_args, strict=True)):
            return tp
        if origin is typing.Union or origin is types.UnionType:
            return typing.Union[swapped_args]  # noqa: UP007 - built from a tuple
        return origin[swapped_args if len(swapped_args) > 1 else swapped_args[0]]

    def struct(self, cls: type[msgspec.Struct]) -> Any:
        self.replace[cls] = cls  # a cycle back to it keeps the contract's type
        changed: list[tuple[str, Any, Any]] = []
        for field in msgspec.structs.fields(cls):
            swapped = self.annotation(field.type)
            if swapped is field.type:
                continue
            if field.default is not msgspec.NODEFAULT:
                changed.append((field.name, swapped, field.default))
            elif field.default_factory is not msgspec.NODEFAULT:
                default = msgspec.field(default_factory=field.default_factory)
                changed.append((field.name, swapped, default))
            else:
                changed.append((field.name, swapped))  # type: ignore[arg-type]
        if not changed:
            return cls
        config = cls.__struct_config__
        # A subclass keeps the contract's config; the tag is given again, as it is the wire
        # type name of a body.
        subclass = msgspec.defstruct(
            f"Raw{cls.__name__}",
            changed,
            bases=(cls,),
            tag=config.tag,
            module=__name__,
        )
        self.replace[cls] = subclass
        return subclass


def _routing_envelope() -> type[msgspec.Struct] | None:
    if os.environ.get("LIAISON_HUB_DECODER") == "python":
        return None
    if _geo is None or not _compiled_matches_contract():
        return None
    substitute = _Substitute({Point: _geometry(Point), Polygon: _geometry(Polygon)})
    envelope: type[msgspec.Struct] = substitute.struct(Envelope)
    return envelope


_ROUTING_ENVELOPE: Final = _routing_envelope()
_ROUTING_DECODER: Final = (
    msgspec.json.Decoder(_ROUTING_ENVELOPE) if _ROUTING_ENVELOPE is not None else None
)

#: "compiled" when the router checks coordinates with ``_geo``; "python": the contract's decoder.
DECODER_PATH: Final = "compiled" if _ROUTING_DECODER is not None else "python"


def _tags() -> dict[type, str]:
    tags: dict[type, str] = {cls: tag for tag, cls in MESSAGE_TYPES.items()}
    if _ROUTING_ENVELOPE is not None:
        (body,) = (f.type for f in msgspec.structs.fields(_ROUTING_ENVELOPE) if f.name == "body")
        for cls in typing.get_args(body):
            tags[cls] = cls.__struct_config__.tag
    return tags


#: The wire type name of each body class the router may see, the Raw-geometry ones included.
ROUTING_TAGS: Final = _tags()


def decode_for_routing(data: bytes) -> Envelope:
    """What ``decode_envelope`` gives or raises for ``data``, for the router's use only.

    The result may hold ``Raw`` coordinates (in subclasses of the contract's types); every
    error is the contract's decoder's own.
    """
    if _ROUTING_DECODER is None or _geo is None:
        return decode_envelope(data)
    blanked = _geo.blank(data)
    if blanked is None:  # coordinates not accepted here, or a key that may be spelled otherwise
        return decode_envelope(data)
    light, keys = blanked
    _Tally.checked = 0
    try:
        # The routing envelope subclasses the contract's Envelope (geometry fields aside).
        envelope = cast(Envelope, _ROUTING_DECODER.decode(light))
    except Exception:  # any refusal or surprise: the contract's decoder decides and words it
        return decode_envelope(data)
    if _Tally.checked != keys:
        # A "coordinates" key outside a geometry, or repeated in one: the contract decides.
        return decode_envelope(data)
    return envelope
