"""The command line's client of the ledger's HTTP API (``LIAISON_LEDGER_URL``, operator token).

The token is ``LIAISON_LEDGER_TOKEN``, else ``LIAISON_ADMIN_TOKEN``; HTTP errors become one
LiaisonError line with the API's own explanation.
"""

import os
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from liaison.common.errors import LiaisonError

DEFAULT_LEDGER_URL = "http://127.0.0.1:8090"


class LedgerUnavailable(LiaisonError):
    """The ledger's API could not be reached or refused the call."""


def ledger_url() -> URL:
    """Where the ledger's API answers."""
    return URL(os.environ.get("LIAISON_LEDGER_URL") or DEFAULT_LEDGER_URL)


def _headers() -> dict[str, str]:
    token = os.environ.get("LIAISON_LEDGER_TOKEN") or os.environ.get("LIAISON_ADMIN_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


async def get(path: str, params: dict[str, str] | None = None) -> tuple[bytes, str]:
    """GET ``path`` from the ledger; (body, content type), or LedgerUnavailable."""
    url = ledger_url().with_path(path)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.get(url, params=params or {}, headers=_headers()) as response,
        ):
            body = await response.read()
            if response.status >= 300:
                raise LedgerUnavailable(f"{response.status}: {_error(body)}")
            return body, response.content_type
    except aiohttp.ClientError as exc:
        raise LedgerUnavailable(f"cannot reach the ledger at {url.origin()}: {exc}") from None


async def get_json(path: str, params: dict[str, str] | None = None) -> Any:
    """GET ``path`` and decode its JSON."""
    body, _ = await get(path, params)
    return msgspec.json.decode(body)


def _error(body: bytes) -> str:
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body[:200].decode("utf-8", "replace")
    return str(doc.get("error", doc)) if isinstance(doc, dict) else str(doc)
