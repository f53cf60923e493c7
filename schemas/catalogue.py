"""Every message type by wire name, and the families they belong to."""

from typing import Final

from liaison.schemas.messages import coordination, hazards, operations, resources, system
from liaison.schemas.messages.base import BodyBase

__all__ = ["FAMILIES", "FLASH_TYPES", "HUB_ONLY_TYPES", "MESSAGE_TYPES", "PARTNER_TYPES", "tag_of"]


def tag_of(cls: type[BodyBase]) -> str:
    """The wire type name (`type` tag) of a body class, e.g. `hazard.alert`."""
    tag = cls.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{cls.__name__} has no string tag")
    return tag


_BY_FAMILY: Final[dict[str, tuple[type[BodyBase], ...]]] = {
    "hazards": (
        hazards.HazardAlert,
        hazards.EoSpotReport,
        hazards.AreaReport,
        hazards.ClearanceReport,
        hazards.IncidentReport,
        hazards.AccessRestriction,
    ),
    "operations": (
        operations.MandateUpdate,
        operations.TaskingOrder,
        operations.TaskingStatus,
        operations.Sitrep,
        operations.GuidanceNotice,
    ),
    "resources": (
        resources.ResourceRequest,
        resources.ResourceResponse,
        resources.ResourceDeploymentStatus,
        resources.ResourceRelease,
    ),
    "coordination": (
        coordination.MeetingNotice,
        coordination.InformationRequest,
        coordination.InformationResponse,
        coordination.DdrReport,
    ),
    "system": (system.Ack, system.ErrorReport, system.StatusRequest, system.StatusReport),
}

#: Family name -> the wire type names in it, in catalogue order.
FAMILIES: Final[dict[str, tuple[str, ...]]] = {
    family: tuple(tag_of(cls) for cls in classes) for family, classes in _BY_FAMILY.items()
}

#: Wire type name -> body class, for all message types, in catalogue order.
MESSAGE_TYPES: Final[dict[str, type[BodyBase]]] = {
    tag_of(cls): cls for classes in _BY_FAMILY.values() for cls in classes
}

#: Types only the hub originates: a partner sending one is refused with code 206.
HUB_ONLY_TYPES: Final = frozenset({tag_of(system.ErrorReport), tag_of(system.StatusReport)})
#: Types a partner may publish (the directory's policy says to whom), in catalogue order.
PARTNER_TYPES: Final = tuple(t for t in MESSAGE_TYPES if t not in HUB_ONLY_TYPES)
#: Types that can arrive in a flash inbox: those a partner may send with precedence `flash`.
#: Receipts (`ack`), status requests (the ledger answers them) and hub reports never do.
FLASH_TYPES: Final = tuple(
    t for t in PARTNER_TYPES if t not in {tag_of(system.Ack), tag_of(system.StatusRequest)}
)
