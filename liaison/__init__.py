"""Liaison: inter-agency coordination messaging for UN peacekeeping partners, over RabbitMQ.

Everything imports as ``liaison.…``. The code lives in the repository's ``services/`` (one folder
a service) and ``schemas/`` (the message contract); the entries of this folder are links to
them, so that an installed Liaison adds one top-level name to site-packages, not ``services``
and ``schemas``. A new service gets its folder under ``services/`` and one link here.
"""
