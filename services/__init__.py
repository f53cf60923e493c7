"""Liaison services: the routing hub, partner directory and provisioning, SDK and command line."""
