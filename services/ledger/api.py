"""The ledger's HTTP API: search, one message's timeline, partners, traffic, CSV, OpenAPI.

Every ``/api`` path needs the operator's bearer token (the hub's admin rule: without a token
configured, loopback callers only). Query strings are converted into ``SearchQuery`` with its
constraints, so a bad filter is a 400 that names it, never a database error.
"""

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import msgspec
import structlog
from aiohttp import web

from liaison.common.settings import Secret
from liaison.directory.management import ManagementClient
from liaison.hub.admin import AdminRefusal, check_admin_access
from liaison.ledger import queries
from liaison.ledger.openapi import openapi_document
from liaison.ledger.replay import ReplayRefused, replay_dead_letter
from liaison.ledger.store import open_pool
from liaison.ledger.views import (
    ChainHead,
    ChainHeads,
    Health,
    MessageSummary,
    PartnerView,
    Problem,
    ReplayResult,
    SearchQuery,
)
from liaison.schemas.wire import inbox_queue

log = structlog.get_logger("liaison.ledger")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_encoder = msgspec.json.Encoder()
#: Most rows one CSV export writes.
CSV_MAX_ROWS = 100_000


class ReadPool:
    """The API's own pool, opened on first use so the app starts while PostgreSQL is down."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        """The pool; raises ApiProblem (503) when the database cannot be reached."""
        async with self._lock:
            if self._pool is None:
                try:
                    self._pool = await open_pool(self._url)
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    raise _problem(503, f"the ledger database is unavailable: {exc}") from None
            return self._pool

    async def close(self) -> None:
        """Close the pool if it was opened."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def json_response(value: object, status: int = 200) -> web.Response:
    """A JSON answer encoded by msgspec (datetimes as RFC 3339)."""
    return web.Response(body=_encoder.encode(value), status=status, content_type="application/json")


class ApiProblem(Exception):
    """An error answer: its HTTP status and the explanation the caller gets."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _problem(status: int, error: str) -> ApiProblem:
    return ApiProblem(status, error)


def _problem_response(
    status: int, error: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(
            Problem(status="refused" if status in (401, 403) else "error", error=error)
        ),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def operator_middleware(token: Callable[[], str | None]) -> Any:
    """Refuse ``/api`` calls without the operator token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            try:
                check_admin_access(request.remote, request.headers.get("Authorization"), token())
            except AdminRefusal as refusal:
                log.warning("api_refused", path=request.path, remote=request.remote)
                headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
                return _problem_response(refusal.status, refusal.reason, headers)
        try:
            return await handler(request)
        except ApiProblem as problem:
            return _problem_response(problem.status, problem.error)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            error = f"the ledger database is unavailable: {type(exc).__name__}"
            return _problem_response(503, error)

    return middleware


def search_query(request: web.Request, **overrides: object) -> SearchQuery:
    """The request's filters as a SearchQuery; 400 naming the bad one."""
    raw: dict[str, object] = {k: v for k, v in request.query.items() if v != ""}
    raw.update(overrides)
    try:
        return msgspec.convert(raw, SearchQuery, strict=False)
    except msgspec.ValidationError as exc:
        raise _problem(400, f"bad search filter: {exc}") from None


class LedgerApi:
    """The handlers, over the read pool and the settings they need."""

    def __init__(
        self,
        pool: ReadPool,
        *,
        management: Callable[[], ManagementClient],
        vhost: str,
        organisations: Callable[[], list[str]],
        health: Callable[[], dict[str, Any]],
        hub_url: str | None,
        stale_seconds: float,
        amqp_url: str,
    ) -> None:
        self.pool = pool
        self._management = management
        self._vhost = vhost
        self._organisations = organisations
        self._health = health
        self._hub_url = hub_url
        self._stale = stale_seconds
        self._amqp_url = amqp_url

    def routes(self, app: web.Application) -> None:
        """Register every API route."""
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/api/messages", self.search)
        app.router.add_get("/api/messages.csv", self.export_csv)
        app.router.add_get("/api/messages/{sender}/{distribution_id}", self.message)
        app.router.add_get("/api/partners", self.partners)
        app.router.add_get("/api/traffic", self.traffic)
        app.router.add_get("/api/dead-letters", self.dead_letters)
        app.router.add_get("/api/health", self.health)
        app.router.add_get("/api/chain/heads", self.chain_heads)
        app.router.add_post("/api/dead-letters/{dead_letter_id}/replay", self.replay)

    async def openapi(self, _: web.Request) -> web.Response:
        """The OpenAPI 3.1 document."""
        return json_response(openapi_document())

    async def search(self, request: web.Request) -> web.Response:
        """A page of decisions matching the filters."""
        query = search_query(request)
        pool = await self.pool.get()
        try:
            page = await queries.search(pool, query)
        except queries.BadCursor as exc:
            raise _problem(400, str(exc)) from None
        return json_response(page)

    async def export_csv(self, request: web.Request) -> web.StreamResponse:
        """Every decision matching the filters, as CSV, newest first."""
        query = search_query(request, limit=500)
        if query.after is not None:
            raise _problem(400, "the CSV export starts at the newest match; drop 'after'")
        pool = await self.pool.get()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": 'attachment; filename="liaison-messages.csv"',
            }
        )
        await response.prepare(request)
        fields = list(MessageSummary.__struct_fields__)
        written = 0
        await response.write(_csv_line(fields))
        while True:
            try:
                page = await queries.search(pool, query)
            except queries.BadCursor as exc:  # pragma: no cover - cursors come from search
                raise _problem(400, str(exc)) from None
            for item in page.items:
                row = msgspec.to_builtins(item)
                await response.write(_csv_line([row[f] for f in fields]))
                written += 1
            if page.next is None or written >= CSV_MAX_ROWS:
                break
            query = msgspec.structs.replace(query, after=page.next)
        await response.write_eof()
        return response

    async def message(self, request: web.Request) -> web.Response:
        """One message's decisions, recipients and timeline."""
        message_id = f"{request.match_info['sender']}/{request.match_info['distribution_id']}"
        if len(message_id) > 300:
            raise _problem(400, "sender/distribution_id is too long")
        pool = await self.pool.get()
        detail = await queries.message_detail(pool, message_id)
        if detail is None:
            raise _problem(404, f"{message_id} is not in the ledger")
        return json_response(detail)

    async def traffic(self, request: web.Request) -> web.Response:
        """Rate by type and refusals by code over ``minutes`` (default 15)."""
        try:
            minutes = int(request.query.get("minutes", "15"))
        except ValueError:
            raise _problem(400, "minutes must be an integer") from None
        if not 1 <= minutes <= 1440:
            raise _problem(400, "minutes must be between 1 and 1440")
        pool = await self.pool.get()
        return json_response(await queries.traffic(pool, minutes))

    async def dead_letters(self, _: web.Request) -> web.Response:
        """The newest dead letters kept."""
        pool = await self.pool.get()
        return json_response(await queries.dead_letters(pool))

    async def replay(self, request: web.Request) -> web.Response:
        """Replay one dead letter as its original sender; at most once unless ?force=true."""
        dead_letter_id = request.match_info["dead_letter_id"]
        if not 0 < len(dead_letter_id) <= 64:
            raise _problem(400, "dead letter ids are 1-64 characters")
        force = request.query.get("force", "false").lower() == "true"
        operator = f"ledger-api@{request.remote or 'unknown'}"
        pool = await self.pool.get()
        async with pool.acquire() as connection:
            try:
                when = await replay_dead_letter(
                    connection, self._amqp_url, dead_letter_id, operator=operator, force=force
                )
            except ReplayRefused as refused:
                raise _problem(refused.status, str(refused)) from None
        log.info("replayed", dead_letter_id=dead_letter_id, by=operator)
        return json_response(
            ReplayResult(dead_letter_id=dead_letter_id, replayed_at=when, replayed_by=operator)
        )

    async def partners(self, _: web.Request) -> web.Response:
        """Each organisation: inbox backlog and consumers (management API), ledger activity."""
        pool = await self.pool.get()
        activity = await queries.partner_activity(pool)
        backlog, consumers = await self._inboxes()
        now = datetime.now(UTC)
        orgs = sorted(set(self._organisations()) | set(activity))
        views = []
        for org in orgs:
            seen = activity.get(org, {})
            waiting = backlog.get(org)
            oldest = seen.get("oldest_unread")
            age = (now - oldest).total_seconds() if oldest is not None and waiting else None
            views.append(
                PartnerView(
                    org=org,
                    backlog=waiting,
                    oldest_unread_age_seconds=None if age is None else round(age, 1),
                    last_sent=seen.get("last_sent"),
                    last_received=seen.get("last_received"),
                    connected=None if org not in consumers else consumers[org] > 0,
                    stale=age is not None and age > self._stale,
                )
            )
        return json_response(views)

    async def _inboxes(self) -> tuple[dict[str, int], dict[str, int]]:
        backlog: dict[str, int] = {}
        consumers: dict[str, int] = {}
        try:
            async with self._management() as client:
                queues = await client.queues(self._vhost)
        except Exception as exc:  # the partner view still shows what the ledger knows
            log.warning("management_unavailable", error=f"{type(exc).__name__}: {exc}")
            return backlog, consumers
        for queue in queues:
            if not queue.name.startswith("inbox."):
                continue
            org = queue.name.removeprefix("inbox.").removesuffix(".flash")
            if queue.name not in (inbox_queue(org), inbox_queue(org) + ".flash"):
                continue
            backlog[org] = backlog.get(org, 0) + (queue.messages or 0)
            consumers[org] = consumers.get(org, 0) + (queue.consumers or 0)
        return backlog, consumers

    async def chain_heads(self, _: web.Request) -> web.Response:
        """The latest signed head of each day: what a watcher copies out of the operator's reach."""
        pool = await self.pool.get()
        rows = await pool.fetch(
            "SELECT DISTINCT ON (day) day, seq, head, signed_at, kid, jws FROM chain_heads "
            "ORDER BY day DESC, seq DESC LIMIT 400"
        )
        heads = [
            ChainHead(
                day=r["day"].isoformat(),
                seq=r["seq"],
                head=r["head"],
                signed_at=r["signed_at"],
                kid=r["kid"],
                jws=r["jws"],
            )
            for r in rows
        ]
        return json_response(ChainHeads(heads=heads))

    async def health(self, _: web.Request) -> web.Response:
        """The ledger's readiness and lag, and the hub's /readyz when LIAISON_HUB_URL is set."""
        own = self._health()
        hub: dict[str, object] | None = None
        if self._hub_url:
            try:
                timeout = aiohttp.ClientTimeout(total=2)
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(f"{self._hub_url.rstrip('/')}/readyz") as answer,
                ):
                    hub = {"ready": answer.status == 200, **(await answer.json())}
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                hub = {"ready": False, "error": type(exc).__name__}
        return json_response(Health(hub=hub, **own))


def _csv_line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerow(["" if v is None else _safe_cell(v) for v in values])
    return out.getvalue().encode()


def _safe_cell(value: object) -> str:
    # A cell starting with = + - @ is a formula in spreadsheets: prefix it so it stays text.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def management_client(url: str, user: str, password: str) -> Callable[[], ManagementClient]:
    """A factory of management clients (one per partner-view request)."""
    return lambda: ManagementClient(url, user, Secret(password))
