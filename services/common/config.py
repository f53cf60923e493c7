"""Kept so that ``from liaison.common.config import redact_url`` (the hub's consumer, the SDK)
keeps working: settings are read with :mod:`liaison.common.settings`, and URLs are handled in
:mod:`liaison.common.urls`."""

from liaison.common.urls import redact_url, with_credentials

__all__ = ["redact_url", "with_credentials"]
