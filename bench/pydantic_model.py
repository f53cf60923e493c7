"""The Liaison envelope as pydantic models, derived from the msgspec contract.

The FastStream peer validates what the hub validates: every body type with its constraints,
the body a union discriminated on ``type``, as a team modelling the contract in pydantic would
write it. Derived with ``msgspec.inspect`` so the two cannot drift apart.
"""

from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import inspect as mi
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from liaison.schemas.envelope import Envelope
from liaison.schemas.types import ecma_pattern


def _constraints(t: mi.Type) -> dict[str, Any]:
    names = ("min_length", "max_length", "pattern", "ge", "gt", "le", "lt", "multiple_of")
    found = {n: getattr(t, n) for n in names if getattr(t, n, None) is not None}
    if "pattern" in found:
        # pydantic's Rust regex engine reads the published (ECMA-262) form, not Python's \Z.
        found["pattern"] = ecma_pattern(found["pattern"])
    return found


def _annotation(t: mi.Type) -> Any:
    if isinstance(t, mi.Metadata):
        return _annotation(t.type)
    if isinstance(t, mi.StrType):
        return Annotated[str, Field(**_constraints(t))]
    if isinstance(t, mi.IntType):
        return Annotated[int, Field(strict=True, **_constraints(t))]
    if isinstance(t, mi.FloatType):
        return Annotated[float, Field(**_constraints(t))]
    if isinstance(t, mi.BoolType):
        return bool
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, mi.DateTimeType):
        return AwareDatetime if t.tz else datetime
    if isinstance(t, mi.DateType):
        return date
    if isinstance(t, mi.EnumType):
        return t.cls
    if isinstance(t, mi.LiteralType):
        return Literal[t.values]
    if isinstance(t, mi.ListType):
        return Annotated[list[_annotation(t.item_type)], Field(**_constraints(t))]  # type: ignore[misc]
    if isinstance(t, mi.TupleType):
        return tuple[tuple(_annotation(i) for i in t.item_types)]
    if isinstance(t, mi.VarTupleType):
        return Annotated[tuple[_annotation(t.item_type), ...], Field(**_constraints(t))]  # type: ignore[misc]
    if isinstance(t, mi.DictType):
        return dict[_annotation(t.key_type), _annotation(t.value_type)]  # type: ignore[misc]
    if isinstance(t, mi.StructType):
        return _model(t.cls)
    if isinstance(t, mi.UnionType):
        members = tuple(_annotation(m) for m in t.types)
        union = Union[members]  # noqa: UP007 - built at run time from a tuple
        tagged = [m for m in t.types if isinstance(m, mi.StructType) and m.tag is not None]
        if len(tagged) > 1 and len(tagged) == len(t.types):
            return Annotated[union, Field(discriminator=tagged[0].tag_field)]
        return union
    if isinstance(t, mi.AnyType):
        return Any
    raise TypeError(f"no pydantic mapping for {t!r}")


@cache
def _model(cls: type[msgspec.Struct]) -> type[BaseModel]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields: dict[str, Any] = {}
    if info.tag is not None and info.tag_field is not None:
        fields[info.tag_field] = (Literal[info.tag], ...)
    for f in info.fields:
        annotation = _annotation(f.type)
        if f.required:
            default: Any = ...
        elif f.default_factory is not msgspec.NODEFAULT:
            default = Field(default_factory=f.default_factory)
        else:
            default = f.default
        fields[f.name] = (annotation, default)
    return create_model(  # type: ignore[call-overload, no-any-return]
        cls.__name__,
        __config__=ConfigDict(frozen=True, extra="ignore"),
        **fields,
    )


def envelope_model() -> type[BaseModel]:
    """The pydantic model of one whole Liaison message."""
    return _model(Envelope)
