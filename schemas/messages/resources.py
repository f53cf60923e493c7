"""Resources and logistics: requests for equipment, services, personnel or funds, and answers."""

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

from liaison.schemas.messages.base import BodyBase
from liaison.schemas.types import AwareDatetime, Point, Reference, ShortText, Text, Unit


class ResourceCategory(enum.StrEnum):
    """What kind of resource is asked for."""

    EQUIPMENT = "equipment"
    SERVICES = "services"
    PERSONNEL = "personnel"
    FUNDS = "funds"


class ResourceItem(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a request or answer: what, how many, in which unit."""

    description: ShortText
    quantity: Annotated[float, Meta(gt=0, le=1e12)]
    unit: Unit


_Items = Annotated[list[ResourceItem], Meta(min_length=1, max_length=100)]


class ResourceRequest(BodyBase, frozen=True, kw_only=True, tag="resource.request"):
    """A request for resources, with what is needed, by when and where."""

    request_id: Reference
    category: ResourceCategory
    items: _Items
    needed_by: AwareDatetime
    delivery_location_desc: ShortText
    justification: Text
    delivery_location: Point | None = None


class Decision(enum.StrEnum):
    """A contributor's answer to a resource request."""

    OFFER = "offer"
    COMMIT = "commit"
    DECLINE = "decline"


class ResourceResponse(BodyBase, frozen=True, kw_only=True, tag="resource.response"):
    """An offer, commitment or refusal in answer to a resource request."""

    request_id: Reference
    decision: Decision
    items: Annotated[list[ResourceItem], Meta(max_length=100)] = []
    eta: AwareDatetime | None = None
    conditions: Text | None = None


class DeploymentState(enum.StrEnum):
    """Where committed resources are."""

    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    RELEASED = "released"


class ResourceDeploymentStatus(
    BodyBase, frozen=True, kw_only=True, tag="resource.deployment_status"
):
    """Progress of committed resources towards, at, or away from the place of need."""

    request_id: Reference
    status: DeploymentState
    location_desc: ShortText | None = None
    location: Point | None = None
    eta: AwareDatetime | None = None
    note: Text | None = None


class ResourceRelease(BodyBase, frozen=True, kw_only=True, tag="resource.release"):
    """Resources handed back, no longer needed for the request."""

    request_id: Reference
    released_items: _Items
    reason: Text
    released_at: AwareDatetime | None = None
