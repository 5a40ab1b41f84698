// qmon wallboard: renders /api/v1/wallboard snapshots pushed as server-sent events. No framework, no CDN.
// Names (queues, agents, pause reasons) come from the PBX: they are only ever set as text, never as HTML.
"use strict";

const STATE_TEXT = { available: "available", in_call: "on call", ringing: "ringing", paused: "paused",
                     unavailable: "unavailable" };
let lastAt = 0;
let refreshS = 2;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function duration(s) {
  if (s === null || s === undefined) return "—";
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(sec).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function pct(x) { return x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`; }

function tile(field, label, value, text, sub, cls) {
  return el("div", { class: "tile " + (cls || ""), "data-field": field, "data-value": JSON.stringify(value) },
            el("div", { class: "label" }, label), el("div", { class: "value" }, text),
            el("div", { class: "sub" }, sub || "\u00a0"));
}

function queueCard(q, showOwed) {
  const t = q.today, a = q.agents;
  const tiles = [
    tile("waiting_calls", "Waiting", q.waiting_calls, String(q.waiting_calls), "", "live" +
         (q.waiting_calls > 0 && a.available === 0 ? " alert" : "")),
    tile("longest_wait_s", "Longest", q.longest_wait_s, duration(q.longest_wait_s), "", "live"),
    tile("available", "Available", a.available, String(a.available), `${a.ringing} ringing`, "live"),
    tile("in_call", "On call", a.in_call, String(a.in_call), `${a.unavailable} logged off`, "live"),
    tile("paused", "Paused", a.paused, String(a.paused), "", "live"),
    tile("service_level", "SL today", t.service_level, pct(t.service_level),
         `target ${pct(t.sl_target)}`, "rag-" + t.sl_rag),
    tile("abandon_rate", "Abandoned today", t.abandon_rate, pct(t.abandon_rate), `${t.abandoned} of ${t.offered}`,
         "rag-" + t.abandon_rag),
    tile("csat_mean", "CSAT today", t.csat_mean, t.csat_mean === null ? "—" : t.csat_mean.toFixed(1),
         `${t.csat_responses} answer${t.csat_responses === 1 ? "" : "s"} (1-5)`),
  ];
  if (showOwed && q.callbacks_owed !== null) {
    tiles.push(tile("callbacks_owed", "Callbacks owed", q.callbacks_owed, String(q.callbacks_owed), ""));
  }
  const paused = el("ul");
  for (const p of q.paused) {
    paused.append(el("li", { "data-agent": p.agent },
                     `${p.agent} — ${p.paused_reason || "no reason"} — ${duration(p.for_s)}`));
  }
  return el("article", { class: "queue" + (q.live ? "" : " stale"), "data-pbx": q.pbx, "data-queue": q.queue },
            el("h2", {}, q.queue, el("span", { class: "pbx" }, q.pbx)),
            el("div", { class: "sl-def", "data-field": "sl_definition", "data-value": JSON.stringify(t.sl_definition) },
               `SL = ${t.sl_name}`),
            el("div", { class: tiles.length > 8 ? "tiles nine" : "tiles" }, ...tiles),
            el("div", { class: "paused live" }, paused));
}

function agentRow(r, stale) {
  return el("tr", { "data-agent": r.agent, "data-queue": r.queue, "data-pbx": r.pbx, class: stale ? "stale" : null },
            el("td", {}, r.agent), el("td", {}, r.queue),
            el("td", { class: "state-" + r.state, "data-field": "state" },
               STATE_TEXT[r.state] + (r.paused_reason ? ` (${r.paused_reason})` : "")),
            el("td", { "data-field": "for_s" }, duration(r.for_s)),
            el("td", { "data-field": "answered_today" }, String(r.answered_today)));
}

function banner(text, stale) {
  const b = document.getElementById("banner");
  b.hidden = !text;
  b.textContent = text || "";
  b.className = "banner" + (stale ? " stale" : "");
}

function render(snap) {
  lastAt = Date.now();
  refreshS = snap.refresh_s || refreshS;
  document.body.dataset.generatedAt = String(snap.generated_at);
  document.body.dataset.amiUp = String(snap.ami_up);
  // The day is the PBX's (today's numbers count on it); the time is this screen's, when the numbers arrived.
  document.getElementById("clock").textContent = `${snap.day} · ${new Date().toLocaleTimeString()}`;
  const down = snap.ami.filter((a) => !a.up);
  banner(down.map((a) => `AMI ${a.pbx} DOWN: ${a.reason} — live numbers are stale` +
                         (a.last_event_age_s === null ? "" : ` (last event ${duration(a.last_event_age_s)} ago)`))
             .join(" · "), false);
  document.getElementById("queues").replaceChildren(
    ...snap.queues.map((q) => queueCard(q, snap.callbacks_owed_shown)));
  const downPbx = new Set(down.map((a) => a.pbx));
  document.querySelector("#agents tbody").replaceChildren(
    ...snap.agents.map((r) => agentRow(r, downPbx.has(r.pbx))));
}

function start() {
  const source = new EventSource("/api/v1/wallboard/events");
  source.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) setTimeout(start, 5000);
  });
  // A silent connection (qmon stopped, network gone) shows plainly instead of freezing numbers.
  setInterval(() => {
    if (lastAt && Date.now() - lastAt > Math.max(3 * refreshS, 6) * 1000) {
      document.body.dataset.stale = "true";
      banner(`qmon unreachable — numbers as of ${new Date(lastAt).toLocaleTimeString()}`, true);
    } else {
      delete document.body.dataset.stale;
    }
  }, 1000);
}

document.addEventListener("DOMContentLoaded", start);
