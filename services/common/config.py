"""Reading ``LIAISON_*`` environment variables once, failing fast with the variable's name."""

import os
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from liaison.common.errors import ConfigError


def env_str(name: str, default: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The variable's value, or ``default``; a missing required variable is a ConfigError."""
    source = os.environ if env is None else env
    value = source.get(name, default)
    if value is None or value == "":
        if default is not None:
            return default
        raise ConfigError(f"{name} is required but not set")
    return value


def env_int(
    name: str, default: int, env: Mapping[str, str] | None = None, *, minimum: int = 0
) -> int:
    """An integer variable no smaller than ``minimum``."""
    raw = env_str(name, str(default), env)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_float(
    name: str, default: float, env: Mapping[str, str] | None = None, *, minimum: float = 0.0
) -> float:
    """A number variable no smaller than ``minimum``."""
    raw = env_str(name, str(default), env)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def amqp_url(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    """An amqp:// or amqps:// URL; the error message never repeats the password."""
    url = env_str(name, default, env)
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigError(f"{name} must be an amqp:// or amqps:// URL, got {redact_url(url)!r}")
    return url


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` logging in as ``user`` with ``password`` (both percent-encoded)."""
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
