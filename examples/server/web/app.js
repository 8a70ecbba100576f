// callready inbox: lists the contacts callable on a channel, keeps the list
// live with Server-Sent Events, and shows a contact's chat and permission.
// Plain JS, no build step.
"use strict";

const TOKEN_KEY = "callready.token";
const DAY = 24 * 3600 * 1000;
const SOURCES = {
  request: "Accepted request",
  callback: "Call-back",
  inbound_call: "Called in",
  profile: "Profile opt-in",
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  channels: [],
  channel: null,
  entries: new Map(), // contact → entry
  offset: 0, // server clock minus browser clock, ms
  es: null,
  selected: null,
  loadSeq: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

class AuthError extends Error {}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (res.status === 401) throw new AuthError("wrong token");
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function now() {
  return Date.now() + state.offset;
}

function phone(contact) {
  return /^\d+$/.test(contact) ? "+" + contact : contact;
}

function countdown(ms) {
  if (ms <= 0) return "expired";
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  return `${m}m ${String(sec).padStart(2, "0")}s`;
}

function fmtTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
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

async function start() {
  $("login").hidden = true;
  $("app").hidden = false;
  await loadChannels();
  if (!state.channel && state.channels.length) selectChannel(state.channels[0].channel);
}

// ---- channels ----

async function loadChannels() {
  try {
    const body = await api("/api/channels");
    state.channels = body.channels;
  } catch (e) {
    failed(e);
    return;
  }
  renderChannels();
  if (!state.channel && state.channels.length) selectChannel(state.channels[0].channel);
}

function renderChannels() {
  const ul = $("channels");
  ul.replaceChildren();
  $("no-channels").hidden = state.channels.length > 0;
  for (const c of state.channels) {
    const li = el("li", "channel" + (c.channel === state.channel ? " active" : ""));
    li.dataset.channel = c.channel;
    const name = el("div", "channel-name", c.display_phone_number ? "+" + c.display_phone_number : c.channel);
    const id = el("div", "channel-id", "ID " + c.channel);
    const count = c.channel === state.channel ? state.entries.size : c.callable;
    const badge = el("span", "badge", String(count));
    badge.title = "callable now";
    li.append(badge, name, id);
    if (c.expiring_24h > 0) li.append(el("div", "channel-soon", `${c.expiring_24h} expiring within 24 h`));
    li.addEventListener("click", () => selectChannel(c.channel));
    ul.append(li);
  }
  const cur = state.channels.find((c) => c.channel === state.channel);
  $("channel-title").textContent = cur ? (cur.display_phone_number ? "+" + cur.display_phone_number : cur.channel) : "";
}

// ---- the callable list ----

async function selectChannel(channel) {
  const seq = ++state.loadSeq;
  closeStream();
  if (state.channel !== channel) selectContact(null);
  state.channel = channel;
  renderChannels();
  const entries = new Map();
  let revision = null, cursor = "";
  try {
    do {
      const q = new URLSearchParams({ limit: "500", order: "expiring" });
      if (cursor) q.set("cursor", cursor);
      const page = await api(`/api/channels/${encodeURIComponent(channel)}/callable?${q}`);
      if (seq !== state.loadSeq) return; // another channel was chosen meanwhile
      if (revision === null) {
        // Subscribing after the first page's revision replays whatever
        // changed while later pages loaded: applying it twice is harmless.
        revision = page.revision;
        state.offset = Date.parse(page.now) - Date.now();
      }
      for (const c of page.contacts) entries.set(c.contact, c);
      cursor = page.next_cursor;
    } while (cursor);
  } catch (e) {
    if (!failed(e)) setLive("error", "list failed, retrying…");
    if (seq === state.loadSeq) setTimeout(() => seq === state.loadSeq && selectChannel(channel), 3000);
    return;
  }
  state.entries = entries;
  renderRows();
  openStream(channel, revision, seq);
}

function sortedEntries() {
  return [...state.entries.values()].sort((a, b) => {
    if (a.expires_at && b.expires_at) return Date.parse(a.expires_at) - Date.parse(b.expires_at);
    if (a.expires_at) return -1;
    if (b.expires_at) return 1;
    return Date.parse(b.granted_at) - Date.parse(a.granted_at);
  });
}

function renderRows(flash) {
  const rows = $("rows");
  const existing = new Map([...rows.children].map((r) => [r.dataset.contact, r]));
  const list = sortedEntries();
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
  $("count").textContent = String(list.length);
  $("empty").hidden = list.length > 0;
  const ch = state.channels.find((c) => c.channel === state.channel);
  if (ch) {
    ch.callable = list.length;
    const badge = document.querySelector(`.channel.active .badge`);
    if (badge) badge.textContent = String(list.length);
  }
  tick();
}

function buildRow(e) {
  const row = el("div", "row");
  row.dataset.contact = e.contact;
  row.tabIndex = 0;
  if (e.contact === state.selected) row.classList.add("selected");

  const who = el("div", "who");
  who.append(el("div", "name", e.name || phone(e.contact)), el("div", "num", e.name ? phone(e.contact) : "no profile name"));

  const perm = el("div", "perm");
  perm.append(el("span", "kind " + e.kind, e.kind === "permanent" ? "Permanent" : "Temporary"),
    el("span", "source", SOURCES[e.source] || e.source));

  const timer = el("div", "timer");
  if (e.expires_at) {
    timer.dataset.expires = e.expires_at;
    timer.append(el("span", "countdown"), el("span", "until", "until " + fmtTime(e.expires_at)));
  } else {
    timer.append(el("span", "countdown never", "No expiry"), el("span", "until", "until revoked"));
  }

  const calls = el("div", "calls");
  calls.append(el("span", "calls-left" + (e.calls_left === 0 ? " none" : ""),
    e.calls_left === 0 ? "call cap reached" : `${e.calls_left} calls left`));
  if (e.warning) {
    const w = el("span", "warning", "⚠ " + e.unanswered_streak + " unanswered");
    w.title = e.warning;
    calls.append(w);
  }
  row.append(who, perm, timer, calls);
  row.addEventListener("click", () => selectContact(e.contact));
  row.addEventListener("keydown", (ev) => ev.key === "Enter" && selectContact(e.contact));
  return row;
}

// tick refreshes the countdowns and drops rows whose permission ran out:
// the server's "expired" event confirms it moments later.
function tick() {
  const t = now();
  let dropped = false;
  for (const e of state.entries.values()) {
    if (e.expires_at && Date.parse(e.expires_at) <= t) {
      state.entries.delete(e.contact);
      dropped = true;
    }
  }
  if (dropped) {
    renderRows();
    if (state.selected) loadContact(state.selected);
    return;
  }
  for (const timer of document.querySelectorAll(".timer[data-expires]")) {
    const left = Date.parse(timer.dataset.expires) - t;
    timer.querySelector(".countdown").textContent = countdown(left);
    timer.parentElement.classList.toggle("soon", left < DAY);
  }
  const cd = document.querySelector("#explain .countdown[data-expires]");
  if (cd) cd.textContent = countdown(Date.parse(cd.dataset.expires) - t);
}
setInterval(tick, 1000);

// ---- live updates ----

function setLive(cls, text) {
  const l = $("live");
  l.className = "live " + cls;
  l.textContent = text;
}

function closeStream() {
  if (state.es) state.es.close();
  state.es = null;
}

function openStream(channel, after, seq) {
  const q = new URLSearchParams({ after: String(after), token: state.token });
  const es = new EventSource(`/api/channels/${encodeURIComponent(channel)}/events?${q}`);
  state.es = es;
  const apply = (ev) => {
    const c = JSON.parse(ev.data);
    if (c.channel !== state.channel) return;
    if (ev.type === "granted" || ev.type === "extended") {
      const old = state.entries.get(c.contact);
      if (!c.name && old) c.name = old.name;
      state.entries.set(c.contact, c);
      renderRows(c.contact);
    } else {
      const row = document.querySelector(`.row[data-contact="${CSS.escape(c.contact)}"]`);
      state.entries.delete(c.contact);
      if (row) {
        row.classList.add("leaving");
        setTimeout(() => renderRows(), 350);
      } else {
        renderRows();
      }
    }
    if (c.contact === state.selected) loadContact(c.contact);
  };
  for (const t of ["granted", "extended", "revoked", "expired"]) es.addEventListener(t, apply);
  es.addEventListener("resync", () => {
    // The server could not replay what we missed: list again.
    closeStream();
    selectChannel(channel);
  });
  es.onopen = () => setLive("on", "live");
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (token, unknown channel) or ended for good: re-list, which
      // also tells whether the token still works.
      setLive("error", "reconnecting…");
      setTimeout(() => seq === state.loadSeq && selectChannel(channel), 3000);
    } else {
      setLive("error", "reconnecting…"); // the browser retries with Last-Event-ID
    }
  };
}

// Other channels' counts change too: refresh them now and then.
setInterval(() => {
  if (state.token && !$("app").hidden) loadChannels();
}, 30000);

// ---- contact: chat and permission ----

function selectContact(contact) {
  state.selected = contact;
  for (const r of document.querySelectorAll(".row")) r.classList.toggle("selected", r.dataset.contact === contact);
  if (!contact) {
    $("chat-head").replaceChildren();
    $("chat").replaceChildren(el("div", "placeholder", "Select a contact to read the conversation before you call."));
    $("explain").replaceChildren(el("div", "placeholder", "The permission explanation appears here."));
    return;
  }
  loadContact(contact);
}

async function loadContact(contact) {
  const ch = state.channel;
  const base = `/api/channels/${encodeURIComponent(ch)}/contacts/${encodeURIComponent(contact)}`;
  let x, m;
  try {
    [x, m] = await Promise.all([api(base), api(base + "/messages")]);
  } catch (e) {
    if (!failed(e)) $("explain").replaceChildren(el("div", "placeholder", "Could not load: " + e.message));
    return;
  }
  if (state.selected !== contact || state.channel !== ch) return;
  renderChat(contact, m);
  renderExplain(x);
}

function renderChat(contact, m) {
  const head = $("chat-head");
  head.replaceChildren(el("div", "chat-name", m.name || phone(contact)), el("div", "chat-num", phone(contact)));
  const box = $("chat");
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren();
  if (!m.messages.length) box.append(el("div", "placeholder", "No messages stored for this contact yet."));
  let day = "";
  for (const msg of m.messages) {
    const d = new Date(msg.at).toLocaleDateString(undefined, { weekday: "short", month: "short", day: "numeric" });
    if (d !== day) {
      box.append(el("div", "day", d));
      day = d;
    }
    const kind = msg.direction === "event" || msg.type === "call" ? "event" : msg.direction;
    const b = el("div", "msg " + kind);
    b.dataset.id = msg.id;
    b.append(el("div", "text", msg.body), el("div", "time",
      new Date(msg.at).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })));
    box.append(b);
  }
  if (stick || box.dataset.contact !== contact) box.scrollTop = box.scrollHeight;
  box.dataset.contact = contact;
}

const STATUS = {
  temporary: ["Callable", "ok"],
  permanent: ["Callable", "ok"],
  never_granted: ["Not callable", "no"],
  expired: ["Expired", "no"],
  rejected: ["Declined", "no"],
  revoked_profile: ["Switched off", "no"],
  revoked_automatic: ["Revoked by Meta", "no"],
};

function fact(dl, label, value, cls) {
  dl.append(el("dt", null, label));
  const dd = el("dd", cls || null);
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  dl.append(dd);
  return dd;
}

function renderExplain(x) {
  const box = $("explain");
  const [label, cls] = STATUS[x.status] || [x.status, "no"];
  const card = el("div", "card");
  card.append(el("div", "status " + cls, label), el("p", "reason", x.reason));
  const dl = el("dl", "facts");
  if (x.callable) {
    fact(dl, "Kind", x.kind === "permanent" ? "Permanent" : "Temporary");
    fact(dl, "Source", SOURCES[x.source] || x.source);
    fact(dl, "Granted", fmtTime(x.granted_at));
    if (x.expires_at) {
      const cd = el("span", "countdown");
      cd.dataset.expires = x.expires_at;
      fact(dl, "Expires in", cd);
    }
  }
  fact(dl, "Call now", x.can_call ? "Yes" : "No (" + x.call_reason.replaceAll("_", " ") + ")", x.can_call ? "yes" : "no");
  if (x.callable) fact(dl, "Calls left", `${x.calls_left} in 24 h`);
  fact(dl, "Request", x.can_request ? `Can send (${x.requests_left} left)` :
    "Not now (" + x.request_reason.replaceAll("_", " ") + ")" + (x.next_request_at ? ", from " + fmtTime(x.next_request_at) : ""),
    x.can_request ? "yes" : "no");
  card.append(dl);
  if (x.warning) card.append(el("div", "warn-box", "⚠ " + x.warning));

  const hist = el("div", "history");
  hist.append(el("h4", null, "Evidence"));
  if (!x.history.length) hist.append(el("div", "muted small", "No grant or revocation recorded."));
  for (const h of x.history) {
    const li = el("div", "ev");
    let what = h.what;
    if (h.source) what += " · " + (SOURCES[h.source] || h.source);
    if (h.reason) what += " · " + h.reason;
    li.append(el("div", "ev-what", what), el("div", "ev-at", fmtTime(h.at) + (h.expires_at ? " → " + fmtTime(h.expires_at) : "")));
    if (h.event_id) li.title = h.event_id;
    hist.append(li);
  }
  box.replaceChildren(el("h3", "explain-title", "Call permission"), card, hist);
  tick();
}

// The chat gets new lines without a permission change: poll the open one.
setInterval(() => {
  if (state.selected && !$("app").hidden) loadContact(state.selected);
}, 10000);

// ---- boot ----

if (state.token) start();
else showLogin("");
