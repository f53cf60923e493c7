"""Reading ``LIAISON_*`` environment variables once, failing fast with the variable's name."""

import os
from collections.abc import Mapping

from liaison.common.errors import ConfigError
from liaison.common.urls import AMQP_SCHEMES, parse_url, redact_url, with_credentials

# Kept importable from here for the hub and the SDK; they live in liaison.common.urls.
__all__ = ["amqp_url", "env_float", "env_int", "env_str", "redact_url", "with_credentials"]


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
    parse_url(name, url, AMQP_SCHEMES)
    return url
