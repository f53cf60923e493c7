"""Errors shared by every service.

    LiaisonError
     ├── ConfigError          a LIAISON_* variable is missing or malformed
     ├── DirectoryError       the directory file cannot be read or is inconsistent
     └── BrokerError          RabbitMQ refused something or cannot be reached

Library errors (aio-pika, aiohttp, msgspec) are translated into these at the service boundary,
so callers and the command line handle one tree.
"""


class LiaisonError(Exception):
    """Root of every error Liaison raises on purpose."""


class ConfigError(LiaisonError):
    """A setting is missing or malformed; the message names the variable."""


class DirectoryError(LiaisonError):
    """The directory of organisations is unreadable or inconsistent; the message names where."""


class BrokerError(LiaisonError):
    """The broker could not be reached or refused an operation."""
