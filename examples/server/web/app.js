// callready inbox: lists the contacts callable on every business number,
// keeps the lists live with one Server-Sent Events stream, and shows a
// contact's chat and permission. Plain JS, no build step.
//
// The page holds every channel's callable entries and derives everything
// shown (rows, the sidebar's counts, countdowns) from them and the server's
// clock, so nothing is stale: a row and its count go the second the
// permission runs out; the server's "expired" event confirms it.
"use strict";

const TOKEN_KEY = "callready.token";
const MIN = 60 * 1000, HOUR = 60 * MIN, DAY = 24 * HOUR;
const SOURCES = {
  request: "Accepted request",
  callback: "Call-back",
  inbound_call: "Called in",
  profile: "Profile opt-in",
};
// Filters and their URL parameters (bookmarkable, shareable views).
const FILTERS = { q: "q", source: "f-source", within: "f-within", calls: "f-calls", confirmed: "f-confirmed", sort: "sort" };
const WITHIN = { "2h": 2 * HOUR, "24h": DAY, "72h": 3 * DAY };

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  channels: [], // [{channel, display_phone_number}]
  byChannel: new Map(), // channel → Map(contact → entry)
  channel: null,
  selected: null,
  offset: 0, // server clock minus browser clock, ms
  es: null,
  loadSeq: 0,
  asOf: "", // ISO instant the contact panel is shown at; "" for now
  asOfKnown: false, // only what was recorded by asOf
  historyOpen: false,
  tab: "accepted", // accepted, pending or reask
  pending: new Map(), // the current channel's pending requests: contact → entry
  reask: [], // the current channel's Re-ask list
  listsChannel: null, // the channel pending and reask were loaded for
  filters: { q: "", source: "", within: "", calls: "", confirmed: "", sort: "expiring" },
};

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

class AuthError extends Error {}

async function api(path, method) {
  const res = await fetch(path, { method: method || "GET", headers: { Authorization: "Bearer " + state.token } });
  if (res.status === 401) throw new AuthError("wrong token");
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function now() {
  return Date.now() + state.offset;
}

// ---- time a person reads: one format, the agent's zone, shown ----

const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const absFmt = new Intl.DateTimeFormat(undefined, {
  weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short",
});
const clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });

function abs(t) {
  return absFmt.format(new Date(t));
}

// span words a duration: "3 h 12 min", "2 days 4 h", "12 min 5 s".
function span(ms, seconds) {
  const s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d > 0) return d + (d === 1 ? " day" : " days") + (h ? ` ${h} h` : "");
  if (h > 0) return `${h} h` + (m ? ` ${m} min` : "");
  if (m > 0) return `${m} min` + (seconds && sec ? ` ${sec} s` : "");
  return `${sec} s`;
}

// rel is a time relative to now (or to base, the server's "now" of an
// answer): "in 3 h 12 min", "2 days ago".
function rel(t, seconds, base) {
  const ms = Date.parse(t) - (base ? Date.parse(base) : now());
  if (Math.abs(ms) < 1000) return "now";
  return ms > 0 ? "in " + span(ms, seconds) : span(ms, seconds) + " ago";
}

// when is the one way a time is shown: absolute, in the agent's zone, with
// the relative time beside it.
function when(t, base) {
  return `${abs(t)} (${rel(t, false, base)})`;
}

// readable rewrites the ISO timestamps of a server sentence; absOnly
// leaves out the relative time (chat history).
function readable(text, absOnly) {
  return String(text || "").replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)/g,
    (iso) => (absOnly ? abs(iso) : when(iso)));
}

// ---- phone numbers, grouped for reading ----

// Calling codes of one or two digits; anything else takes three.
const CC1 = ["1", "7"];
const CC2 = ["20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
  "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84", "86",
  "90", "91", "92", "93", "94", "95", "98"];
// Grouping of the national number for some countries; others in threes.
const GROUPS = { "1": [3, 3, 4], "34": [3, 2, 2, 2], "33": [1, 2, 2, 2, 2], "44": [4, 6], "49": [3, 8], "351": [3, 3, 3], "55": [2, 5, 4], "91": [5, 5], "234": [3, 3, 4] };

function isPhone(contact) {
  return /^\d{6,15}$/.test(contact);
}

function phone(contact) {
  if (!isPhone(contact)) return contact; // a BSUID
  const cc = CC1.includes(contact[0]) ? contact.slice(0, 1) : CC2.includes(contact.slice(0, 2)) ? contact.slice(0, 2) : contact.slice(0, 3);
  let rest = contact.slice(cc.length);
  const parts = [];
  for (const n of GROUPS[cc] || []) {
    if (!rest) break;
    parts.push(rest.slice(0, n));
    rest = rest.slice(n);
  }
  while (rest.length > 4) {
    parts.push(rest.slice(0, 3));
    rest = rest.slice(3);
  }
  if (rest) parts.push(rest);
  return "+" + cc + " " + parts.join(" ");
}

function e164(contact) {
  return isPhone(contact) ? "+" + contact : contact;
}

// ---- notices ----

let noticeTimer = null;
function notice(text, kind) {
  const n = $("notice");
  n.textContent = text;
  n.className = "notice " + (kind || "");
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (n.hidden = true), 9000);
}

async function copyNumber(contact) {
  const text = e164(contact);
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const t = el("textarea");
    t.value = text;
    document.body.append(t);
    t.select();
    document.execCommand("copy");
    t.remove();
  }
  notice(`Copied ${text}`, "ok");
}

// ---- login ----

function showLogin(msg) {
  closeStream();
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
  $("token").focus();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  try {
    await api("/api/channels");
  } catch (e) {
    showLogin(e instanceof AuthError ? "That token is not valid." : "Server unreachable: " + e.message);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("token").value = "";
  start();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  state.channel = null;
  showLogin("");
});

function failed(e) {
  if (e instanceof AuthError) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("Your session ended: log in again.");
    return true;
  }
  console.error(e);
  return false;
}

// ---- the URL: channel, contact and filters ----

function readURL() {
  const p = new URLSearchParams(location.search);
  for (const k of Object.keys(FILTERS)) state.filters[k] = p.get(k) || (k === "sort" ? "expiring" : "");
  if (!["expiring", "recent"].includes(state.filters.sort)) state.filters.sort = "expiring";
  for (const [k, id] of Object.entries(FILTERS)) {
    const input = $(id);
    input.value = state.filters[k];
    if (input.value !== state.filters[k]) state.filters[k] = input.value; // unknown option: ignored
  }
  const tab = p.get("tab");
  state.tab = TABS.includes(tab) ? tab : "accepted";
  return { channel: p.get("channel"), contact: p.get("contact") };
}

function writeURL() {
  const p = new URLSearchParams();
  if (state.channel) p.set("channel", state.channel);
  for (const k of Object.keys(FILTERS)) {
    const v = state.filters[k];
    if (v && !(k === "sort" && v === "expiring")) p.set(k, v);
  }
  if (state.tab !== "accepted") p.set("tab", state.tab);
  if (state.selected) p.set("contact", state.selected);
  const qs = p.toString();
  history.replaceState(null, "", qs ? "?" + qs : location.pathname);
}

for (const [k, id] of Object.entries(FILTERS)) {
  $(id).addEventListener("input", () => {
    state.filters[k] = $(id).value;
    writeURL();
    renderRows();
  });
}
$("filters").addEventListener("submit", (ev) => ev.preventDefault());
$("clear-filters").addEventListener("click", () => {
  for (const [k, id] of Object.entries(FILTERS)) {
    state.filters[k] = k === "sort" ? "expiring" : "";
    $(id).value = state.filters[k];
  }
  writeURL();
  renderRows();
});

// ---- start: every channel's list, then one stream ----

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("zone").textContent = "Times in " + ZONE;
  const want = readURL();
  await loadAll(want);
}

async function loadAll(want) {
  const seq = ++state.loadSeq;
  closeStream();
  let revision = null;
  const byChannel = new Map();
  try {
    const body = await api("/api/channels");
    const channels = body.channels;
    for (const c of channels) {
      const entries = new Map();
      let cursor = "";
      do {
        const q = new URLSearchParams({ limit: "1000", order: "expiring" });
        if (cursor) q.set("cursor", cursor);
        const page = await api(`/api/channels/${encodeURIComponent(c.channel)}/callable?${q}`);
        if (seq !== state.loadSeq) return;
        if (revision === null) {
          // Subscribing after the first page's revision replays whatever
          // changed while the other pages and channels loaded: applying a
          // change twice is harmless.
          revision = page.revision;
          state.offset = Date.parse(page.now) - Date.now();
        }
        for (const e of page.contacts) entries.set(e.contact, e);
        cursor = page.next_cursor;
      } while (cursor);
      byChannel.set(c.channel, entries);
    }
    state.channels = channels;
  } catch (e) {
    if (!failed(e)) {
      setLive("error", "list failed, retrying…");
      setTimeout(() => seq === state.loadSeq && loadAll(), 3000);
    }
    return;
  }
  if (seq !== state.loadSeq) return;
  state.byChannel = byChannel;
  const known = (ch) => state.channels.some((c) => c.channel === ch);
  let channel = want && want.channel && known(want.channel) ? want.channel : state.channel;
  if (!channel || !known(channel)) channel = state.channels.length ? state.channels[0].channel : null;
  state.channel = channel;
  renderChannels();
  renderRows();
  renderTabs();
  loadLists(); // Pending and Re-ask of the channel
  if (want && want.contact && channel) selectContact(want.contact, false);
  else if (state.selected) loadContact(state.selected);
  openStream(revision === null ? null : revision, seq);
}

// ---- channels and their live counts ----

function entriesOf(channel) {
  return state.byChannel.get(channel) || new Map();
}

function counts(channel) {
  const t = now();
  let callable = 0, soon = 0;
  for (const e of entriesOf(channel).values()) {
    const left = e.expires_at ? Date.parse(e.expires_at) - t : Infinity;
    if (left <= 0) continue;
    callable++;
    if (left <= DAY) soon++;
  }
  return { callable, soon };
}

function channelName(c) {
  return c.display_phone_number ? phone(c.display_phone_number) : c.channel;
}

function renderChannels() {
  const ul = $("channels");
  ul.replaceChildren();
  $("no-channels").hidden = state.channels.length > 0;
  for (const c of state.channels) {
    const li = el("li");
    const b = el("button", "channel" + (c.channel === state.channel ? " active" : ""));
    b.type = "button";
    b.dataset.channel = c.channel;
    if (c.channel === state.channel) b.setAttribute("aria-current", "true");
    b.append(el("span", "channel-name", channelName(c)), el("span", "channel-id", "ID " + c.channel),
      el("span", "badge"), el("span", "sr-only", " callable now"), el("span", "channel-soon"));
    b.addEventListener("click", () => selectChannel(c.channel));
    li.append(b);
    ul.append(li);
  }
  renderCounts();
  const cur = state.channels.find((c) => c.channel === state.channel);
  $("channel-title").textContent = cur ? channelName(cur) : "";
}

// renderCounts refreshes the sidebar from the live entries and the clock.
function renderCounts() {
  for (const b of document.querySelectorAll("#channels .channel")) {
    const { callable, soon } = counts(b.dataset.channel);
    b.querySelector(".badge").textContent = String(callable);
    b.querySelector(".badge").title = "callable now";
    b.querySelector(".channel-soon").textContent = soon ? `${soon} expiring within 24 h` : "";
  }
}

function selectChannel(channel) {
  if (state.channel !== channel) {
    state.channel = channel;
    selectContact(null);
  }
  renderChannels();
  renderRows();
  loadLists();
  writeURL();
}

// ---- the callable list ----

function matches(e, t) {
  const f = state.filters;
  if (f.q) {
    const q = f.q.trim().toLowerCase();
    const digits = q.replace(/[\s+()-]/g, "");
    const hay = (e.name || "").toLowerCase();
    const byName = q && hay.includes(q);
    const ids = [e.contact, e.wa_id || "", e.user_id || ""];
    const byContact = ids.some((id) => id.toLowerCase().includes(q) || (/^\d+$/.test(digits) && id.includes(digits)));
    if (!byName && !byContact) return false;
  }
  switch (f.source) {
    case "request": if (e.source !== "request" || e.kind === "permanent") return false; break;
    case "callback": if (e.source !== "callback" && e.source !== "inbound_call") return false; break;
    case "profile": if (e.source !== "profile") return false; break;
    case "permanent": if (e.kind !== "permanent") return false; break;
  }
  if (f.within) {
    if (!e.expires_at || Date.parse(e.expires_at) - t > WITHIN[f.within]) return false;
  }
  if (f.calls === "left" && !(e.calls_left > 0)) return false;
  if (f.calls === "none" && e.calls_left !== 0) return false;
  // A call-back from the user's call alone, before Meta's automatic reply.
  if (f.confirmed === "unconfirmed" && !e.unconfirmed) return false;
  if (f.confirmed === "confirmed" && e.unconfirmed) return false;
  return true;
}

function visibleEntries() {
  const t = now();
  const all = [...entriesOf(state.channel).values()].filter((e) => !e.expires_at || Date.parse(e.expires_at) > t);
  const list = all.filter((e) => matches(e, t));
  const byRecent = (a, b) => Date.parse(b.granted_at) - Date.parse(a.granted_at);
  list.sort(state.filters.sort === "recent" ? byRecent : (a, b) => {
    if (a.expires_at && b.expires_at) return Date.parse(a.expires_at) - Date.parse(b.expires_at);
    if (a.expires_at) return -1;
    if (b.expires_at) return 1;
    return byRecent(a, b);
  });
  return { list, total: all.length };
}

function renderRows(flash) {
  const rows = $("rows");
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("#rows .row");
  const focusedContact = focused ? focused.dataset.contact : null;
  const existing = new Map([...rows.children].map((r) => [r.dataset.contact, r]));
  const { list, total } = visibleEntries();
  let prev = null;
  for (const e of list) {
    let row = existing.get(e.contact);
    existing.delete(e.contact);
    const fresh = buildRow(e);
    if (row) {
      row.replaceChildren(...fresh.childNodes);
      row.className = fresh.className;
    } else {
      row = fresh;
    }
    if (e.contact === flash) {
      row.classList.add("flash");
      setTimeout(() => row.classList.remove("flash"), 2200);
    }
    // Keep DOM order equal to the sorted order with minimal moves.
    const want = prev ? prev.nextSibling : rows.firstChild;
    if (want !== row) rows.insertBefore(row, want);
    prev = row;
  }
  for (const row of existing.values()) row.remove();
  // Roving focus: one row in the tab order, the arrows move between rows.
  const opens = [...rows.querySelectorAll(".open")];
  let current = opens.find((b) => b.closest(".row").dataset.contact === (focusedContact || state.selected)) || opens[0];
  for (const b of opens) b.tabIndex = b === current ? 0 : -1;
  if (focusedContact) {
    const again = opens.find((b) => b.closest(".row").dataset.contact === focusedContact);
    if (again && document.activeElement !== again && !rows.contains(document.activeElement)) again.focus();
  }
  $("count").textContent = String(list.length);
  $("count-total").textContent = list.length === total ? "" : ` of ${total}`;
  $("empty").hidden = total > 0;
  $("no-match").hidden = total === 0 || list.length > 0;
  tick();
}

function buildRow(e) {
  const row = el("li", "row");
  row.dataset.contact = e.contact;
  if (e.contact === state.selected) row.classList.add("selected");

  const open = el("button", "open");
  open.type = "button";
  const who = el("span", "who");
  // The phone number when Meta gave one, else the BSUID (username users).
  const shown = e.wa_id || e.contact;
  who.append(el("span", "name", e.name || phone(shown)), el("span", "num", e.name ? phone(shown) : "no profile name"));
  open.append(who);
  open.addEventListener("click", () => selectContact(e.contact, true));

  const perm = el("div", "perm");
  perm.append(el("span", "kind " + e.kind, e.kind === "permanent" ? "Permanent" : "Temporary"),
    el("span", "source", SOURCES[e.source] || e.source));
  if (e.unconfirmed) {
    const u = el("span", "unconfirmed", "Unconfirmed");
    u.title = e.unconfirmed_reason || "";
    perm.append(u);
  }

  const timer = el("div", "timer");
  if (e.expires_at) {
    timer.dataset.expires = e.expires_at;
    timer.append(el("span", "countdown"), el("span", "until", "until " + abs(e.expires_at)));
  } else {
    timer.append(el("span", "countdown never", "No expiry"), el("span", "until", "until revoked"));
  }

  const calls = el("div", "calls");
  calls.append(el("span", "calls-left" + (e.calls_left === 0 ? " none" : ""),
    e.calls_left === 0 ? "Call cap reached" : `${e.calls_left} calls left`));
  if (e.warning) {
    const w = el("span", "warning", "⚠ " + e.unanswered_streak + " unanswered");
    w.title = e.warning;
    calls.append(w);
  }

  const actions = el("div", "actions");
  const call = el("button", "call", "Call");
  call.type = "button";
  call.setAttribute("aria-label", "Call " + (e.name || phone(shown)));
  call.addEventListener("click", (ev) => {
    ev.stopPropagation();
    callContact(e.contact, call);
  });
  const copy = el("button", "copy", "Copy");
  copy.type = "button";
  copy.setAttribute("aria-label", "Copy the number " + e164(shown));
  copy.addEventListener("click", (ev) => {
    ev.stopPropagation();
    copyNumber(shown);
  });
  actions.append(call, copy);

  row.append(open, perm, timer, calls, actions);
  row.addEventListener("click", (ev) => {
    if (!ev.target.closest("button")) selectContact(e.contact, true);
  });
  return row;
}

// Arrow keys move between rows; Enter (the row's button) opens the chat.
$("rows").addEventListener("keydown", (ev) => {
  const keys = ["ArrowDown", "ArrowUp", "Home", "End"];
  if (!keys.includes(ev.key)) return;
  const opens = [...$("rows").querySelectorAll(".open")];
  if (!opens.length) return;
  const row = ev.target.closest(".row");
  let i = opens.findIndex((b) => b.closest(".row") === row);
  if (ev.key === "ArrowDown") i = Math.min(opens.length - 1, i + 1);
  else if (ev.key === "ArrowUp") i = Math.max(0, i - 1);
  else if (ev.key === "Home") i = 0;
  else i = opens.length - 1;
  ev.preventDefault();
  for (const b of opens) b.tabIndex = -1;
  opens[i].tabIndex = 0;
  opens[i].focus();
});

// tick refreshes the countdowns and the counts, and drops rows whose
// permission ran out: the server's "expired" event confirms it moments later.
function tick() {
  const t = now();
  let droppedHere = false, selectedGone = false;
  for (const [ch, entries] of state.byChannel) {
    for (const e of entries.values()) {
      if (e.expires_at && Date.parse(e.expires_at) <= t) {
        entries.delete(e.contact);
        if (ch === state.channel) {
          droppedHere = true;
          selectedGone = selectedGone || e.contact === state.selected;
        }
      }
    }
  }
  let lapsed = false;
  for (const p of state.pending.values()) {
    if (Date.parse(p.lapses_at) <= t) {
      state.pending.delete(p.contact);
      lapsed = true;
    }
  }
  if (lapsed) renderPending();
  for (const cd of document.querySelectorAll(".lapses[data-at]")) cd.textContent = "lapses " + rel(cd.dataset.at);
  renderCounts();
  if (droppedHere) {
    renderRows();
    if (selectedGone) loadContact(state.selected);
    return;
  }
  for (const timer of document.querySelectorAll(".timer[data-expires]")) {
    const left = Date.parse(timer.dataset.expires) - t;
    timer.querySelector(".countdown").textContent = "in " + span(left, left < HOUR);
    const row = timer.closest(".row");
    const soon = left < DAY;
    row.classList.toggle("soon", soon);
    let tag = row.querySelector(".soon-tag");
    if (soon && !tag) {
      tag = el("span", "soon-tag", "Expires today");
      row.querySelector(".perm").append(tag);
    } else if (!soon && tag) tag.remove();
  }
  for (const cd of document.querySelectorAll("#explain [data-rel]")) cd.textContent = when(cd.dataset.rel);
}
setInterval(tick, 1000);

// ---- live updates: one stream for every channel ----

function setLive(cls, text) {
  const l = $("live");
  l.className = "live " + cls;
  l.textContent = text;
}

function closeStream() {
  if (state.es) state.es.close();
  state.es = null;
}

function openStream(after, seq) {
  const q = new URLSearchParams({ token: state.token, pending: "1" });
  if (after !== null) q.set("after", String(after));
  const es = new EventSource(`/api/events?${q}`);
  state.es = es;
  const apply = (ev) => {
    const c = JSON.parse(ev.data);
    if (!state.channels.some((x) => x.channel === c.channel)) {
      // A number heard of for the first time: learn its display number.
      state.byChannel.set(c.channel, new Map());
      state.channels.push({ channel: c.channel, display_phone_number: "" });
      api("/api/channels").then((b) => {
        for (const x of b.channels) {
          const known = state.channels.find((y) => y.channel === x.channel);
          if (known) known.display_phone_number = x.display_phone_number;
        }
        renderChannels();
      }).catch(failed);
      if (!state.channel) state.channel = c.channel;
      renderChannels();
    }
    const entries = entriesOf(c.channel);
    const here = c.channel === state.channel;
    // granted, extended, updated (only the call budget changed): the row
    // is replaced; revoked, expired: it goes.
    // A person listed under another identifier until now (Meta joined two
    // identifiers, or the person's contact changed): one row, not two.
    for (const gone of c.replaces || []) entries.delete(gone);
    if (ev.type === "granted" || ev.type === "extended" || ev.type === "updated") {
      const old = entries.get(c.contact);
      if (!c.name && old) c.name = old.name;
      entries.set(c.contact, c);
      if (here) renderRows(ev.type === "granted" ? c.contact : null);
    } else {
      entries.delete(c.contact);
      const row = here && document.querySelector(`#rows .row[data-contact="${CSS.escape(c.contact)}"]`);
      if (row) {
        row.classList.add("leaving");
        setTimeout(() => renderRows(), 350);
      } else if (here) {
        renderRows();
      }
    }
    renderCounts();
    if (here && ev.type !== "updated") scheduleReask();
    if (here && c.contact === state.selected) loadContact(c.contact);
  };
  for (const t of ["granted", "extended", "updated", "revoked", "expired"]) es.addEventListener(t, apply);
  const applyPending = (ev) => {
    const c = JSON.parse(ev.data);
    if (c.channel !== state.channel || state.listsChannel !== c.channel) return;
    for (const gone of c.replaces || []) state.pending.delete(gone);
    if (ev.type === "pending") {
      const old = state.pending.get(c.contact);
      if (!c.name && old) c.name = old.name;
      state.pending.set(c.contact, c);
    } else {
      state.pending.delete(c.contact);
    }
    renderPending();
    scheduleReask();
    if (c.contact === state.selected) loadContact(c.contact);
  };
  for (const t of ["pending", "pending_ended"]) es.addEventListener(t, applyPending);
  es.addEventListener("resync", () => {
    // The server could not replay what we missed: list again.
    closeStream();
    loadAll();
  });
  es.onopen = () => setLive("on", "live");
  es.onerror = () => {
    setLive("error", "reconnecting…");
    if (es.readyState === EventSource.CLOSED) {
      // Refused or ended for good: list again, which also tells whether
      // the token still works. Otherwise the browser retries with
      // Last-Event-ID.
      setTimeout(() => seq === state.loadSeq && loadAll(), 3000);
    }
  };
}

// ---- the Call action ----

const WHY_NOT = {
  no_permission: () => "No call permission: send a call permission request first.",
  no_phone: () => "Only a BSUID is known for this contact: there is no phone number to hand to the dialer.",
};

function whyNot(r) {
  const when_ = (t) => when(t, r.now); // relative to the decision's instant
  switch (r.reason) {
    case "call_limit":
      return r.retry_at
        ? `Call limit reached: the next call is possible ${when_(r.retry_at)}.`
        : "Call limit reached, and no call slot frees up before the permission ends.";
    case "expired":
      return "The permission just expired" + (r.ended_at ? ` ${when_(r.ended_at)}` : "") + ": send a new call permission request.";
    case "revoked":
      if (r.status === "revoked_automatic") return "Meta revoked the permission after an unanswered streak" + (r.ended_at ? ` ${when_(r.ended_at)}` : "") + ".";
      if (r.status === "revoked_profile") return "The user switched calls off from the business profile" + (r.ended_at ? ` ${when_(r.ended_at)}` : "") + ".";
      return "The user declined calls" + (r.ended_at ? ` ${when_(r.ended_at)}` : "") + ".";
  }
  return (WHY_NOT[r.reason] || (() => "Not callable: " + r.reason.replaceAll("_", " ")))();
}

// handToDialer opens the host's dialer: a softphone page in a window of its
// own, or a tel:/sip: link the system hands to its phone app.
function handToDialer(url) {
  if (/^https?:/i.test(url)) {
    window.open(url, "callready-dialer");
    return;
  }
  const a = el("a");
  a.href = url;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
}

async function callContact(contact, button) {
  const ch = state.channel;
  const entry = entriesOf(ch).get(contact);
  const who = (entry && entry.name) || phone(contact);
  if (button) button.disabled = true;
  try {
    const r = await api(`/api/channels/${encodeURIComponent(ch)}/contacts/${encodeURIComponent(contact)}/call`, "POST");
    if (r.allowed) {
      handToDialer(r.dial_url);
      notice(`Calling ${who} (${phone(contact)})` + (r.warning ? ". Careful: " + r.warning + "." : "."), r.warning ? "warn" : "ok");
    } else {
      notice(`Cannot call ${who}: ${whyNot(r)}`, "error");
    }
  } catch (e) {
    if (!failed(e)) notice("Could not check the call: " + e.message, "error");
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- contact: chat and permission ----

function setView(view) {
  $("app").dataset.view = view;
}

$("back").addEventListener("click", () => {
  const contact = state.selected;
  setView("list");
  const row = contact && document.querySelector(`#rows .row[data-contact="${CSS.escape(contact)}"] .open`);
  if (row) row.focus();
});

function selectContact(contact, fromList) {
  state.selected = contact;
  writeURL();
  for (const r of document.querySelectorAll("#rows .row")) r.classList.toggle("selected", r.dataset.contact === contact);
  if (!contact) {
    setView("list");
    $("chat-head").replaceChildren();
    $("chat").replaceChildren(el("div", "placeholder", "Select a contact to read the conversation before you call."));
    $("explain-main").replaceChildren(el("div", "placeholder", "The permission explanation appears here."));
    $("explain-tools").hidden = true;
    return;
  }
  if (contact !== $("history-list").dataset.contact) resetTools();
  setView("contact");
  if (fromList && getComputedStyle($("back")).display !== "none") $("back").focus();
  loadContact(contact);
}

async function loadContact(contact) {
  const ch = state.channel;
  const base = `/api/channels/${encodeURIComponent(ch)}/contacts/${encodeURIComponent(contact)}`;
  const q = new URLSearchParams();
  if (state.asOf) {
    q.set("at", state.asOf);
    if (state.asOfKnown) q.set("known_at", state.asOf);
  }
  const asked = q.toString();
  let x, m;
  try {
    [x, m] = await Promise.all([api(base + (asked ? "?" + asked : "")), api(base + "/messages")]);
  } catch (e) {
    if (!failed(e)) $("explain-main").replaceChildren(el("div", "placeholder", "Could not load: " + e.message));
    return;
  }
  if (state.selected !== contact || state.channel !== ch) return;
  renderChat(contact, m);
  renderExplain(x);
  if (state.historyOpen) loadHistory(contact);
}

// ---- as of: what the panel would have said at a past instant ----

function resetTools() {
  state.asOf = "";
  state.asOfKnown = false;
  $("as-of").value = "";
  $("as-of-known").checked = false;
  state.historyOpen = false;
  $("history-toggle").setAttribute("aria-expanded", "false");
  $("history-toggle").textContent = "History";
  $("history-panel").hidden = true;
  $("history-list").replaceChildren();
  $("history-list").dataset.contact = state.selected || "";
}

// localInput writes an instant as a datetime-local value in the agent's zone.
function localInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function applyAsOf() {
  const v = $("as-of").value;
  const t = v ? new Date(v) : null; // a datetime-local value is the agent's local time
  state.asOf = t && !isNaN(t) ? t.toISOString().replace(/\.\d{3}Z$/, "Z") : "";
  state.asOfKnown = $("as-of-known").checked;
  if (state.selected) loadContact(state.selected);
}
$("as-of").addEventListener("change", applyAsOf);
$("as-of-known").addEventListener("change", applyAsOf);
$("asof-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  applyAsOf();
});
$("as-of-now").addEventListener("click", () => {
  $("as-of").value = "";
  $("as-of-known").checked = false;
  applyAsOf();
});

// ---- the contact's history: every recorded event, both times ----

const ORIGINS = {
  webhook: "Meta webhook",
  host: "recorded by the CRM",
  reconcile: "Reconcile correction",
  migrated: "migrated",
};

$("history-toggle").addEventListener("click", () => {
  state.historyOpen = !state.historyOpen;
  $("history-toggle").setAttribute("aria-expanded", String(state.historyOpen));
  $("history-toggle").textContent = state.historyOpen ? "Hide history" : "History";
  $("history-panel").hidden = !state.historyOpen;
  if (state.historyOpen && state.selected) loadHistory(state.selected);
});

async function loadHistory(contact) {
  const ch = state.channel;
  const base = `/api/channels/${encodeURIComponent(ch)}/contacts/${encodeURIComponent(contact)}/history`;
  const events = [];
  let cursor = "";
  try {
    do {
      const q = new URLSearchParams({ limit: "500" });
      if (cursor) q.set("cursor", cursor);
      const page = await api(`${base}?${q}`);
      events.push(...page.events);
      cursor = page.next_cursor;
    } while (cursor && events.length < 5000);
  } catch (e) {
    if (!failed(e)) $("history-list").replaceChildren(el("li", "muted small", "Could not load the history: " + e.message));
    return;
  }
  if (state.selected !== contact || state.channel !== ch) return;
  renderHistory(contact, events);
}

function renderHistory(contact, events) {
  const list = $("history-list");
  list.dataset.contact = contact;
  list.replaceChildren();
  if (!events.length) list.append(el("li", "muted small", "Nothing recorded for this contact yet."));
  for (const ev of events) {
    const li = el("li", "hist-ev " + ev.type);
    li.dataset.type = ev.type;
    let what = ev.what;
    if (ev.source) what += " · " + (SOURCES[ev.source] || ev.source);
    if (ev.reason) what += " · " + ev.reason.replaceAll("_", " ");
    if (ev.type === "inbound_call" || ev.type === "business_call") what += ev.connected ? " · answered" : " · not answered";
    const head = el("div", "hist-what", what);
    head.append(el("span", "hist-origin " + ev.origin, ORIGINS[ev.origin] || ev.origin));
    const times = el("div", "hist-times");
    times.append(el("div", null, "Happened " + abs(ev.at) + (ev.expires_at ? ", until " + abs(ev.expires_at) : "")));
    const recorded = el("div", null, "Recorded " + abs(ev.recorded_at));
    const late = Date.parse(ev.recorded_at) - Date.parse(ev.at);
    if (late >= MIN) recorded.append(" ", el("span", "hist-late", `(${span(late)} later)`));
    times.append(recorded);
    li.append(head, times);
    if (ev.event_id) li.append(el("div", "hist-id", ev.event_id));
    list.append(li);
  }
}

// ---- export: a CSV of what the tab shows ----

async function exportTab(button) {
  const ch = state.channel;
  if (!ch) return;
  const f = state.filters;
  const q = new URLSearchParams({ format: "csv", order: f.sort || "expiring" });
  if (f.within) q.set("expiring_within", f.within);
  if (f.source) q.set("source", f.source);
  if (f.calls) q.set("calls", f.calls);
  if (f.confirmed) q.set("confirmed", f.confirmed);
  if (f.q.trim()) q.set("q", f.q.trim());
  button.disabled = true;
  try {
    const res = await fetch(`/api/channels/${encodeURIComponent(ch)}/callable?${q}`, { headers: { Authorization: "Bearer " + state.token } });
    if (res.status === 401) throw new AuthError("wrong token");
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error(body.error || res.statusText);
    }
    const m = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
    const name = m ? m[1] : `callable-${ch}.csv`;
    const url = URL.createObjectURL(await res.blob());
    const a = el("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    notice(`Downloaded ${name}`, "ok");
  } catch (e) {
    if (!failed(e)) notice("Export failed: " + e.message, "error");
  } finally {
    button.disabled = false;
  }
}
$("export").addEventListener("click", () => exportTab($("export")));

function renderChat(contact, m) {
  const head = $("chat-head");
  head.replaceChildren(el("div", "chat-name", m.name || phone(contact)), el("div", "chat-num", phone(contact)));
  const box = $("chat");
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren();
  if (!m.messages.length) box.append(el("div", "placeholder", "No messages stored for this contact yet."));
  let day = "";
  for (const msg of m.messages) {
    const d = dayFmt.format(new Date(msg.at));
    if (d !== day) {
      box.append(el("div", "day", d));
      day = d;
    }
    const kind = msg.direction === "event" || msg.type === "call" ? "event" : msg.direction;
    const b = el("div", "msg " + kind);
    b.dataset.id = msg.id;
    const time = el("time", "time", clockFmt.format(new Date(msg.at)));
    time.dateTime = msg.at;
    time.title = abs(msg.at);
    b.append(el("div", "text", readable(msg.body, true)), time);
    box.append(b);
  }
  if (stick || box.dataset.contact !== contact) box.scrollTop = box.scrollHeight;
  box.dataset.contact = contact;
}

const STATUS = {
  temporary: ["Callable", "ok", "✓"],
  permanent: ["Callable", "ok", "✓"],
  never_granted: ["Not callable", "no", "✕"],
  expired: ["Expired", "no", "✕"],
  rejected: ["Declined", "no", "✕"],
  revoked_profile: ["Switched off", "no", "✕"],
  revoked_automatic: ["Revoked by Meta", "no", "✕"],
};

function fact(dl, label, value, cls) {
  dl.append(el("dt", null, label));
  const dd = el("dd", cls || null);
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  dl.append(dd);
  return dd;
}

function timeFact(dl, label, t) {
  const s = el("span", null, when(t));
  s.dataset.rel = t;
  return fact(dl, label, s);
}

function renderExplain(x) {
  const box = $("explain-main");
  $("explain-tools").hidden = false;
  const banner = $("asof-banner");
  banner.hidden = !state.asOf;
  if (state.asOf) {
    banner.textContent = `What this panel said at ${abs(x.at)}` +
      (x.known_at ? `, counting only what was recorded by ${abs(x.known_at)}.` : `, by everything recorded since.`);
    if ($("as-of").value === "") $("as-of").value = localInput(x.at);
  }
  const [label, cls, icon] = STATUS[x.status] || [x.status, "no", "✕"];
  const card = el("div", "card");
  const status = el("div", "status " + cls);
  status.append(el("span", "icon", icon), document.createTextNode(" "), el("span", "label", label));
  card.append(status, el("p", "reason", readable(x.reason)));

  const num = el("div", "contact-num");
  num.append(el("span", "num-text", phone(x.contact)));
  const copy = el("button", "copy", "Copy");
  copy.type = "button";
  copy.setAttribute("aria-label", "Copy the number " + e164(x.contact));
  copy.addEventListener("click", () => copyNumber(x.contact));
  num.append(copy);
  card.append(num);

  const dl = el("dl", "facts");
  if (x.callable) {
    fact(dl, "Kind", x.kind === "permanent" ? "Permanent" : "Temporary");
    fact(dl, "Source", SOURCES[x.source] || x.source);
    timeFact(dl, "Granted", x.granted_at);
    if (x.expires_at) timeFact(dl, "Expires", x.expires_at);
  }
  fact(dl, state.asOf ? "Could call" : "Call now", x.can_call ? "Yes" : "No (" + x.call_reason.replaceAll("_", " ") + ")", x.can_call ? "yes" : "no");
  if (x.callable) fact(dl, "Calls left", `${x.calls_left} in 24 h`);
  if (x.calls_free_at) timeFact(dl, "Next call slot", x.calls_free_at);
  fact(dl, "Request", x.can_request ? `Can send (${x.requests_left} left)` :
    "Not now (" + x.request_reason.replaceAll("_", " ") + ")", x.can_request ? "yes" : "no");
  if (x.next_request_at) timeFact(dl, "Next request", x.next_request_at);
  card.append(dl);
  if (x.warning) card.append(el("div", "warn-box", "⚠ " + x.warning));

  if (x.pending) {
    const p = el("span", null, `sent ${when(x.pending.sent_at)}, lapses ${when(x.pending.lapses_at)}`);
    fact(dl, "Pending request", p);
  }
  if (!state.asOf) {
    const call = el("button", "call primary big-call", "Call " + (x.name || phone(x.contact)));
    call.type = "button";
    call.id = "call-contact";
    call.addEventListener("click", () => callContact(x.contact, call));
    card.append(call);
    card.append(...requestControls(x));
  }

  const hist = el("div", "history");
  hist.append(el("h3", null, "Evidence"));
  if (!x.history.length) hist.append(el("div", "muted small", "No grant or revocation recorded."));
  for (const h of x.history) {
    const li = el("div", "ev");
    let what = h.what;
    if (h.source) what += " · " + (SOURCES[h.source] || h.source);
    if (h.reason) what += " · " + h.reason;
    li.append(el("div", "ev-what", what), el("div", "ev-at", abs(h.at) + (h.expires_at ? " → " + abs(h.expires_at) : "")));
    if (h.event_id) li.title = h.event_id;
    hist.append(li);
  }
  box.replaceChildren(el("h2", "explain-title", "Call permission"), card, hist);
}

// The chat gets new lines without a permission change: poll the open one.
setInterval(() => {
  if (state.selected && !$("app").hidden) loadContact(state.selected);
}, 10000);

// ---- the request lifecycle: Request permission, Pending, Re-ask ----

const TABS = ["accepted", "pending", "reask"];
const LAPSED = {
  expired: "Expired",
  rejected: "Declined",
  revoked_profile: "Switched off",
  revoked_automatic: "Revoked by Meta",
  revoked_reconciled: "Revoked (Meta's answer)",
};
const REQUEST_WHY = {
  request_limit_24h: "Meta allows one request per 24 h",
  request_limit_7d: "Meta allows two requests per 7 days",
  permanent_granted: "a permanent permission is held",
};

function renderTabs() {
  for (const b of document.querySelectorAll("#tabs .tab")) {
    const on = b.dataset.tab === state.tab;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
  }
  for (const t of TABS) $("panel-" + t).hidden = t !== state.tab;
  $("tab-pending-count").textContent = state.pending.size ? String(state.pending.size) : "";
  $("tab-reask-count").textContent = state.reask.length ? String(state.reask.length) : "";
}

function selectTab(tab) {
  state.tab = tab;
  writeURL();
  renderTabs();
  if (tab !== "accepted") loadLists();
}

for (const b of document.querySelectorAll("#tabs .tab")) b.addEventListener("click", () => selectTab(b.dataset.tab));
$("tabs").addEventListener("keydown", (ev) => {
  if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
  const i = TABS.indexOf(state.tab) + (ev.key === "ArrowRight" ? 1 : TABS.length - 1);
  selectTab(TABS[i % TABS.length]);
  $("tab-" + state.tab).focus();
  ev.preventDefault();
});

// loadLists reads the channel's Pending and Re-ask lists; the stream's
// pending events keep Pending live, and any change reloads Re-ask.
let listsSeq = 0;
async function loadLists() {
  const ch = state.channel;
  if (!ch) return;
  const seq = ++listsSeq;
  const base = `/api/channels/${encodeURIComponent(ch)}`;
  try {
    const pending = new Map();
    let cursor = "";
    do {
      const q = new URLSearchParams({ limit: "1000" });
      if (cursor) q.set("cursor", cursor);
      const page = await api(`${base}/pending?${q}`);
      for (const p of page.pending) pending.set(p.contact, p);
      cursor = page.next_cursor;
    } while (cursor);
    const reask = [];
    cursor = "";
    do {
      const q = new URLSearchParams({ limit: "1000" });
      if (cursor) q.set("cursor", cursor);
      const page = await api(`${base}/reask?${q}`);
      reask.push(...page.contacts);
      cursor = page.next_cursor;
    } while (cursor && reask.length < 5000);
    if (seq !== listsSeq || ch !== state.channel) return;
    state.pending = pending;
    state.reask = reask;
    state.listsChannel = ch;
  } catch (e) {
    failed(e);
    return;
  }
  renderPending();
  renderReask();
}

let reaskTimer = null;
function scheduleReask() {
  clearTimeout(reaskTimer);
  reaskTimer = setTimeout(loadLists, 250);
}

function whoCell(e, selectable) {
  const open = el("button", "open");
  open.type = "button";
  const who = el("span", "who");
  const shown = e.wa_id || e.contact;
  who.append(el("span", "name", e.name || phone(shown)), el("span", "num", e.name ? phone(shown) : "no profile name"));
  open.append(who);
  if (selectable) open.addEventListener("click", () => selectContact(e.contact, true));
  return open;
}

function renderPending() {
  const rows = $("pending-rows");
  const list = [...state.pending.values()].sort((a, b) => Date.parse(a.lapses_at) - Date.parse(b.lapses_at) || (a.contact < b.contact ? -1 : 1));
  rows.replaceChildren(...list.map((p) => {
    const row = el("li", "row pending");
    row.dataset.contact = p.contact;
    const perm = el("div", "perm");
    perm.append(el("span", "sent-tag", "Request sent"), el("span", "source", "sent " + abs(p.sent_at)));
    const timer = el("div", "timer");
    const lapses = el("span", "countdown lapses", "lapses " + rel(p.lapses_at));
    lapses.dataset.at = p.lapses_at;
    timer.append(lapses, el("span", "until", "unless the user answers by " + abs(p.lapses_at)));
    row.append(whoCell(p, true), perm, timer, el("div", "calls"), el("div", "actions"));
    return row;
  }));
  $("pending-count").textContent = String(list.length);
  $("pending-empty").hidden = list.length > 0;
  renderTabs();
}

function renderReask() {
  const rows = $("reask-rows");
  rows.replaceChildren(...state.reask.map((e) => {
    const row = el("li", "row reask");
    row.dataset.contact = e.contact;
    const perm = el("div", "perm");
    perm.append(el("span", "lapse " + e.status, LAPSED[e.status] || e.status), el("span", "source", rel(e.lapsed_at)));
    const timer = el("div", "timer");
    timer.append(el("span", "countdown", e.can_request ? "Can ask now" : "Can ask " + rel(e.allowed_at)),
      el("span", "until", e.can_request ? "within Meta's limits" : (REQUEST_WHY[e.request_reason] || e.request_reason.replaceAll("_", " "))));
    const actions = el("div", "actions");
    const b = el("button", "request", "Request permission");
    b.type = "button";
    b.setAttribute("aria-label", "Request permission from " + (e.name || phone(e.wa_id || e.contact)));
    if (!e.can_request) {
      b.disabled = true;
      b.title = "Not now: " + (REQUEST_WHY[e.request_reason] || e.request_reason) + (e.allowed_at ? ", possible " + when(e.allowed_at) : "");
    }
    b.addEventListener("click", (ev) => {
      ev.stopPropagation();
      requestPermission(e.contact, e.name, b);
    });
    actions.append(b);
    row.append(whoCell(e, true), perm, timer, el("div", "calls"), actions);
    return row;
  }));
  $("reask-count").textContent = String(state.reask.length);
  $("reask-empty").hidden = state.reask.length > 0;
  $("reask-all").disabled = !state.reask.some((e) => e.can_request);
  renderTabs();
}

// requestControls is the contact panel's Request permission button,
// disabled with the reason when a request cannot go now.
function requestControls(x) {
  const b = el("button", "request big-request", "Request permission");
  b.type = "button";
  b.id = "request-permission";
  let why = "";
  if (x.callable && x.kind === "permanent") why = "A permanent permission is held: no request needed.";
  else if (x.pending) why = "A request is pending: the user has not answered yet.";
  else if (!x.can_request) why = "Not now: " + (REQUEST_WHY[x.request_reason] || x.request_reason.replaceAll("_", " ")) +
    (x.next_request_at ? `; possible ${when(x.next_request_at)}.` : ".");
  else if (!x.request_via) why = "Cannot send: " + (x.request_blocked || "not configured") + ".";
  const out = [b];
  if (why) {
    b.disabled = true;
    b.setAttribute("aria-describedby", "request-why");
    const p = el("p", "request-why", why);
    p.id = "request-why";
    out.push(p);
  } else {
    b.title = x.request_via === "message" ? "A free-form request: the user wrote within 24 h" : "The approved template: outside the 24 h window";
  }
  b.addEventListener("click", () => requestPermission(x.contact, x.name, b));
  return out;
}

async function requestPermission(contact, name, button) {
  const ch = state.channel;
  const who = name || phone(contact);
  if (button) button.disabled = true;
  try {
    const r = await api(`/api/channels/${encodeURIComponent(ch)}/contacts/${encodeURIComponent(contact)}/request`, "POST");
    notice(`Request sent to ${who} (${r.via === "message" ? "message" : "template"}); it lapses ${when(r.lapses_at)} without an answer.`, "ok");
  } catch (e) {
    if (!failed(e)) notice(`Request not sent to ${who}: ${e.message}`, "error");
    if (button) button.disabled = false;
  }
}

$("reask-all").addEventListener("click", async () => {
  const ch = state.channel;
  const b = $("reask-all");
  b.disabled = true;
  try {
    const r = await api(`/api/channels/${encodeURIComponent(ch)}/reask`, "POST");
    const why = r.results.filter((x) => !x.sent).map((x) => `${x.name || phone(x.contact)}: ${x.error}`);
    notice(`Re-ask: ${r.sent} request${r.sent === 1 ? "" : "s"} sent` + (why.length ? `; not sent: ${why.join("; ")}` : "."), why.length ? "warn" : "ok");
  } catch (e) {
    if (!failed(e)) notice("Re-ask failed: " + e.message, "error");
  } finally {
    loadLists();
  }
});

// ---- boot ----

if (state.token) start();
else showLogin("");
