"""The console in Debian's headless Chromium (Playwright driving /usr/bin/chromium).

Load, search, open a timeline, replay a dead letter; with LIAISON_CONSOLE_SCREENSHOTS=docs the
screenshots of each view are written into docs/ (what docs/operations.md shows).
"""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright, expect

from liaison.directory.index import DirectoryIndex
from liaison.ledger.app import CONSUMER, create_app
from tests.conftest import amqp_url_for, management
from tests.hub.conftest import RunningHub
from tests.hub.support import Partner, envelope
from tests.ledger.conftest import ledger_settings, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "console-token-for-browser-tests"
REPLAYER_PASSWORD = "ledger-replayer-password"


@pytest.fixture(scope="session")
async def replayer(vhost: str, run_id: str) -> AsyncIterator[str]:
    """An account with the impersonator tag, as the ledger runs in production; its AMQP URL."""
    account = f"l-{run_id}-ledger"
    await management(
        "PUT", f"/users/{account}", {"password": REPLAYER_PASSWORD, "tags": "impersonator"}
    )
    await management(
        "PUT",
        f"/permissions/{quote(vhost, safe='')}/{account}",
        {"configure": "^$", "write": ".*", "read": ".*"},
    )
    yield amqp_url_for(vhost, account, REPLAYER_PASSWORD)
    await management("DELETE", f"/users/{account}")


@pytest.fixture
async def console(
    replayer: str,
    database_url: str,
    db: asyncpg.Connection,
    directory: DirectoryIndex,
    vhost: str,
) -> AsyncIterator[str]:
    """The ledger app on a real port; its base URL."""
    settings = ledger_settings(replayer, database_url, token=TOKEN, vhost=vhost, stale_seconds=1)
    app = create_app(settings, directory=directory)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    for _ in range(200):
        if app[CONSUMER].connected:
            break
        await asyncio.sleep(0.05)
    yield str(server.make_url("/"))
    await server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium from Debian's package, never a downloaded build."""
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: make chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


def shots_dir(tmp_path: Path) -> Path:
    """docs/ when asked to refresh the documented screenshots, else a temporary directory."""
    wanted = os.environ.get("LIAISON_CONSOLE_SCREENSHOTS")
    return Path(wanted) if wanted else tmp_path


async def shot(page: Page, where: Path, name: str) -> None:
    """A screenshot of the current view."""
    await page.screenshot(path=str(where / f"console-{name}.png"), full_page=True)


async def test_console_search_timeline_and_replay(
    console: str,
    browser: Browser,
    hub: RunningHub,
    partners: dict[str, Partner],
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    """An operator signs in, sees traffic and partners, finds a message, opens its timeline
    and replays a dead letter; the replay is recorded in the ledger."""
    delivered = envelope("mag", ["group:icg-ma"], incident_id="INC-BROWSER")
    await partners["mag"].send(delivered)
    refused = envelope("mag", ["org:not-registered"], incident_id="INC-BROWSER")
    await partners["mag"].send(refused)
    refused_id = f"mag/{refused['distribution_id']}"
    await wait_for(
        db, "SELECT count(*) FROM dead_letters WHERE message_id = $1", refused_id, expect=1
    )
    where = shots_dir(tmp_path)
    page = await browser.new_page(viewport={"width": 1366, "height": 800})

    await page.goto(console)
    await page.get_by_label("Operator token").fill("wrong-token-wrong-token")
    await page.get_by_role("button", name="Use token").click()
    await expect(page.locator("#status")).to_contain_text("401")
    await page.get_by_label("Operator token").fill(TOKEN)
    await page.get_by_label("Operator token").press("Enter")
    await expect(page.locator("#rates")).to_contain_text("hazard.eo_spot_report")
    await expect(page.locator("#refusals")).to_contain_text("500")
    await shot(page, where, "traffic")

    # Keyboard: arrow keys move between the tabs.
    await page.get_by_role("tab", name="Traffic").focus()
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("tab", name="Partners")).to_have_attribute(
        "aria-selected", "true"
    )
    await expect(page.locator("#partner-table")).to_contain_text("unmas")
    # Unread copies older than stale_seconds (1 s here) are flagged once the broker's
    # statistics (refreshed every few seconds) show the backlog.
    for _ in range(40):
        if "— stale" in await page.locator("#partner-table tbody").inner_text():
            break
        await asyncio.sleep(0.5)
        await page.get_by_role("tab", name="Partners").click()
    await expect(page.locator("#partner-table")).to_contain_text("— stale")
    await shot(page, where, "partners")

    await page.get_by_role("tab", name="Search").click()
    await page.get_by_label("Incident").fill("INC-BROWSER")
    await page.get_by_label("Incident").press("Enter")
    delivered_id = f"mag/{delivered['distribution_id']}"
    await expect(page.locator("#results")).to_contain_text(delivered_id)
    await expect(page.locator("#results")).to_contain_text("refused")
    await shot(page, where, "search")

    await page.get_by_role("button", name=delivered_id).click()
    await expect(page.locator("#copies")).to_contain_text("unmas")
    await expect(page.locator("#copies")).to_contain_text("group:icg-ma")
    await expect(page.locator("#events")).to_contain_text("in_inbox")
    await shot(page, where, "timeline")

    await page.get_by_role("tab", name="Dead letters").click()
    await page.get_by_role("button", name=f"Replay {refused_id}").click()
    await expect(page.locator("#status")).to_contain_text("replayed")
    await expect(page.locator("#dead-table")).to_contain_text("ledger-api@")
    await shot(page, where, "dead-letters")
    replays = await wait_for(
        db,
        "SELECT count(*) FROM messages WHERE message_id = $1 AND replay_of IS NOT NULL",
        refused_id,
        expect=1,
    )
    assert replays == 1
    sent = await db.fetchval(
        "SELECT count(*) FROM events WHERE message_id = $1 AND kind = 'replay_sent'", refused_id
    )
    assert sent == 1
    letter = await db.fetchval(
        "SELECT dead_letter_id FROM dead_letters WHERE message_id = $1 ORDER BY kept_at LIMIT 1",
        refused_id,
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{console}api/dead-letters/{letter}/replay",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as again,
    ):
        assert again.status == 409  # at most once unless forced

    await page.get_by_role("tab", name="Health").click()
    await expect(page.locator("#health-list")).to_contain_text("ready")
    await shot(page, where, "health")
    await page.close()
