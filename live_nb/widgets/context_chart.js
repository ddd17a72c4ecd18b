// The context chart: plain SVG drawn here, no chart library, no CDN (works offline).
//
// Data flow (context_chart.py): the traits hold a bounded checkpoint of the line; every sample
// with something new arrives as a custom message {type: "delta", seq, points, compressions,
// markers, head, forecast} whose points are APPENDED. A new view asks for a fresh checkpoint
// ({type: "resync"}) so it never misses the deltas sent before it existed. The line's tip moves
// with the browser's clock between deltas (offset against the kernel's clock), so an idle kernel
// costs no messages.
//
// Untrusted text (the title, marker labels such as a server's close reason) only ever reaches the
// page as textContent or an attribute value set with setAttribute: no innerHTML anywhere, not even
// for numbers, so no later edit can slip a string into HTML. Text is never rendered as Markdown: the
// sanitiser JupyterLab applies to untrusted outputs does not run inside a widget view.

const SVG_NS = "http://www.w3.org/2000/svg";
const MAX_POINTS = 3000; // the browser keeps at most this many; older estimates are thinned

function svg(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

// A CSS class suffix from a value the kernel sent: letters, digits, "-" and "_" only.
function token(v) {
  return String(v).replace(/[^A-Za-z0-9_-]/g, "");
}

export function formatTokens(v) {
  v = Number(v) || 0;
  if (Math.abs(v) >= 1000) return (v / 1000).toFixed(1).replace(/\.0$/, "") + "k";
  return String(Math.round(v));
}

export function formatDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
}

function niceTicks(lo, hi, count) {
  const span = Math.max(hi - lo, 1e-9);
  const raw = span / Math.max(count, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-6; v += step) out.push(v);
  return out;
}

// Keep the series bounded: drop every other plain estimate in the older half (as _feed.thin).
function thin(points) {
  const half = Math.floor(points.length / 2);
  const kept = [];
  let drop = false;
  for (let i = 0; i < half; i++) {
    const p = points[i];
    if (p[3] !== 0) { kept.push(p); continue; }
    if (!drop) kept.push(p);
    drop = !drop;
  }
  return kept.concat(points.slice(half));
}

class ChartState {
  constructor(model) {
    this.model = model;
    this.loadTraits();
  }

  loadTraits() {
    const m = this.model;
    this.points = (m.get("series") || []).slice();
    this.compressions = new Map();
    for (const c of m.get("compressions") || []) this.compressions.set(c.i, c);
    this.markers = (m.get("markers") || []).slice();
    this.head = (m.get("head") || [0, 0, null, 0]).slice();
    this.forecast = Object.assign({}, m.get("forecast") || {});
    this.seq = m.get("seq") || 0;
    // Without a live delta yet, the tip stays where the checkpoint left it.
    this.clockOffset = null;
  }

  applyDelta(msg) {
    if (msg.seq <= this.seq) return false; // already in the checkpoint
    this.seq = msg.seq;
    for (const p of msg.points || []) this.points.push(p);
    while (this.points.length > MAX_POINTS) {
      const before = this.points.length;
      this.points = thin(this.points);
      if (this.points.length === before) this.points.splice(0, before - MAX_POINTS);
    }
    for (const [i, c] of msg.compressions || []) this.compressions.set(i, Object.assign({ i }, c));
    for (const mk of msg.markers || []) this.markers.push(mk);
    if (this.markers.length > 100) this.markers.splice(0, this.markers.length - 100);
    if (msg.head) {
      this.head = msg.head.slice();
      // Chart seconds = browser seconds + offset, measured when the delta arrives.
      this.clockOffset = msg.head[0] - performance.now() / 1000;
    }
    if (msg.forecast) this.forecast = msg.forecast;
    return true;
  }

  // The chart time now: the kernel's head moved along by the browser's clock.
  now() {
    if (this.clockOffset === null) return this.head[0] || 0;
    return Math.max(this.head[0] || 0, performance.now() / 1000 + this.clockOffset);
  }
}

function draw(state, dom, model) {
  const width = Math.max(280, Math.floor(dom.plot.clientWidth || 600));
  const height = Math.max(model.get("height") || 260, Math.floor(dom.plot.clientHeight || 0));
  const left = 54, right = 14, top = 10, bottom = 26;
  const pw = width - left - right, ph = height - top - bottom;
  const window_ = model.get("window"), trigger = model.get("trigger"), target = model.get("target");
  const now = state.now();
  const headV = state.head[1] || 0;
  const fc = state.forecast || {};

  // Forecast: project the line forward, if the next crossing is near enough to draw.
  const limit = trigger !== null && trigger !== undefined && headV < trigger ? trigger : window_;
  const eta = limit === trigger ? fc.to_trigger : fc.to_window;
  let xMax = Math.max(10, now);
  const projection = eta !== null && eta !== undefined && eta <= now * 0.6 + 30 ? [now + eta, limit] : null;
  if (projection) xMax = Math.max(xMax, projection[0]);
  xMax *= 1.04;

  // y: what happened plus the trigger; the window only when within reach (else it flattens all).
  let seen = 1000;
  for (const p of state.points) seen = Math.max(seen, p[1], p[2] || 0);
  for (const c of state.compressions.values()) seen = Math.max(seen, c.before);
  seen = Math.max(seen, headV, trigger || 0);
  let yMax = seen * 1.12;
  const showWindow = window_ <= yMax * 1.6;
  if (showWindow) yMax = Math.max(yMax, window_ * 1.05);

  const sx = (t) => left + (pw * t) / xMax;
  const sy = (v) => top + ph * (1 - v / yMax);

  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "lnb-chart-svg", role: "img" });
  svg("title", {}, root).textContent = `Context window: ${formatTokens(headV)} tokens now`;
  const grid = svg("g", { class: "lnb-grid" }, root);
  for (const v of niceTicks(0, yMax, 5)) {
    svg("line", { x1: left, x2: left + pw, y1: sy(v), y2: sy(v) }, grid);
    svg("text", { x: left - 6, y: sy(v) + 4, "text-anchor": "end", class: "lnb-tick" }, grid).textContent = formatTokens(v);
  }
  for (const t of niceTicks(0, xMax, Math.max(2, Math.floor(pw / 90)))) {
    svg("text", { x: sx(t), y: top + ph + 17, "text-anchor": "middle", class: "lnb-tick" }, grid).textContent = formatDuration(t);
  }
  svg("line", { x1: left, x2: left + pw, y1: top + ph, y2: top + ph, class: "lnb-axis" }, root);

  // Limits: window (solid), trigger (dashed), target (dotted); labelled, not colour alone.
  const limits = [["window", showWindow ? window_ : null], ["trigger", trigger], ["target", target]];
  for (const [name, v] of limits) {
    if (v === null || v === undefined) continue;
    const g = svg("g", { class: `lnb-limit lnb-${name}` }, root);
    svg("line", { x1: left, x2: left + pw, y1: sy(v), y2: sy(v) }, g);
    // Labels sit at the left: the newest data (and its drop labels) is at the right.
    svg("text", { x: left + 4, y: sy(v) - 4, "text-anchor": "start" }, g).textContent = `${name} ${formatTokens(v)}`;
  }
  if (dom.windowLegend) {
    dom.windowLegend.textContent = showWindow ? "window" : `window ${formatTokens(window_)} (above the chart)`;
  }

  // Lifecycle markers (GoAway, reconnect, resume).
  const mg = svg("g", { class: "lnb-markers" }, root);
  let labelRow = 0;
  for (const mk of state.markers.slice(-30)) {
    const x = sx(mk.t);
    svg("line", { x1: x, x2: x, y1: top, y2: top + ph, class: `lnb-marker lnb-marker-${token(mk.kind)}` }, mg);
    const flip = x > left + pw - 90; // keep labels near the right edge inside the plot
    svg("text", {
      x: flip ? x - 3 : x + 3,
      y: top + 10 + 12 * (labelRow++ % 3),
      "text-anchor": flip ? "end" : "start",
      class: "lnb-marker-label",
    }, mg).textContent = mk.label;
  }

  // The estimate line, through every point and on to the tip at `now`.
  const line = state.points.map((p) => [p[0], p[1]]);
  line.push([state.head[0], headV]);
  if (now > state.head[0]) line.push([now, headV]);
  const d = line.map(([t, v], i) => `${i ? "L" : "M"}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`).join(" ");
  svg("path", { d, class: "lnb-line" }, root);
  svg("circle", { cx: sx(now), cy: sy(headV), r: 3.5, class: "lnb-head" }, root);

  if (projection) {
    svg("line", { x1: sx(now), y1: sy(headV), x2: sx(projection[0]), y2: sy(projection[1]), class: "lnb-projection" }, root);
  }

  // Server-reported counts: diamonds.
  const rg = svg("g", { class: "lnb-reported" }, root);
  for (const p of state.points) {
    if (p[2] === null || p[2] === undefined) continue;
    const x = sx(p[0]), y = sy(p[2]);
    svg("path", { d: `M${x},${y - 4.5} L${x + 4.5},${y} L${x},${y + 4.5} L${x - 4.5},${y} Z` }, rg);
  }

  // Compressions: an arrow down where the context dropped; dashed if only our estimate saw it.
  const cg = svg("g", { class: "lnb-compressions" }, root);
  for (const c of state.compressions.values()) {
    const x = sx(c.t), y1 = sy(c.before), y2 = sy(c.after);
    const g = svg("g", { class: `lnb-compression lnb-by-${token(c.by)}` }, cg);
    svg("line", { x1: x, x2: x, y1, y2: y2 - 5 }, g);
    svg("path", { d: `M${x - 4.5},${y2 - 7} L${x + 4.5},${y2 - 7} L${x},${y2} Z` }, g);
    const flip = x > left + pw - 60;
    svg("text", { x: flip ? x - 6 : x + 6, y: (y1 + y2) / 2 + 4, "text-anchor": flip ? "end" : "start" }, g)
      .textContent = `−${formatTokens(c.before - c.after)}`;
    const t = svg("title", {}, g);
    t.textContent = `compression at ${formatDuration(c.t)}: ${formatTokens(c.before)} → ${formatTokens(c.after)} (${c.by === "reported" ? "server count" : "our estimate"})`;
  }

  dom.plot.replaceChildren(root);

  // Header: the numbers a reader wants first (DOM nodes and text, never an HTML string).
  const rate = Number(fc.rate) || 0;
  const bits = [];
  bits.push(rate > 0 ? `${rate.toFixed(0)} tok/s` : "steady");
  if (trigger !== null && trigger !== undefined && headV >= trigger) bits.push("above the trigger: compresses when the next turn starts");
  else if (fc.to_trigger !== null && fc.to_trigger !== undefined) bits.push(`next compression in ~${formatDuration(fc.to_trigger)}`);
  if (fc.to_window !== null && fc.to_window !== undefined) bits.push(`window full in ~${formatDuration(fc.to_window)}`);
  const n = state.compressions.size;
  bits.push(`${n} compression${n === 1 ? "" : "s"}`);
  const strong = document.createElement("b");
  strong.textContent = formatTokens(headV);
  dom.stats.replaceChildren(strong, ` tokens · ${bits.join(" · ")}`);

  // For tests and assistive tech: the numbers behind the picture.
  const el = dom.el;
  el.dataset.points = String(state.points.length);
  el.dataset.head = String(headV);
  el.dataset.compressions = String(n);
  el.dataset.seq = String(state.seq);
  el.dataset.now = now.toFixed(2);
}

function legend(container, dom) {
  const items = [
    ["lnb-sw-line", "estimate"],
    ["lnb-sw-reported", "server count"],
    ["lnb-sw-compression", "compression"],
    ["lnb-sw-trigger", "trigger"],
    ["lnb-sw-target", "target"],
    ["lnb-sw-window", "window"],
  ];
  for (const [cls, label] of items) {
    const span = document.createElement("span");
    span.className = "lnb-legend-item";
    const sw = document.createElement("i");
    sw.className = `lnb-swatch ${cls}`;
    const text = document.createElement("span");
    text.textContent = label;
    span.append(sw, text);
    container.appendChild(span);
    if (label === "window") dom.windowLegend = text;
  }
}

function render({ model, el }) {
  el.classList.add("lnb-chart");
  const header = document.createElement("div");
  header.className = "lnb-chart-header";
  const title = document.createElement("div");
  title.className = "lnb-title";
  const stats = document.createElement("div");
  stats.className = "lnb-stats";
  const leg = document.createElement("div");
  leg.className = "lnb-legend";
  const dom = { el, stats, windowLegend: null };
  legend(leg, dom);
  header.append(title, stats);
  const plot = document.createElement("div");
  plot.className = "lnb-plot";
  plot.style.minHeight = `${model.get("height") || 260}px`;
  el.append(header, plot, leg);
  dom.plot = plot;

  const state = new ChartState(model);
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      title.textContent = model.get("title");
      draw(state, dom, model);
    });
  };

  const onMsg = (msg) => {
    if (msg && msg.type === "delta" && state.applyDelta(msg)) schedule();
  };
  const onCheckpoint = () => {
    // Deltas up to `seq` are in the traits; later ones arrive after this (comm order).
    const offset = state.clockOffset;
    state.loadTraits();
    state.clockOffset = offset;
    schedule();
  };
  model.on("msg:custom", onMsg);
  model.on("change:seq", onCheckpoint);
  for (const name of ["window", "trigger", "target", "title"]) model.on(`change:${name}`, schedule);
  const onHeight = () => { plot.style.minHeight = `${model.get("height") || 260}px`; schedule(); };
  model.on("change:height", onHeight);
  // The tip moves with the clock: redraw a few times a second without any kernel message.
  const timer = setInterval(schedule, 500);
  const resize = new ResizeObserver(schedule);
  resize.observe(plot);
  model.send({ type: "resync" });
  schedule();

  return () => {
    clearInterval(timer);
    resize.disconnect();
    model.off("msg:custom", onMsg);
    model.off("change:seq", onCheckpoint);
  };
}

export default { render };
