"""Mandate and operations: Security Council mandates, taskings, situation reports, guidance."""

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import (
    AwareDatetime,
    Count,
    Date,
    MissionId,
    OrgId,
    Percent,
    Point,
    Polygon,
    Reference,
    ShortText,
    Text,
    whole,
)

Resolution = Annotated[
    str,
    Meta(
        pattern=whole(r"S/RES/[0-9]{1,5} \([0-9]{4}\)"),
        description="Security Council resolution symbol, e.g. `S/RES/2709 (2023)`.",
    ),
]


class StrengthCategory(enum.StrEnum):
    """Personnel category that a mandate sets a ceiling for."""

    TROOPS = "troops"
    MILITARY_STAFF_OFFICERS = "military_staff_officers"
    MILITARY_OBSERVERS = "military_observers"
    INDIVIDUAL_POLICE = "individual_police"
    FORMED_POLICE_UNITS = "formed_police_units"
    CORRECTIONS_OFFICERS = "corrections_officers"


class AuthorizedStrength(msgspec.Struct, frozen=True, kw_only=True):
    """The authorised ceiling for one personnel category."""

    category: StrengthCategory
    ceiling: Count


class MandateUpdate(BodyBase, frozen=True, kw_only=True, tag="mandate.update"):
    """A Security Council resolution that sets or renews a mission's mandate."""

    resolution: Resolution
    mission: MissionId
    mandated_tasks: Annotated[list[ShortText], Meta(min_length=1, max_length=64)]
    effective_from: Date
    effective_until: Date | None = None
    authorized_strengths: Annotated[list[AuthorizedStrength], Meta(max_length=16)] = []
    summary: Text | None = None


class TaskType(enum.StrEnum):
    """What kind of work a tasking order asks for."""

    EOD_RESPONSE = "eod_response"
    NON_TECHNICAL_SURVEY = "non_technical_survey"
    TECHNICAL_SURVEY = "technical_survey"
    CLEARANCE = "clearance"
    ROUTE_VERIFICATION = "route_verification"
    RISK_EDUCATION = "risk_education"
    ESCORT = "escort"
    LOGISTICS_SUPPORT = "logistics_support"
    ASSESSMENT = "assessment"
    OTHER = "other"


class TaskingOrder(BodyBase, frozen=True, kw_only=True, tag="tasking.order"):
    """Assigns a task to a partner organisation."""

    task_id: Reference
    assignee: OrgId
    task_type: TaskType
    description: Text
    location_desc: ShortText | None = None
    point: Point | None = None
    polygon: Polygon | None = None
    due: AwareDatetime | None = None


class TaskState(enum.StrEnum):
    """Where a task stands, as its assignee reports it."""

    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    DECLINED = "declined"


class TaskingStatus(BodyBase, frozen=True, kw_only=True, tag="tasking.status"):
    """The assignee's report on a task it was given."""

    task_id: Reference
    state: TaskState
    progress_pct: Percent | None = None
    note: Text | None = None


class Component(enum.StrEnum):
    """Mission component a situation report covers."""

    MILITARY = "military"
    POLICE = "police"
    CIVILIAN = "civilian"
    MINE_ACTION = "mine_action"
    LOGISTICS = "logistics"


class SitrepSection(msgspec.Struct, frozen=True, kw_only=True):
    """One headed section of a situation report."""

    heading: ShortText
    text: Text


class Sitrep(BodyBase, frozen=True, kw_only=True, tag="sitrep"):
    """A situation report for one period and one mission component."""

    period_start: AwareDatetime
    period_end: AwareDatetime
    component: Component
    summary: Text
    mission: MissionId | None = None
    sections: Annotated[list[SitrepSection], Meta(max_length=32)] = []


class GuidanceDomain(enum.StrEnum):
    """Area of DPKO guidance to missions."""

    MILITARY = "military"
    POLICE = "police"
    MINE_ACTION = "mine_action"
    LOGISTICS = "logistics"
    ADMINISTRATION = "administration"


class GuidanceNotice(BodyBase, frozen=True, kw_only=True, tag="guidance.notice"):
    """Guidance to missions and partners (policy, SOP, directive) in one domain."""

    domain: GuidanceDomain
    title: ShortText
    text: Text
    effective_from: AwareDatetime
    document_ref: Reference | None = None
    supersedes: Reference | None = None
