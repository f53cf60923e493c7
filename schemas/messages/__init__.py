"""Message bodies by family; `schemas.catalogue` lists them all by wire type."""

from schemas.messages.base import BodyBase

__all__ = ["BodyBase"]
