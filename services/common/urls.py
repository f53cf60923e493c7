"""Broker URLs with credentials and vhosts, built and read with ``yarl`` — the one place.

aiormq parses connection URLs with yarl too, so what is encoded here is decoded there the same
way: a password with ``@``, ``:`` or ``/`` in it, or a vhost with ``/``, survives the trip.
"""

from urllib.parse import quote

from yarl import URL

from liaison.common.errors import ConfigError

AMQP_SCHEMES = frozenset({"amqp", "amqps"})
HTTP_SCHEMES = frozenset({"http", "https"})


def parse_url(name: str, value: str, schemes: frozenset[str]) -> URL:
    """``value`` as a URL with one of ``schemes`` and a host; the error names ``name`` and
    never repeats a password."""
    try:
        url = URL(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} is not a URL") from None
    if url.scheme not in schemes or not url.host:
        wanted = " or ".join(f"{s}://" for s in sorted(schemes))
        raise ConfigError(f"{name} must be an {wanted} URL, got {redact_url(value)!r}")
    return url


def with_credentials(url: str | URL, user: str, password: str) -> str:
    """``url`` logging in as ``user`` with ``password``."""
    return str(URL(url).with_user(user).with_password(password))


def with_vhost(url: str | URL, vhost: str) -> str:
    """``url`` on ``vhost`` (any path it had is replaced; ``/`` in a vhost is encoded)."""
    return str(URL(url).with_path("/" + quote(vhost, safe=""), encoded=True))


def amqp_url_for(base: str | URL, vhost: str, user: str, password: str) -> str:
    """The AMQP URL of ``vhost`` on ``base``'s host, as ``user``."""
    return with_vhost(with_credentials(base, user, password), vhost)


def vhost_of(url: str | URL) -> str | None:
    """The vhost a URL names, or None when its path is empty or ``/``."""
    path = URL(url).path
    return None if path in ("", "/") else path[1:]


def user_of(url: str | URL) -> str | None:
    """The user name in a URL, decoded."""
    return URL(url).user


def password_of(url: str | URL) -> str | None:
    """The password in a URL, decoded."""
    return URL(url).password


def redact_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``, safe for a log line."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "(unparsable URL)"
    if parsed.password is None:
        return str(parsed)
    return str(parsed.with_password("***"))
