"""Hazards and safety: CAP 1.2-like alerts and IMAS-like explosive-ordnance reporting."""

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import (
    AwareDatetime,
    Count,
    Date,
    OrgId,
    Point,
    Polygon,
    Reference,
    ShortText,
    SquareMetres,
    Text,
    Uri,
)


class AlertCategory(enum.StrEnum):
    """CAP 1.2 `category`, lower case."""

    GEO = "geo"
    MET = "met"
    SAFETY = "safety"
    SECURITY = "security"
    RESCUE = "rescue"
    FIRE = "fire"
    HEALTH = "health"
    ENV = "env"
    TRANSPORT = "transport"
    INFRA = "infra"
    CBRNE = "cbrne"
    OTHER = "other"


class Urgency(enum.StrEnum):
    """CAP 1.2 `urgency`: how soon to act."""

    IMMEDIATE = "immediate"
    EXPECTED = "expected"
    FUTURE = "future"
    PAST = "past"
    UNKNOWN = "unknown"


class Severity(enum.StrEnum):
    """CAP 1.2 `severity`: how bad it is."""

    EXTREME = "extreme"
    SEVERE = "severe"
    MODERATE = "moderate"
    MINOR = "minor"
    UNKNOWN = "unknown"


class Certainty(enum.StrEnum):
    """CAP 1.2 `certainty`: how sure the sender is."""

    OBSERVED = "observed"
    LIKELY = "likely"
    POSSIBLE = "possible"
    UNLIKELY = "unlikely"
    UNKNOWN = "unknown"


class DeviceCategory(enum.StrEnum):
    """Explosive ordnance category (IMAS 04.10 terms)."""

    IED = "ied"
    UXO = "uxo"
    AXO = "axo"
    ERW = "erw"
    LANDMINE = "landmine"
    CLUSTER_MUNITION = "cluster_munition"
    SMALL_ARMS_AMMUNITION = "small_arms_ammunition"
    OTHER = "other"


class DeviceCondition(enum.StrEnum):
    """State of a found item as seen by the reporter."""

    INTACT = "intact"
    DAMAGED = "damaged"
    DETERIORATED = "deteriorated"
    UNKNOWN = "unknown"


class ActionTaken(enum.StrEnum):
    """What the reporter did about a found item."""

    NONE = "none"
    MARKED = "marked"
    CORDONED = "cordoned"
    REFERRED_TO_EOD = "referred_to_eod"
    DESTROYED_IN_SITU = "destroyed_in_situ"
    REMOVED = "removed"


class CasualtyCategory(enum.StrEnum):
    """Who was hurt."""

    CIVILIAN = "civilian"
    PEACEKEEPER = "peacekeeper"
    DEMINER = "deminer"
    HUMANITARIAN = "humanitarian"
    NATIONAL_SECURITY_FORCES = "national_security_forces"
    OTHER = "other"


class Casualties(msgspec.Struct, frozen=True, kw_only=True):
    """People killed and injured in one category."""

    category: CasualtyCategory
    killed: Count = 0
    injured: Count = 0


class Circle(msgspec.Struct, frozen=True, kw_only=True):
    """A centre point and a radius in metres (CAP `circle`)."""

    center: Point
    radius_m: Annotated[float, Meta(gt=0, le=1_000_000)]


class AlertArea(msgspec.Struct, frozen=True, kw_only=True):
    """CAP `area`: a description, and a polygon, point or circle where one is known."""

    area_desc: ShortText
    polygon: Polygon | None = None
    point: Point | None = None
    circle: Circle | None = None


class HazardAlert(BodyBase, frozen=True, kw_only=True, tag="hazard.alert"):
    """A CAP 1.2-like warning of a hazard to people in an area."""

    event: ShortText
    category: AlertCategory
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    headline: ShortText
    area: Annotated[list[AlertArea], Meta(min_length=1, max_length=16)]
    description: Text | None = None
    instruction: Text | None = None
    effective: AwareDatetime | None = None
    onset: AwareDatetime | None = None
    expires: AwareDatetime | None = None


class EoSpotReport(BodyBase, frozen=True, kw_only=True, tag="hazard.eo_spot_report"):
    """An explosive-ordnance spot report: one find, where, what, and what was done (IMAS-like)."""

    location: Point
    location_desc: ShortText
    device_category: DeviceCategory
    quantity: Annotated[int, Meta(ge=1, le=100_000)]
    action_taken: ActionTaken
    found_at: AwareDatetime
    reported_by: ShortText
    device_type: ShortText | None = None
    condition: DeviceCondition = DeviceCondition.UNKNOWN
    marked: bool = False
    casualties: Annotated[list[Casualties], Meta(max_length=8)] = []
    photos: Annotated[list[Uri], Meta(max_length=16)] = []


class AreaStatus(enum.StrEnum):
    """IMAS land-release status of a hazardous area."""

    SUSPECTED = "suspected"
    CONFIRMED = "confirmed"
    REDUCED = "reduced"
    CANCELLED = "cancelled"
    CLEARED = "cleared"


class LandUse(enum.StrEnum):
    """Use of land that a hazard blocks."""

    AGRICULTURE = "agriculture"
    GRAZING = "grazing"
    HOUSING = "housing"
    ROAD = "road"
    WATER_ACCESS = "water_access"
    INFRASTRUCTURE = "infrastructure"
    OTHER = "other"


class AreaReport(BodyBase, frozen=True, kw_only=True, tag="hazard.area_report"):
    """A suspected or confirmed hazardous area, with its boundary and what it blocks."""

    area_id: Reference
    status: AreaStatus
    polygon: Polygon
    area_m2: SquareMetres
    hazard_types: Annotated[list[DeviceCategory], Meta(min_length=1, max_length=8)]
    name: ShortText | None = None
    land_use_blocked: Annotated[list[LandUse], Meta(max_length=8)] = []
    evidence: Text | None = None
    surveyed_on: Date | None = None


class ClearanceMethod(enum.StrEnum):
    """How land was released (IMAS 07.11)."""

    NON_TECHNICAL_SURVEY = "non_technical_survey"
    TECHNICAL_SURVEY = "technical_survey"
    CLEARANCE = "clearance"
    EOD_SPOT_TASK = "eod_spot_task"


class DevicesDestroyed(msgspec.Struct, frozen=True, kw_only=True):
    """How many items of one category were destroyed."""

    category: DeviceCategory
    quantity: Count


class ClearanceReport(BodyBase, frozen=True, kw_only=True, tag="hazard.clearance_report"):
    """A completed land-release or EOD task: area released and items destroyed."""

    task_id: Reference
    area: Polygon
    method: ClearanceMethod
    started_on: Date
    completed_on: Date
    organisation: OrgId
    team: ShortText
    area_id: Reference | None = None
    area_cleared_m2: SquareMetres = 0.0
    area_released_m2: SquareMetres = 0.0
    devices_destroyed: Annotated[list[DevicesDestroyed], Meta(max_length=8)] = []
    remarks: Text | None = None


class IncidentKind(enum.StrEnum):
    """What kind of incident happened."""

    EXPLOSIVE_ACCIDENT = "explosive_accident"
    IED_ATTACK = "ied_attack"
    INDIRECT_FIRE = "indirect_fire"
    ARMED_ATTACK = "armed_attack"
    CIVIL_UNREST = "civil_unrest"
    OTHER_SECURITY = "other_security"


class IncidentReport(BodyBase, frozen=True, kw_only=True, tag="incident.report"):
    """An explosive accident or security incident, with casualties by category."""

    kind: IncidentKind
    occurred_at: AwareDatetime
    location: Point
    location_desc: ShortText
    summary: Text
    casualties: Annotated[list[Casualties], Meta(max_length=8)] = []
    device_category: DeviceCategory | None = None
    ongoing: bool = False


class AccessStatus(enum.StrEnum):
    """Whether a route or area can be used."""

    OPEN = "open"
    RESTRICTED = "restricted"
    CLOSED = "closed"


class AccessRestriction(BodyBase, frozen=True, kw_only=True, tag="access.restriction"):
    """A route or area opened, restricted or closed, why, and for how long."""

    route_or_area: ShortText
    status: AccessStatus
    reason: Text
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    polygon: Polygon | None = None
    point: Point | None = None
    conditions: ShortText | None = None
    alternative_route: ShortText | None = None
