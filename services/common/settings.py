"""The one pattern for every service's settings: a frozen Struct read from ``LIAISON_*``.

A service declares its settings as a subclass of :class:`Settings`: one field per setting, its
default written there and nowhere else, its constraints in the type
(``Annotated[int, Meta(ge=1)]``). Each field is read from ``LIAISON_<FIELD>`` (the upper-cased
field name, or its ``msgspec.field(name=...)``), so every setting is reachable from the
environment::

    class ProvisionSettings(Settings):
        vhost: Annotated[str, Meta(min_length=1)] = "liaison"
        shard_count: Annotated[int, Meta(ge=1)] = 4

    settings = ProvisionSettings.from_env()        # LIAISON_VHOST, LIAISON_SHARD_COUNT

``from_env`` converts the strings with ``msgspec.convert`` (``"8"`` becomes ``8``), and the
same validation runs when a Settings object is built directly in code, so a test or the demo
cannot skip it. A bad value is a ConfigError naming the variable — never the value, which may
be a secret. Secrets are hidden in one place, the settings' repr (which is what a log line or a
traceback shows): a :class:`Secret` field prints as ``Secret('***')``, a field named in
``secret_fields`` (a token other code compares as a plain string) as ``'***'``, and the
password of a URL as ``***``. Cross-field rules go in ``check()``.

A new setting (a CA file for TLS, say) is one more annotated field, plus its row in the table
in docs/operations.md (``tests/common/test_settings.py`` fails until it has one).
"""

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import msgspec

from liaison.common.errors import ConfigError
from liaison.common.urls import redact_url

ENV_PREFIX = "LIAISON_"


class Secret:
    """A secret string that prints as ``***``; ``reveal()`` is the one way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one call that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _dec_hook(kind: type, value: Any) -> Any:
    """Build the types msgspec does not know from the strings the environment holds."""
    if isinstance(value, kind):
        return value
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"no conversion to {kind.__name__}")


# Set while a Settings object is being validated, so the validating copy does not validate
# itself again.
_validating: ContextVar[bool] = ContextVar("liaison_settings_validating", default=False)
_PATH = re.compile(r" - at `\$\.([^`\[]+)`.*$")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every service's settings; see the module docstring."""

    #: Every variable is this prefix and the field's (encode) name in upper case.
    env_prefix: ClassVar[str] = ENV_PREFIX
    #: What a field must be, in words, for the error message (else msgspec's own words).
    explain: ClassVar[dict[str, str]] = {}
    #: Plain-string fields that hold a secret (a token other code compares as a str).
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        # The one place settings hide secrets: Secret values print as Secret('***'), secret
        # fields as '***', and a URL's password as ***.
        shown = ", ".join(f"{f.name}={self._shown(f.name)!r}" for f in _fields(type(self)))
        return f"{type(self).__name__}({shown})"

    def _shown(self, name: str) -> object:
        value = getattr(self, name)
        if name in self.secret_fields and value is not None:
            return "***"
        if isinstance(value, str) and "://" in value:
            return redact_url(value)
        return value

    def __post_init__(self) -> None:
        if _validating.get():
            return  # this is the validating copy
        token = _validating.set(True)
        try:
            _convert(
                {f.encode_name: getattr(self, f.name) for f in _fields(type(self))}, type(self)
            )
        finally:
            _validating.reset(token)
        self.check()

    def check(self) -> None:
        """Rules across fields, after each field passed its own; raise ConfigError."""

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each field's environment variable, by field name."""
        return {f.name: cls.env_prefix + f.encode_name.upper() for f in _fields(cls)}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **parsed: Any) -> Self:
        """Read every field from its variable; unset or empty ones keep their default.

        ``parsed`` gives fields (by name) whose variable a subclass has already parsed itself.
        """
        source = os.environ if env is None else env
        raw: dict[str, Any] = {}
        for field in _fields(cls):
            if field.name in parsed:
                raw[field.encode_name] = parsed[field.name]
                continue
            value = source.get(cls.env_prefix + field.encode_name.upper())
            if value not in (None, ""):
                raw[field.encode_name] = value
        return _convert(raw, cls)


S = TypeVar("S", bound=Settings)


def _fields(cls: type[Settings]) -> tuple[msgspec.structs.FieldInfo, ...]:
    return msgspec.structs.fields(cls)


def _convert(raw: dict[str, Any], cls: type[S]) -> S:
    try:
        return msgspec.convert(raw, cls, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), cls)) from None


def _explain(message: str, cls: type[Settings]) -> str:
    """msgspec's message with the field's path replaced by the variable's name."""
    match = _PATH.search(message)
    if match is None:
        return f"{cls.__name__}: {message}"
    encode_name = match.group(1)
    variable = cls.env_prefix + encode_name.upper()
    names = {f.encode_name: f.name for f in _fields(cls)}
    words = cls.explain.get(names.get(encode_name, encode_name))
    return f"{variable} {words}" if words else f"{variable}: {message[: match.start()]}"
