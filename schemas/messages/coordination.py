"""Coordination: meetings of coordination groups, information exchange, OROLSI programme reports."""

from typing import Annotated

from msgspec import Meta

from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import (
    AwareDatetime,
    Count,
    Date,
    DistributionId,
    GroupId,
    Keyword,
    MissionId,
    Point,
    ShortText,
    Text,
    Uri,
)


class MeetingNotice(BodyBase, frozen=True, kw_only=True, tag="meeting.notice"):
    """A coordination group meeting: when, where (or the link), and the agenda."""

    group: GroupId
    title: ShortText
    start: AwareDatetime
    end: AwareDatetime
    venue: ShortText | None = None
    virtual_link: Uri | None = None
    agenda: Annotated[list[ShortText], Meta(max_length=32)] = []


class InformationRequest(BodyBase, frozen=True, kw_only=True, tag="information.request"):
    """A question to partners, with topics and a deadline for answers."""

    question: Text
    topics: Annotated[list[Keyword], Meta(max_length=16)] = []
    respond_by: AwareDatetime | None = None


class InformationResponse(BodyBase, frozen=True, kw_only=True, tag="information.response"):
    """An answer to an information request, with links to attachments."""

    request_ref: DistributionId
    answer: Text
    attachments: Annotated[list[Uri], Meta(max_length=16)] = []


class DdrReport(BodyBase, frozen=True, kw_only=True, tag="ddr.report"):
    """Disarmament, demobilization and reintegration figures for one programme and period."""

    programme: ShortText
    period_start: Date
    period_end: Date
    mission: MissionId | None = None
    location_desc: ShortText | None = None
    location: Point | None = None
    combatants_disarmed: Count = 0
    combatants_demobilized: Count = 0
    combatants_reintegrated: Count = 0
    weapons_collected: Count = 0
    ammunition_rounds_collected: Count = 0
    explosive_items_collected: Count = 0
    remarks: Text | None = None
