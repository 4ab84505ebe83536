// Surge live dashboard: follows /dashboard/events (one JSON snapshot a
// second, computed by the server from its Prometheus registry) and draws
// every sale. No library, no build step.
"use strict";

const HISTORY = 900; // points of each sell-through curve (15 minutes at 1/s)
const cards = new Map(); // sale id -> {el, history}
const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmt1 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

// PAGE is the page of sales this page follows (/dashboard?page=N): the
// feed sends 48 sales a page, the busiest and those in play first.
const PAGE = (() => {
  const p = new URLSearchParams(location.search).get("page");
  return /^[1-9][0-9]{0,5}$/.test(p || "") ? Number(p) : 1;
})();
const FEED = "/dashboard/events" + (PAGE > 1 ? "?page=" + PAGE : "");

const BADGES = { upcoming: "UPCOMING", live: "ON SALE", paused: "PAUSED", sold_out: "SOLD OUT", ended: "ENDED" };
const OK = new Set(["reserved", "replayed"]);
const ERROR = new Set(["rate_limited", "overloaded", "unavailable", "internal", "other"]);

function num(v) { return v == null ? "—" : fmt.format(v); }
function rate(v) { return v == null ? "—" : (v < 10 ? fmt1 : fmt).format(v); }
function ms(seconds) {
  if (seconds == null) return "—";
  const m = seconds * 1000;
  return (m < 10 ? m.toFixed(2) : m < 100 ? m.toFixed(1) : fmt.format(m)) + " ms";
}
function $(root, sel) { return root.querySelector(sel); }
function text(el, s) { if (el.textContent !== s) el.textContent = s; }

function card(sale) {
  let c = cards.get(sale.id);
  if (c) return c;
  const el = document.getElementById("sale-card").content.firstElementChild.cloneNode(true);
  el.dataset.sale = sale.id;
  text($(el, ".name"), sale.id);
  c = { el, history: [] };
  cards.set(sale.id, c);
  // Cards stay in id order, as the server sends them.
  const main = document.getElementById("sales");
  const next = [...main.querySelectorAll(".sale")].find(e => e.dataset.sale > sale.id);
  main.insertBefore(el, next || null);
  return c;
}

function renderSale(sale, at, cluster) {
  const c = card(sale);
  const el = c.el;
  // In cluster mode the units are the sale's, the counters this node's:
  // say so, or "reserved 333" beside "100 % sold" reads as units lost.
  $(el, ".scope").hidden = !cluster;
  const badge = $(el, ".badge");
  // The sale's status as the API reports it: units left do not make a
  // paused, ended or upcoming sale on sale.
  const status = sale.status || (sale.remaining === 0 ? "sold_out" : "");
  // Stale (cluster mode): the node cannot refresh the sale's figures, so
  // its units and status are the last known, as the API says.
  text(badge, (BADGES[status] || "") + (sale.stale ? " · STALE" : ""));
  badge.className = "badge " + status.replace("_", "-");
  el.classList.toggle("stale", !!sale.stale);
  el.title = sale.stale ? "stale: this node cannot refresh the sale's figures (Redis and PostgreSQL unreachable); they are the last known" : "";
  text($(el, ".remaining"), num(sale.remaining));
  text($(el, ".of"), sale.stock == null ? "" : "of " + num(sale.stock) + " left");
  const sold = sale.stock && sale.remaining != null ? (sale.stock - sale.remaining) / sale.stock : null;
  text($(el, ".sold"), sold == null ? "" : fmt1.format(sold * 100) + " % sold");
  text($(el, ".rate"), rate(sale.purchases_per_second));
  text($(el, ".p50"), ms(sale.latency_p50_seconds));
  text($(el, ".p99"), ms(sale.latency_p99_seconds));
  text($(el, ".queue"), num(sale.queue_depth));
  const room = sale.waiting_room_length != null || sale.admitted_total != null;
  for (const r of el.querySelectorAll(".room")) r.hidden = !room;
  text($(el, ".room-length"), num(sale.waiting_room_length));
  text($(el, ".admit"), rate(sale.admitted_per_second));
  renderOutcomes($(el, ".outcomes tbody"), sale.outcomes || []);
  if (sale.remaining != null) {
    c.history.push({ t: at, v: sale.remaining });
    if (c.history.length > HISTORY) c.history.shift();
  }
  drawCurve($(el, ".curve"), c.history, sale.stock);
}

function renderOutcomes(tbody, outcomes) {
  // Outcomes at 0 are left out: every code is exported from a sale's
  // creation on, and a war room wants to see what happens.
  const shown = outcomes.filter(o => o.total > 0);
  while (tbody.rows.length > shown.length) tbody.deleteRow(-1);
  shown.forEach((o, i) => {
    const row = tbody.rows[i] || tbody.insertRow();
    if (row.cells.length === 0) for (let k = 0; k < 3; k++) row.insertCell();
    row.dataset.outcome = o.name;
    row.className = OK.has(o.name) ? "ok" : ERROR.has(o.name) ? "error" : "refused";
    text(row.cells[0], o.name);
    text(row.cells[1], rate(o.per_second));
    text(row.cells[2], num(o.total));
    row.cells[2].className = "total";
  });
}

// drawCurve plots remaining units over time, 0 at the bottom, the stock
// at the top.
function drawCurve(canvas, history, stock) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600, h = canvas.clientHeight || 140;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const top = Math.max(stock || 0, ...history.map(p => p.v), 1);
  const pad = 6;
  g.strokeStyle = "#30363d"; g.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = pad + (h - 2 * pad) * f;
    g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke();
  }
  g.fillStyle = "#8b949e"; g.font = "12px system-ui, sans-serif";
  const topLabel = fmt.format(top);
  g.fillText(topLabel, w - pad - g.measureText(topLabel).width, pad + 12); // clear of the curve's start
  g.fillText("0", 4, h - pad - 3);
  if (history.length === 0) return;
  const t0 = history[0].t, t1 = Math.max(history[history.length - 1].t, t0 + 10000);
  const x = t => (w - 2 * pad) * (t - t0) / (t1 - t0) + pad;
  const y = v => pad + (h - 2 * pad) * (1 - v / top);
  g.beginPath();
  g.moveTo(x(history[0].t), y(history[0].v));
  for (const p of history) g.lineTo(x(p.t), y(p.v));
  const last = history[history.length - 1];
  g.lineTo(x(last.t), h - pad); g.lineTo(x(t0), h - pad); g.closePath();
  g.fillStyle = "rgba(88, 166, 255, 0.18)"; g.fill();
  g.beginPath();
  g.moveTo(x(history[0].t), y(history[0].v));
  for (const p of history) g.lineTo(x(p.t), y(p.v));
  g.strokeStyle = last.v === 0 ? "#f85149" : "#58a6ff"; g.lineWidth = 3; g.stroke();
  g.fillStyle = "#8b949e";
  g.fillText(Math.round((last.t - t0) / 1000) + " s", w - 44, h - pad - 3);
}

function render(snap) {
  const at = Date.parse(snap.time);
  text(document.getElementById("clock"), new Date(at).toLocaleTimeString());
  text(document.getElementById("batch-mean"), rate(snap.batch.mean));
  text(document.getElementById("batch-p99"), num(snap.batch.p99));
  text(document.getElementById("batch-rate"), rate(snap.batch.per_second));
  const cluster = document.getElementById("cluster");
  cluster.hidden = snap.leader == null && !snap.breakers;
  text(document.getElementById("leader"), snap.leader == null ? "—" : snap.leader ? "this node leads" : "follower");
  const breakers = document.getElementById("breakers");
  breakers.replaceChildren(...(snap.breakers || []).map(b => {
    const s = document.createElement("span");
    s.className = "breaker " + b.state;
    s.dataset.dependency = b.dependency;
    s.textContent = b.dependency + " " + b.state;
    return s;
  }));
  const ids = new Set(snap.sales.map(s => s.id));
  for (const [id, c] of cards) if (!ids.has(id)) { c.el.remove(); cards.delete(id); }
  for (const sale of snap.sales) renderSale(sale, at, !cluster.hidden);
  document.getElementById("empty").hidden = snap.sales.length > 0;
  const hidden = document.getElementById("hidden-sales");
  hidden.hidden = !snap.hidden_sales;
  // Past the bound, sales still in play are left out too: "idle" only
  // when none of the hidden ones is.
  // One sale is "1 sale", not "1 sales".
  const n = snap.hidden_sales;
  text(hidden, !n ? "" : n === 1
    ? (snap.hidden_in_play ? "1 sale not shown (still in play)" : "1 idle sale not shown")
    : snap.hidden_in_play
      ? n + " sales not shown (" + snap.hidden_in_play + " of them still in play)"
      : n + " idle sales not shown");
  renderPages(snap.page || 1, snap.pages || 1);
}

// renderPages links the other pages of sales, so that every sale can be
// reached, however many there are.
function renderPages(page, pages) {
  document.getElementById("pages").hidden = pages <= 1;
  text(document.getElementById("page-of"), "page " + page + " of " + pages);
  const link = (id, to) => {
    const a = document.getElementById(id);
    a.hidden = to < 1 || to > pages;
    const href = to > 1 ? "/dashboard?page=" + to : "/dashboard";
    if (a.getAttribute("href") !== href) a.setAttribute("href", href);
  };
  link("prev-page", page - 1);
  link("next-page", page + 1);
}

function status(state, label) {
  const el = document.getElementById("status");
  el.className = "status " + state;
  text(document.getElementById("status-text"), label);
  // Figures not refreshed are dimmed, so that none passes for current.
  document.body.classList.toggle("stale", state !== "live");
}

// STALE_AFTER is how long the page waits for a snapshot (the server sends
// one a second) before it says its figures are stale and opens another
// feed: a connection that went half-open (a NAT or balancer that forgot
// it) delivers nothing and never errs, so EventSource alone would wait on
// it, saying "live", for good.
const STALE_AFTER = 5000;
let feed = null; // the EventSource followed; null while a retry waits
let lastSnapshot = 0; // Date.now() of the last snapshot, 0 before one
let waitingSince = 0; // Date.now() since which a snapshot is due

// age says how old the figures on the page are.
function age() {
  if (!lastSnapshot) return "no figures yet";
  return "figures from " + Math.round((Date.now() - lastSnapshot) / 1000) + " s ago";
}

// why asks the feed for the reason it refused the page, which
// EventSource does not tell: a HEAD of it answers the same status, no
// body, and holds no stream.
async function why() {
  let r;
  try {
    r = await fetch(FEED, { method: "HEAD", cache: "no-store" });
  } catch {
    return "disconnected: the server is unreachable, retrying";
  }
  switch (r.status) {
    case 400: return "refused: no such page of sales; open /dashboard";
    case 401: return "signed out (session expired, or the admin token changed): reload to sign in";
    case 429: return "refused: too many dashboards are open on this server; close one, retrying";
    case 503: return "disconnected: the server is shutting down, retrying";
    case 200: return "disconnected: retrying";
  }
  return "refused (HTTP " + r.status + "), retrying";
}

// connect follows the feed. EventSource reconnects by itself after a
// dropped stream; a refused one (a session expired, the server gone)
// closes it, and then we retry every few seconds.
function connect() {
  const es = new EventSource(FEED);
  feed = es;
  waitingSince = Date.now();
  es.addEventListener("snapshot", e => {
    if (feed !== es) return;
    lastSnapshot = waitingSince = Date.now();
    status("live", "live");
    render(JSON.parse(e.data));
  });
  es.onerror = () => {
    if (feed !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      feed = null;
      status("down", "disconnected: retrying; " + age());
      why().then(reason => { if (feed === null) status("down", reason + "; " + age()); });
      setTimeout(connect, 5000);
    } else {
      status("connecting", "reconnecting; " + age());
    }
  };
}

setInterval(() => {
  if (!feed || Date.now() - waitingSince < STALE_AFTER) return;
  feed.close();
  feed = null;
  status("stale", "stale: no update, reconnecting; " + age());
  connect();
}, 1000);

connect();
