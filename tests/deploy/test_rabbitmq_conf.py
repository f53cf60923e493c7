"""deploy/rabbitmq/rabbitmq.conf: what listens where, and every key one RabbitMQ knows."""

import ipaddress
import re
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "rabbitmq.conf"
RABBITMQ_LIB = Path("/usr/lib/rabbitmq/lib")
_SETTING = re.compile(r"^(#\s*)?([a-z_][a-z0-9_.$]*)\s*=\s*(\S.*?)\s*$")


def settings(text: str, *, commented: bool) -> dict[str, str]:
    """``key = value`` lines of a new-style rabbitmq.conf; with ``commented``, the commented-out
    ones (the optional blocks an operator may switch on) instead of the active ones."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _SETTING.match(line.strip())
        if match and bool(match.group(1)) == commented:
            found[match.group(2)] = match.group(3)
    return found


def listener_ips(conf: dict[str, str]) -> dict[str, str | None]:
    """For each HTTP listener (``<plugin>.tcp`` / ``<plugin>.ssl``) with a port: its ``ip``."""
    return {
        key.removesuffix(".port"): conf.get(key.removesuffix(".port") + ".ip")
        for key in conf
        if re.fullmatch(r"(management|prometheus)\.(tcp|ssl)\.port", key)
    }


def is_loopback(value: str | None) -> bool:
    """Whether ``value`` is a loopback address (an absent ip means every interface)."""
    return value is not None and ipaddress.ip_address(value).is_loopback


def test_parser_reads_active_and_commented_settings() -> None:
    """The conf parser tells active from commented settings and ignores prose comments."""
    text = "# A prose comment = not a setting? no\nmanagement.tcp.port = 15672\n# x.y = 1\n"
    assert settings(text, commented=False) == {"management.tcp.port": "15672"}
    assert settings(text, commented=True) == {"x.y": "1"}
    assert listener_ips({"prometheus.tcp.port": "15692"}) == {"prometheus.tcp": None}
    assert not is_loopback(None)
    assert not is_loopback("0.0.0.0")  # noqa: S104  (the address under test, not a bind)
    assert is_loopback("::1")


def test_management_and_prometheus_listen_on_loopback_only() -> None:
    """The management API and the unauthenticated Prometheus endpoint bind to loopback, and so
    does the optional management-over-TLS block once switched on."""
    text = CONF.read_text()
    active = listener_ips(settings(text, commented=False))
    assert set(active) == {"management.tcp", "prometheus.tcp"}
    optional = listener_ips(settings(text, commented=True))
    assert "management.ssl" in optional
    for listener, ip in {**active, **optional}.items():
        assert is_loopback(ip), f"{listener} listens on {ip or 'every interface'}"


def test_plain_amqp_is_loopback_only() -> None:
    """Plain AMQP (no TLS) is for the hub and operators on the broker host."""
    active = settings(CONF.read_text(), commented=False)
    plain = [v for k, v in active.items() if k.startswith("listeners.tcp.")]
    assert plain, "no plain AMQP listener configured"
    for value in plain:
        host = value.rsplit(":", 1)[0]
        assert ":" in value, f"{value} names no interface"
        assert is_loopback(host.strip("[]")), value


def _known_keys() -> list[re.Pattern[str]]:
    schemas = list(RABBITMQ_LIB.glob("rabbitmq_server-*/plugins/*/priv/schema/*.schema"))
    patterns = []
    for schema in schemas:
        for name in re.findall(r'\{mapping,\s*"([^"]+)"', schema.read_text(errors="replace")):
            parts = (r"[^.]+" if p.startswith("$") else re.escape(p) for p in name.split("."))
            patterns.append(re.compile(r"\.".join(parts)))
    return patterns


@pytest.mark.skipif(not RABBITMQ_LIB.is_dir(), reason="RabbitMQ is not installed here")
def test_every_key_is_one_the_installed_rabbitmq_knows() -> None:
    """A misspelt key (prometheus.tcp.ip as prometheus.ip) would stop the broker from booting,
    or be ignored: every key, optional ones included, is in the installed broker's schema."""
    known = _known_keys()
    assert known, "no cuttlefish schemas found"
    text = CONF.read_text()
    for key in {**settings(text, commented=False), **settings(text, commented=True)}:
        assert any(p.fullmatch(key) for p in known), f"{key} is not a RabbitMQ setting"
