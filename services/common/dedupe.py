"""The dedupe window lives with the partner SDK, which must stand alone; the hub uses the same."""

from liaison.sdk.dedupe import DedupeWindow

__all__ = ["DedupeWindow"]
