// The ledger console: plain JavaScript against the ledger's own API, no build step.
// The operator token stays in this tab's sessionStorage and goes out as a bearer header.
"use strict";

const $ = (selector) => document.querySelector(selector);
const say = (text, bad = false) => { const s = $("#status"); s.textContent = text; s.className = bad ? "bad" : ""; };
let nextCursor = null;
let lastQuery = null;
let refresh = null;

function token() { return sessionStorage.getItem("liaison-token") || ""; }

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let error = response.statusText;
    try { error = (await response.json()).error || error; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${error}`);
  }
  return response;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function show(panel) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.getAttribute("aria-controls") === panel;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  clearInterval(refresh);
  const loaders = { traffic: loadTraffic, partners: loadPartners, dead: loadDeadLetters, health: loadHealth };
  if (loaders[panel]) {
    loaders[panel]();
    if (panel === "traffic" || panel === "health") refresh = setInterval(loaders[panel], 5000);
  }
}

async function guarded(action) {
  try { await action(); } catch (error) { say(error.message, true); }
}

function loadTraffic() {
  return guarded(async () => {
    const traffic = await (await api("/api/traffic?minutes=15")).json();
    const rates = $("#rates tbody"); rates.replaceChildren();
    const top = Math.max(1, ...traffic.rates.map((r) => r.per_minute));
    for (const rate of traffic.rates) {
      const row = rates.insertRow();
      cell(row, rate.message_type); cell(row, rate.per_minute.toFixed(2));
      const bar = document.createElement("span"); bar.className = "bar";
      bar.style.width = `${Math.round((rate.per_minute / top) * 12)}rem`;
      cell(row, "").appendChild(bar);
    }
    const refusals = $("#refusals tbody"); refusals.replaceChildren();
    for (const refusal of traffic.refusals) {
      const row = refusals.insertRow(); cell(row, refusal.code, "refused"); cell(row, refusal.count);
    }
    say(`traffic at ${new Date().toLocaleTimeString()}`);
  });
}

function loadPartners() {
  return guarded(async () => {
    const partners = await (await api("/api/partners")).json();
    const body = $("#partner-table tbody"); body.replaceChildren();
    for (const p of partners) {
      const row = body.insertRow();
      cell(row, p.org);
      cell(row, p.connected === null ? "unknown" : p.connected ? "yes" : "no", p.connected ? "ok" : "");
      cell(row, p.backlog);
      cell(row, p.stale ? `${age(p.oldest_unread_age_seconds)} — stale` : age(p.oldest_unread_age_seconds), p.stale ? "stale" : "");
      cell(row, when(p.last_sent)); cell(row, when(p.last_received));
    }
    const stale = partners.filter((p) => p.stale).length;
    say(`${partners.length} partners, ${stale} stale inbox${stale === 1 ? "" : "es"}`);
  });
}

function searchParams(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (!value) continue;
    params.set(key, key === "since" || key === "until" ? new Date(value).toISOString() : value);
  }
  return params;
}

function runSearch(append) {
  return guarded(async () => {
    const params = new URLSearchParams(lastQuery);
    params.set("limit", "50");
    if (append && nextCursor) params.set("after", nextCursor);
    const page = await (await api(`/api/messages?${params}`)).json();
    const body = $("#results tbody");
    if (!append) body.replaceChildren();
    for (const item of page.items) {
      const row = body.insertRow();
      cell(row, when(item.decided_at));
      cell(row, item.outcome, item.outcome === "refused" ? "refused" : "");
      const target = cell(row, "");
      if (item.message_id) {
        const open = document.createElement("button");
        open.type = "button"; open.className = "link"; open.textContent = item.message_id;
        open.addEventListener("click", () => openTimeline(item.message_id));
        target.appendChild(open);
      } else {
        target.textContent = `record ${item.record_id}`;
      }
      cell(row, item.message_type); cell(row, item.recipient_count); cell(row, item.code);
    }
    nextCursor = page.next;
    $("#more").hidden = !page.next;
    say(`${body.rows.length} result${body.rows.length === 1 ? "" : "s"}${page.next ? ", more available" : ""}`);
  });
}

async function exportCsv() {
  await guarded(async () => {
    const blob = await (await api(`/api/messages.csv?${lastQuery || searchParams($("#search-form"))}`)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob); link.download = "liaison-messages.csv"; link.click();
    say("CSV exported");
  });
}

async function openTimeline(messageId) {
  $("#track-input").value = messageId;
  show("timeline");
  await guarded(async () => {
    const [sender, ...rest] = messageId.split("/");
    const detail = await (await api(`/api/messages/${encodeURIComponent(sender)}/${encodeURIComponent(rest.join("/"))}`)).json();
    $("#timeline-id").textContent = detail.message_id;
    const copies = $("#copies tbody"); copies.replaceChildren();
    for (const r of detail.recipients) {
      const row = copies.insertRow();
      cell(row, r.org); cell(row, r.state, r.refused ? "refused" : ""); cell(row, r.via.join(", ") || "–");
      cell(row, r.refused ? `${r.code} ${r.reason || ""}` : "–");
    }
    const events = $("#events"); events.replaceChildren();
    for (const e of detail.timeline) {
      const item = document.createElement("li");
      const extra = e.detail.reason || e.detail.replay_of || "";
      item.textContent = `${when(e.occurred_at)} — ${e.kind}${e.org ? ` (${e.org})` : ""}${extra ? `: ${extra}` : ""}`;
      events.appendChild(item);
    }
    say(`timeline of ${detail.message_id}: ${detail.timeline.length} events`);
  });
}

function loadDeadLetters() {
  return guarded(async () => {
    const letters = await (await api("/api/dead-letters")).json();
    const body = $("#dead-table tbody"); body.replaceChildren();
    for (const d of letters) {
      const row = body.insertRow();
      cell(row, when(d.kept_at)); cell(row, d.message_id || d.dead_letter_id); cell(row, d.reason);
      cell(row, d.replayed_at ? `${when(d.replayed_at)} by ${d.replayed_by}` : "no");
      const action = cell(row, "");
      const button = document.createElement("button");
      button.type = "button"; button.textContent = d.replayed_at ? "Replay again" : "Replay";
      button.setAttribute("aria-label", `Replay ${d.message_id || d.dead_letter_id}`);
      button.addEventListener("click", () => replay(d, button));
      action.appendChild(button);
    }
    say(`${letters.length} dead letter${letters.length === 1 ? "" : "s"}`);
  });
}

async function replay(letter, button) {
  const again = Boolean(letter.replayed_at);
  if (again && !window.confirm(`Replay ${letter.dead_letter_id} again?`)) return;
  button.disabled = true;
  await guarded(async () => {
    const result = await (await api(`/api/dead-letters/${encodeURIComponent(letter.dead_letter_id)}/replay${again ? "?force=true" : ""}`, { method: "POST" })).json();
    say(`replayed ${result.dead_letter_id} at ${when(result.replayed_at)}`);
    await loadDeadLetters();
    say(`replayed ${result.dead_letter_id} at ${when(result.replayed_at)}`);
  });
  button.disabled = false;
}

function loadHealth() {
  return guarded(async () => {
    const health = await (await api("/api/health")).json();
    const list = $("#health-list"); list.replaceChildren();
    const add = (term, value, good) => {
      const dt = document.createElement("dt"); dt.textContent = term;
      const dd = document.createElement("dd"); dd.textContent = value; dd.className = good ? "ok" : "bad";
      list.append(dt, dd);
    };
    add("Ledger", health.ledger_ready ? "ready" : "not ready", health.ledger_ready);
    add("Broker connection", health.broker_connected ? "connected" : "disconnected", health.broker_connected);
    add("Database", health.database ? "reachable" : "unreachable", health.database);
    add("Ledger lag", `${health.lag_seconds.toFixed(2)} s, ${health.backlog} waiting`, health.lag_seconds < 5);
    if (health.hub) add("Hub", health.hub.ready ? "ready" : `not ready ${health.hub.error || ""}`, health.hub.ready);
    else add("Hub", "not configured (LIAISON_HUB_URL)", true);
    say(`health at ${new Date().toLocaleTimeString()}`);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = token();
  $("#login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("liaison-token", $("#token").value);
    say("token set"); show(document.querySelector('[aria-selected="true"]').getAttribute("aria-controls"));
  });
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => show(tab.getAttribute("aria-controls")));
    // Arrow keys move between tabs, as the ARIA tabs pattern expects.
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus(); show(next.getAttribute("aria-controls"));
    });
  });
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault(); lastQuery = searchParams(event.target).toString(); nextCursor = null; runSearch(false);
  });
  $("#more").addEventListener("click", () => runSearch(true));
  $("#csv").addEventListener("click", exportCsv);
  $("#track-form").addEventListener("submit", (event) => { event.preventDefault(); openTimeline($("#track-input").value.trim()); });
  show("traffic");
});
