"""Every message type by wire name, and the families they belong to."""

from typing import Final

from liaison.schemas.messages import coordination, hazards, operations, resources, system
from liaison.schemas.messages.base import BodyBase

__all__ = ["FAMILIES", "MESSAGE_TYPES", "tag_of"]


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
