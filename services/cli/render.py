"""How the command line shows messages: one readable line each, error reports highlighted."""

import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from liaison.common.logging import configure_logging
from liaison.directory.settings import OperatorSettings
from liaison.schemas.catalogue import tag_of
from liaison.schemas.envelope import Body, Envelope
from liaison.schemas.messages import coordination as co
from liaison.schemas.messages import hazards as hz
from liaison.schemas.messages import operations as op
from liaison.schemas.messages import resources as rs
from liaison.schemas.messages import system as sy

_RED, _YELLOW, _BOLD, _DIM, _RESET = "\033[31m", "\033[33m", "\033[1m", "\033[2m", "\033[0m"


def quiet_logging() -> None:
    """Library log lines to stderr, warnings and worse only (LIAISON_LOG_LEVEL overrides).

    aio-pika and aiormq log connection failures the command reports itself in one line.
    """
    level = OperatorSettings.from_env().log_level
    configure_logging(level=level, stream=sys.stderr)
    if level.lower() != "debug":
        for name in ("aio_pika", "aiormq"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def use_colour(stream: TextIO = sys.stdout) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def summary(body: Body) -> str:
    """One line saying what a message is about."""
    match body:
        case hz.HazardAlert():
            return f"{body.severity} {body.urgency}: {body.headline}"
        case hz.EoSpotReport():
            what = body.device_type or body.device_category.value
            return f"{body.quantity} x {what} at {body.location_desc} ({body.action_taken})"
        case hz.AreaReport():
            return f"area {body.area_id} {body.status}: {body.name or ''}".rstrip(": ")
        case hz.ClearanceReport():
            return f"task {body.task_id}: {body.area_cleared_m2:,.0f} m2 cleared by {body.team}"
        case hz.IncidentReport():
            return f"{body.kind} at {body.location_desc}: {body.summary}"
        case hz.AccessRestriction():
            return f"{body.route_or_area} {body.status.value.upper()}: {body.reason}"
        case op.MandateUpdate():
            return f"{body.resolution} for {body.mission}"
        case op.TaskingOrder():
            return f"task {body.task_id} ({body.task_type}) to {body.assignee}: {body.description}"
        case op.TaskingStatus():
            progress = "" if body.progress_pct is None else f" {body.progress_pct}%"
            return f"task {body.task_id} {body.state}{progress}"
        case op.Sitrep():
            return f"{body.component} sitrep: {body.summary}"
        case op.GuidanceNotice():
            return f"{body.domain} guidance: {body.title}"
        case rs.ResourceRequest():
            items = ", ".join(f"{i.quantity:g} {i.description}" for i in body.items)
            return f"request {body.request_id}: {items}"
        case rs.ResourceResponse():
            eta = f", ETA {body.eta:%d %b %H:%M}" if body.eta else ""
            return f"{body.decision} request {body.request_id}{eta}"
        case rs.ResourceDeploymentStatus():
            return f"request {body.request_id} {body.status}"
        case rs.ResourceRelease():
            return f"request {body.request_id} released: {body.reason}"
        case co.MeetingNotice():
            return f"{body.title}, {body.start:%d %b %H:%M}"
        case co.InformationRequest():
            return body.question
        case co.InformationResponse():
            return body.answer
        case co.DdrReport():
            return f"{body.programme}: {body.combatants_disarmed} disarmed"
        case sy.Ack():
            note = f" ({body.note})" if body.note else ""
            return f"{body.level} {body.ref_sender}/{body.ref_distribution_id}{note}"
        case sy.ErrorReport():
            at = f" [at {body.field_path}]" if body.field_path else ""
            return f"{body.code} {body.name}: {body.reason}{at}"
        case sy.StatusRequest():
            return f"status of {body.ref_sender}/{body.ref_distribution_id}?"
        case sy.StatusReport():
            states = ", ".join(f"{c.org} {c.state}" for c in body.recipients)
            found = states or ("nothing you may see" if not body.found else "no recipients")
            return f"status of {body.ref_sender}/{body.ref_distribution_id}: {found}"


def message_line(envelope: Envelope, *, colour: bool = False, to: str | None = None) -> str:
    """``time  PRECEDENCE  sender → [to:] type  summary``; error reports stand out."""
    stamp = _clock(envelope.sent_at)
    precedence = envelope.precedence.value.upper()
    route = f"{envelope.sender} → {to + ': ' if to else ''}{tag_of(type(envelope.body))}"
    text = f"{stamp}  {precedence:<9} {route}  {summary(envelope.body)}"
    if isinstance(envelope.body, sy.ErrorReport):
        ref = envelope.body.ref_distribution_id
        text = f"{stamp}  REFUSED   {route}  {summary(envelope.body)}"
        if ref:
            text += f"  (ref {ref})"
        return f"{_RED}{_BOLD}{text}{_RESET}" if colour else text
    if colour and precedence == "FLASH":
        return f"{_YELLOW}{_BOLD}{text}{_RESET}"
    return text


def dim(text: str, *, colour: bool) -> str:
    """Secondary information, faint on a terminal."""
    return f"{_DIM}{text}{_RESET}" if colour else text


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, the first row a header."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")
