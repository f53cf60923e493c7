"""Every partner mistake the SDK can see without a broker is an SdkError naming what to change."""

import enum
import importlib
import inspect
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import aiormq
import aiormq.exceptions
import msgspec
import pytest

import liaison.sdk
from liaison.schemas.examples import example
from liaison.sdk import (
    EoSpotReport,
    ErrorReport,
    HazardAlert,
    InvalidArgument,
    InvalidMessage,
    PublishFailed,
    SdkError,
    Sitrep,
    build,
    compose,
)
from liaison.sdk.connection import publish_error


def compose_spot(**options: Any) -> Any:
    """compose() of the example spot report from mag to unmas with ``options``."""
    return compose(
        example("hazard.eo_spot_report").body,
        sender="mag",
        recipients=options.pop("recipients", ["org:unmas"]),
        **options,
    )


@pytest.mark.parametrize(
    ("options", "path", "says"),
    [
        ({"precedence": "FLASH"}, "$.precedence", "'flash'"),
        ({"precedence": "urgent"}, "$.precedence", "'immediate'"),
        ({"classification": "secret"}, "$.classification", "'confidential'"),
        ({"ttl": timedelta(0)}, "$.expires_at", "positive"),
        ({"ttl": timedelta(minutes=-5)}, "$.expires_at", "positive"),
        (
            {"expires_at": datetime.now(UTC) - timedelta(seconds=1)},
            "$.expires_at",
            "not in the future",
        ),
        ({"expires_at": datetime(2030, 1, 1)}, "$.expires_at", "time zone"),
    ],
)
def test_envelope_mistakes_are_invalid_message(
    options: dict[str, Any], path: str, says: str
) -> None:
    """A bad precedence, classification, ttl or expiry is an InvalidMessage at its field."""
    with pytest.raises(InvalidMessage) as caught:
        compose_spot(**options)
    assert caught.value.field_path == path
    assert says in str(caught.value)
    assert not isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (
            {"ttl": timedelta(hours=1), "expires_at": datetime.now(UTC) + timedelta(hours=2)},
            "not both",
        ),
        ({"recipients": "org:unmas"}, "list of addresses"),
        ({"ttl": 3600}, "timedelta"),
        ({"expires_at": "2030-01-01T00:00:00Z"}, "datetime"),
    ],
)
def test_argument_mistakes_are_invalid_argument(options: dict[str, Any], says: str) -> None:
    """Arguments of the wrong kind or in a wrong combination say what to pass instead."""
    with pytest.raises(InvalidArgument, match=says):
        compose_spot(**options)


def test_reserved_type_refused_before_sending() -> None:
    """A type only the hub sends (error.report) is refused as the hub would (206), locally."""
    report = example("error.report").body
    assert isinstance(report, ErrorReport)
    with pytest.raises(InvalidMessage) as caught:
        compose(report, sender="mag", recipients=["org:unmas"])
    assert caught.value.field_path == "$.body.type"
    assert "only the hub" in str(caught.value)


def test_a_dict_body_points_to_build() -> None:
    """A plain dict as the body is refused with how to build a typed one."""
    with pytest.raises(InvalidArgument, match=r"build\(HazardAlert"):
        compose({"type": "hazard.alert"}, sender="mag", recipients=["org:unmas"])  # type: ignore[arg-type]


def spot_fields() -> dict[str, Any]:
    """The example spot report's fields as plain JSON-like data."""
    fields = msgspec.to_builtins(example("hazard.eo_spot_report").body)
    assert isinstance(fields, dict)
    return fields


def test_build_makes_a_typed_body() -> None:
    """build() turns plain fields (ISO strings for times) into the typed, equal body."""
    body = build(EoSpotReport, spot_fields())
    assert body == example("hazard.eo_spot_report").body
    assert build("hazard.eo_spot_report", spot_fields()) == body


@pytest.mark.parametrize(
    ("change", "path", "says"),
    [
        ({"quantity": 0}, "$.quantity", ">= 1"),
        ({"device_category": "bomb"}, "$.device_category", "Invalid enum value"),
        ({"found_at": "2024-03-12T06:15:00"}, "$.found_at", "timezone"),
        (
            {"location": {"type": "Point", "coordinates": [200.0, 5.0]}},
            "$.location.coordinates",
            "",
        ),
        ({"reported_by": None}, "$.reported_by", ""),
    ],
)
def test_build_fails_where_written(change: dict[str, Any], path: str, says: str) -> None:
    """A bad field fails in build() with its field path, not later in send()."""
    fields = {**spot_fields(), **change}
    with pytest.raises(InvalidMessage) as caught:
        build(EoSpotReport, fields)
    assert caught.value.field_path.startswith(path)
    assert says in str(caught.value)
    assert "EoSpotReport" in str(caught.value)


def test_build_missing_field_names_it() -> None:
    """A missing required field is named by its path."""
    fields = spot_fields()
    del fields["quantity"]
    with pytest.raises(InvalidMessage) as caught:
        build(EoSpotReport, fields)
    assert caught.value.field_path == "$.quantity"


@pytest.mark.parametrize(
    ("body_type", "fields", "says"),
    [
        ("hazard.nope", {}, "no message type 'hazard.nope'"),
        (dict, {}, "message class"),
        (EoSpotReport, [("quantity", 1)], "mapping"),
    ],
)
def test_build_wrong_arguments(body_type: Any, fields: Any, says: str) -> None:
    """An unknown type name, a non-message class or non-mapping fields are InvalidArgument."""
    with pytest.raises(InvalidArgument, match=says):
        build(body_type, fields)


def test_sitrep_needs_its_component() -> None:
    """The sitrep of the guide's example names its required component; without it build says so."""
    fields = msgspec.to_builtins(example("sitrep").body)
    assert isinstance(fields, dict)
    assert isinstance(build(Sitrep, fields), Sitrep)
    del fields["component"]
    with pytest.raises(InvalidMessage) as caught:
        build(Sitrep, fields)
    assert caught.value.field_path == "$.component"


def test_every_error_is_an_sdk_error() -> None:
    """Each class in liaison.sdk.errors descends from SdkError and nothing outside the SDK."""
    module = importlib.import_module("liaison.sdk.errors")
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)]
    assert len(classes) >= 10
    for cls in classes:
        assert issubclass(cls, SdkError), cls
        ancestors = {b.__module__ for b in cls.__mro__} - {"builtins"}
        assert ancestors == {"liaison.sdk.errors"}, cls


def test_every_message_class_is_reexported() -> None:
    """Every Struct and enum the contract's message modules define imports from liaison.sdk."""
    for name in ("coordination", "hazards", "operations", "resources", "system"):
        module = importlib.import_module(f"liaison.schemas.messages.{name}")
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and value.__module__ == module.__name__
                and issubclass(value, (msgspec.Struct, enum.Enum))
            ):
                assert getattr(liaison.sdk, attr, None) is value, attr
                assert attr in liaison.sdk.__all__, attr
    assert liaison.sdk.HazardAlert is HazardAlert


def test_sdk_stands_alone() -> None:
    """Importing the SDK loads no hub, directory, CLI or server code, nor structlog."""
    probe = "import sys, liaison.sdk; print('\\n'.join(sorted(m for m in sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    forbidden = ("liaison.common", "liaison.hub", "liaison.directory", "liaison.cli",
                 "structlog", "prometheus_client", "aiohttp.web", "liaison.demo")  # fmt: skip
    assert [m for m in loaded if m.startswith(forbidden)] == []


def test_help_starts_with_connect() -> None:
    """help(Client) opens with Client.connect, and the constructor shows no aio-pika internals."""
    text = inspect.getdoc(liaison.sdk.Client) or ""
    assert "Client.connect(" in text.split("\n\n")[0] + text.split("\n\n")[1]
    signature = str(inspect.signature(liaison.sdk.Client))
    assert "aio_pika" not in signature
    assert "connection" not in signature


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        (
            aiormq.spec.Basic.Return(
                reply_code=312, reply_text="NO_ROUTE", exchange="liaison.ingress", routing_key="mag"
            ),
            "nothing on 'liaison.ingress' takes routing key 'mag'",
        ),
        (aiormq.spec.Basic.Nack(delivery_tag=7), "same distribution id is safe"),
    ],
)
def test_returned_or_nacked_publish_reads_as_advice(frame: Any, says: str) -> None:
    """aiormq's delivery errors become a PublishFailed that says what to do, with no repr."""
    error = publish_error(aiormq.exceptions.DeliveryError(None, frame), "mag")
    assert isinstance(error, PublishFailed)
    assert says in str(error)
    assert " object at 0x" not in str(error)
