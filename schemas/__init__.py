"""Liaison's message contract: the envelope, message types by family, and error codes.

msgspec Structs here are the single source; `python -m liaison.schemas.generate` derives the JSON
Schemas, the AsyncAPI document and the examples under `schemas/generated/`.
"""
