// The OMS console: one server-sent event stream (a snapshot, then coalesced updates),
// rendered at most once per animation frame. Text goes in with textContent only.
"use strict";

const S = { me: null, orders: new Map(), alerts: [], positions: [], pnl: {}, limits: [], controls: {}, sessions: {},
            venuesDown: [], samples: [], sectors: {}, open: new Set() };
const $ = (id) => document.getElementById(id);
const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#f0a500", "#6a1b9a", "#00838f", "#5d4037"];
const WORKING = new Set(["PENDING_NEW", "NEW", "PARTIALLY_FILLED", "PENDING_CANCEL", "PENDING_REPLACE"]);
let dirty = false, source = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}
const td = (v, num) => el("td", num ? { class: "num" } : {}, v);

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (S.me && S.me.csrf) headers["X-OMS-CSRF"] = S.me.csrf;
  const r = await fetch(path, { method, headers, credentials: "same-origin",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  return [r.status, await r.json()];
}

async function start() {
  const [status, me] = await api("GET", "/v1/session");
  if (status !== 200) { $("signin").hidden = false; $("main").hidden = true; $("who").textContent = ""; return; }
  S.me = me;
  $("who").textContent = `${me.user} (${me.role})`;
  $("signin").hidden = true;
  $("signout").hidden = me.open;
  $("main").hidden = false;
  $("kill-panel").classList.toggle("readonly", me.role !== "risk");
  connect();
  loadReports();
}

function connect() {
  if (source) source.close();
  source = new EventSource("/v1/console/stream");
  source.addEventListener("snapshot", (m) => {
    const s = JSON.parse(m.data);
    S.orders.clear();
    s.orders.forEach((o) => S.orders.set(o.order_id, o));
    S.alerts = s.alerts.slice().reverse();
    S.samples = s.samples;
    S.sectors = s.sectors;
    take(s);
    $("feed").textContent = "live"; $("feed").className = "badge up";
  });
  source.addEventListener("update", (m) => {
    const u = JSON.parse(m.data);
    u.orders.forEach((o) => S.orders.set(o.order_id, o));
    for (const a of u.alerts) S.alerts.unshift(a);
    S.alerts.length = Math.min(S.alerts.length, 200);
    if (u.sample) { S.samples.push(u.sample); if (S.samples.length > 2040) S.samples.shift(); }
    take(u);
  });
  source.onerror = () => { $("feed").textContent = "reconnecting"; $("feed").className = "badge down"; };
}

function take(u) {
  if (u.positions) S.positions = u.positions;
  if (u.limits) S.limits = u.limits;
  if (u.controls) S.controls = u.controls;
  if (u.sessions) S.sessions = u.sessions;
  if (u.venues_down) S.venuesDown = u.venues_down;
  if (u.pnl) S.pnl = u.pnl;
  else if (u.sample) S.pnl = u.sample.pnl;
  if (!dirty) { dirty = true; requestAnimationFrame(render); }
}

// ------------------------------------------------------------------ views
function render() {
  dirty = false;
  renderBlotter(); renderPositions(); renderAlerts(); renderLimits(); renderSwitches(); renderSessions(); renderCharts();
}

function renderBlotter() {
  const acc = $("f-account").value.trim().toUpperCase(), sym = $("f-symbol").value.trim().toUpperCase();
  const st = $("f-status").value;
  const rows = [...S.orders.values()].filter((o) => (!acc || o.account.toUpperCase() === acc) &&
    (!sym || o.symbol.toUpperCase() === sym) && (!st || (st === "working" ? WORKING.has(o.status) : o.status === st)));
  rows.sort((a, b) => (a.order_id < b.order_id ? 1 : -1));
  const body = el("tbody");
  for (const o of rows.slice(0, 300)) {
    const tr = el("tr", { class: "order", "data-order-id": o.order_id, "data-cl-ord-id": o.cl_ord_id,
                          "data-status": o.status },
      td(o.order_id), td(o.cl_ord_id), td(o.account), td(o.symbol), td(o.side), td(o.ord_type), td(o.qty, 1),
      td(o.price ?? "", 1), el("td", {}, el("span", { class: `badge ${o.status}` }, o.status)), td(o.cum_qty, 1),
      td(o.leaves_qty, 1), td(o.cum_qty ? o.avg_px : "", 1), td(o.venue));
    tr.onclick = () => { S.open.has(o.order_id) ? S.open.delete(o.order_id) : S.open.add(o.order_id); render(); };
    body.append(tr);
    if (S.open.has(o.order_id)) {
      const kids = o.children.map((c) => `${c.child_id} @${c.venue} ${c.cum_qty}/${c.qty} ${c.status}`).join("; ");
      const fills = o.fills.map((f) => `${f.qty} @ ${f.px} (${f.venue})`).join("; ");
      body.append(el("tr", { class: "detail" }, el("td", { colSpan: 13 },
        `children: ${kids || "none"} — fills: ${fills || "none"}`)));
    }
  }
  $("blotter").replaceChild(body, $("blotter").tBodies[0]);
  $("blotter-count").textContent = `${rows.length} orders`;
}

function renderPositions() {
  const body = el("tbody");
  for (const p of S.positions) body.append(el("tr", { "data-account": p.account, "data-symbol": p.symbol },
    td(p.account), td(p.symbol), td(p.qty, 1), td(p.price, 1), td(p.market_value, 1), td(p.pnl, 1)));
  $("positions").replaceChild(body, $("positions").tBodies[0]);
  const pnl = el("tbody");
  for (const [a, v] of Object.entries(S.pnl || {})) pnl.append(el("tr", {}, td(a), td(v, 1)));
  $("pnl").replaceChild(pnl, $("pnl").tBodies[0]);
}

function renderAlerts() {
  const list = el("ol", { id: "alerts" });
  for (const a of S.alerts.slice(0, 200)) {
    const when = new Date(a.ts / 1e6).toLocaleTimeString();
    const who = a.kind === "change" ? ` by ${a.user}: ${a.reason}` : "";
    list.append(el("li", { class: a.level }, `${when} ${a.control} ${a.level} ${a.account || ""} — ${a.text}${who}`));
  }
  $("alerts").replaceWith(list);
}

function renderLimits() {
  const body = el("tbody");
  for (const l of [...S.limits].sort((a, b) => b.pct - a.pct)) {  // closest to its limit first
    const level = l.pct >= 100 ? "hard" : l.pct >= 80 ? "warn" : "";
    const bar = el("div", { class: "bar" }, el("div", { class: level }));
    bar.firstChild.style.width = `${Math.min(l.pct, 100)}%`;
    body.append(el("tr", {}, td(l.account), td(l.control), td(l.symbol || ""), td(l.figure, 1), td(l.limit, 1),
      el("td", { title: `${l.pct}%` }, bar)));
  }
  $("limits").replaceChild(body, $("limits").tBodies[0]);
}

function renderSwitches() {
  const list = el("ul", { id: "switches" });
  for (const k of S.controls.kill_switches || []) {
    const mode = k.reduce_only ? "reduce only" : k.allow_reducing ? "reducing allowed" : "all blocked";
    list.append(el("li", { class: "switch", "data-scope": k.scope, "data-key": k.key },
      `ON ${k.scope} ${k.key} (${mode}) by ${k.user}: ${k.reason}`));
  }
  for (const o of S.controls.overrides || []) list.append(el("li", {}, `override ${o.account} ${o.control} until ${o.until}`));
  for (const t of S.controls.throttled || []) list.append(el("li", {}, `executions throttled: ${t.symbol} ${t.side}`));
  $("switches").replaceWith(list);
}

function renderSessions() {
  const list = el("ul", { id: "sessions" });
  for (const t of S.sessions.traders || []) list.append(el("li", {}, el("span",
    { class: `badge ${t.logged_on ? "up" : "down"}` }, t.logged_on ? "logged on" : "logged out"),
    ` trader ${t.session} (${t.begin_string}) ${t.accounts.join(", ")}`));
  for (const v of S.sessions.venues || []) {
    const up = v.up && !S.venuesDown.includes(v.venue);
    list.append(el("li", {}, el("span", { class: `badge ${up ? "up" : "down"}` }, up ? "up" : "down"),
      ` venue ${v.venue} (${v.begin_string})`));
  }
  $("sessions").replaceWith(list);
}

// ------------------------------------------------------------------ charts (inline SVG)
const NS = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function lineChart(svg, series) {
  svg.replaceChildren();
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) { svg.append(svgEl("text", { x: 10, y: 80 }, "no data yet")); return; }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(0, ...ys), y1 = Math.max(...ys, y0 + 1e-9);
  const X = (x) => 40 + (x - x0) / (x1 - x0) * 350, Y = (y) => 145 - (y - y0) / (y1 - y0) * 135;
  svg.append(svgEl("line", { x1: 40, x2: 390, y1: Y(0), y2: Y(0), stroke: "#bbb" }));
  svg.append(svgEl("text", { x: 2, y: 12 }, fmt(y1)), svgEl("text", { x: 2, y: 148 }, fmt(y0)));
  series.forEach((s, k) => {
    if (!s.points.length) return;
    const d = s.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    svg.append(svgEl("polyline", { points: d, fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 1.5 }));
    const [lx, ly] = s.points[s.points.length - 1];
    svg.append(svgEl("circle", { cx: X(lx), cy: Y(ly), r: 2.5, fill: COLORS[k % COLORS.length] }));
    svg.append(svgEl("text", { x: 45 + 70 * k, y: 158, fill: COLORS[k % COLORS.length] }, s.name));
  });
}

function barChart(svg, bars) {
  svg.replaceChildren();
  if (!bars.length) { svg.append(svgEl("text", { x: 10, y: 80 }, "no exposure")); return; }
  const max = Math.max(...bars.map((b) => Math.abs(b.value)), 1e-9), w = 350 / bars.length;
  bars.forEach((b, k) => {
    const h = Math.abs(b.value) / max * 60, x = 40 + k * w;
    svg.append(svgEl("rect", { x: x + 2, width: Math.max(w - 4, 1), y: b.value >= 0 ? 75 - h : 75, height: h,
                                fill: b.value >= 0 ? "#2e7d32" : "#c62828" }));
    svg.append(svgEl("text", { x: x + 2, y: 150 }, b.label));
    svg.append(svgEl("text", { x: x + 2, y: 160 }, fmt(b.value)));
  });
  svg.append(svgEl("line", { x1: 40, x2: 390, y1: 75, y2: 75, stroke: "#bbb" }));
}

function fmt(v) {
  const a = Math.abs(v);
  return a >= 1e6 ? (v / 1e6).toFixed(1) + "M" : a >= 1e3 ? (v / 1e3).toFixed(1) + "k" : (+v.toFixed(2)).toString();
}

function renderCharts() {
  const samples = S.samples, accounts = [...new Set(samples.flatMap((s) => Object.keys(s.pnl)))];
  lineChart($("chart-pnl"), accounts.map((a) => ({ name: a,
    points: samples.filter((s) => a in s.pnl).map((s) => [s.t, parseFloat(s.pnl[a])]) })));
  const last = samples[samples.length - 1], bySymbol = {}, bySector = {};
  for (const book of Object.values(last ? last.exposure : {})) {
    for (const [sym, v] of Object.entries(book)) {
      bySymbol[sym] = (bySymbol[sym] || 0) + parseFloat(v);
      const sector = S.sectors[sym] || "other";
      bySector[sector] = (bySector[sector] || 0) + parseFloat(v);
    }
  }
  barChart($("chart-exposure"), [...Object.entries(bySymbol).map(([k, v]) => ({ label: k, value: v })),
    ...Object.entries(bySector).map(([k, v]) => ({ label: `[${k}]`, value: v }))]);
  lineChart($("chart-rate"), [{ name: "orders/s", points: samples.map((s) => [s.t, s.orders_per_s]) }]);
  lineChart($("chart-latency"), [
    { name: "p50", points: samples.filter((s) => s.p50_ms != null).map((s) => [s.t, s.p50_ms]) },
    { name: "p99", points: samples.filter((s) => s.p99_ms != null).map((s) => [s.t, s.p99_ms]) }]);
}

// ------------------------------------------------------------------ actions
async function loadReports() {
  const [status, c] = await api("GET", "/v1/reports");
  if (status !== 200) { $("reports-panel").hidden = true; return; }
  $("reports-panel").hidden = false;
  $("r-date").value = c.last_date;
  $("r-date").min = c.first_date;
  $("r-date").max = c.last_date;
  $("r-name").replaceChildren(...c.reports.map((n) => el("option", { value: n }, n)));
  $("r-format").replaceChildren(...c.formats.map((n) => el("option", { value: n }, n)));
  S.charts = c.charts;
  reportLinks();
}

function reportLinks() {
  const q = `?date=${encodeURIComponent($("r-date").value)}`;
  $("r-link").href = `/v1/reports/${$("r-name").value}${q}&format=${$("r-format").value}`;
  $("r-charts").replaceChildren(...(S.charts || []).map((n) =>
    el("a", { href: `/v1/reports/charts/${n}${q}&format=svg`, target: "_blank" }, `${n} chart `)));
}

async function killSwitch(on) {
  const body = { scope: $("ks-scope").value, key: $("ks-key").value.trim(), reason: $("ks-reason").value.trim(), on,
                 allow_reducing: $("ks-allow-reducing").checked, reduce_only: $("ks-reduce-only").checked };
  const [status, out] = await api("POST", "/v1/risk/kill-switch", body);
  $("ks-result").textContent = status === 200 ? `kill switch ${on ? "on" : "off"}: ${body.scope} ${body.key}`
                                              : `refused (${status}): ${out.text}`;
  $("ks-result").className = status === 200 ? "ok" : "error";
}

window.addEventListener("DOMContentLoaded", () => {
  $("signin").onsubmit = async (e) => {
    e.preventDefault();
    const [status, out] = await api("POST", "/v1/session", { token: $("token").value });
    $("token").value = "";
    $("signin-error").textContent = status === 200 ? "" : out.text;
    if (status === 200) start();
  };
  $("signout").onclick = async () => { await api("DELETE", "/v1/session"); if (source) source.close(); S.me = null; start(); };
  $("ks-on").onclick = () => killSwitch(true);
  $("ks-off").onclick = () => killSwitch(false);
  for (const id of ["f-account", "f-symbol", "f-status"]) $(id).oninput = () => render();
  for (const id of ["r-date", "r-name", "r-format"]) $(id).oninput = () => reportLinks();
  start();
});
