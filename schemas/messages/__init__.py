"""Message bodies by family; `liaison.schemas.catalogue` lists them all by wire type."""

from liaison.schemas.messages.base import BodyBase

__all__ = ["BodyBase"]
