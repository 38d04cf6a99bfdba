// The dashboard: reads /v1/dashboard and /v1/whatif with the admin key and draws plain SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#9e9d24"];
const $ = (id) => document.getElementById(id);
let whatIfTimer = null;
let whatIfSeq = 0;
let current = null;

const usd = (x) => (x === null || x === undefined ? "–" : "$" + x.toFixed(4));
const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + "%");
const ms = (x) => (x === null || x === undefined ? "–" : x.toFixed(1));

function headers() {
  const key = $("key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

function query(extra) {
  const params = new URLSearchParams(extra || {});
  const since = $("window").value;
  if (since) params.set("since", since);
  return params.toString();
}

async function getJSON(path) {
  const response = await fetch(path, { headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || "HTTP " + response.status;
    throw new Error(message);
  }
  return body;
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, value, anchor) {
  const node = el("text", { x, y, "text-anchor": anchor || "start" }, parent);
  node.textContent = value;
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function rows(tbody, items) {
  clear(tbody);
  for (const cells of items) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
}

function drawSeries(series) {
  const svg = $("series");
  clear(svg);
  const legend = $("legend");
  legend.textContent = "";
  const left = 36, top = 8, width = 672, height = 180;
  const n = series.counts.length;
  const barW = width / n;
  el("line", { x1: left, y1: top + height, x2: left + width, y2: top + height, stroke: "#dde1e8" }, svg);
  for (const share of [0, 0.5, 1]) text(svg, left - 4, top + height - share * height + 3, pct(share).replace(".0", ""), "end");
  series.counts.forEach((bucket, i) => {
    const total = Object.values(bucket).reduce((a, b) => a + b, 0);
    let y = top + height;
    series.models.forEach((model, m) => {
      const count = bucket[model] || 0;
      if (!total || !count) return;
      const h = (count / total) * height;
      y -= h;
      const rect = el("rect", { x: left + i * barW + 1, y, width: Math.max(barW - 2, 1), height: h, fill: COLOURS[m % COLOURS.length] }, svg);
      el("title", {}, rect).textContent = `${model}: ${count} of ${total}`;
    });
  });
  const first = new Date(series.starts[0] * 1000), last = new Date((series.starts[n - 1] + series.bucket_seconds) * 1000);
  text(svg, left, top + height + 16, first.toLocaleString());
  text(svg, left + width, top + height + 16, last.toLocaleString(), "end");
  series.models.forEach((model, m) => {
    const item = document.createElement("span");
    item.style.setProperty("--swatch", COLOURS[m % COLOURS.length]);
    item.textContent = model;
    legend.appendChild(item);
  });
  if (!series.models.length) text(svg, left + width / 2, top + height / 2, "no requests in this window", "middle");
}

function drawSpend(savings) {
  const svg = $("spend");
  clear(svg);
  const max = Math.max(savings.baseline_cost_usd, savings.cost_usd, 1e-12);
  const bars = [["baseline", savings.baseline_cost_usd, "#9aa3b2"], ["routed", savings.cost_usd, "#1565c0"]];
  bars.forEach(([label, value, colour], i) => {
    const y = 14 + i * 44;
    text(svg, 0, y + 18, label);
    el("rect", { x: 60, y, width: Math.max((value / max) * 230, 1), height: 28, fill: colour, rx: 3 }, svg);
    text(svg, 60 + Math.max((value / max) * 230, 1) + 4, y + 18, usd(value));
  });
  rows($("by-model").tBodies[0], Object.entries(savings.by_model).map(([model, m]) => [model, String(m.requests), pct(m.share), usd(m.cost_usd)]));
}

function drawHistogram(histogram, threshold, whatIf) {
  const svg = $("histogram");
  clear(svg);
  const left = 28, top = 8, width = 324, height = 140;
  const max = Math.max(...histogram.counts, 1);
  const barW = width / histogram.bins;
  histogram.counts.forEach((count, i) => {
    const h = (count / max) * height;
    const rect = el("rect", { x: left + i * barW + 1, y: top + height - h, width: barW - 2, height: h, fill: "#9aa3b2" }, svg);
    el("title", {}, rect).textContent = `${(i / histogram.bins).toFixed(2)}–${((i + 1) / histogram.bins).toFixed(2)}: ${count}`;
  });
  el("line", { x1: left, y1: top + height, x2: left + width, y2: top + height, stroke: "#5d6677" }, svg);
  for (const x of [0, 0.25, 0.5, 0.75, 1]) text(svg, left + x * width, top + height + 14, String(x), "middle");
  text(svg, left - 4, top + 8, String(max), "end");
  const mark = (t, colour, dash, id) =>
    el("line", { id, x1: left + t * width, x2: left + t * width, y1: top, y2: top + height, stroke: colour, "stroke-width": 2, "stroke-dasharray": dash }, svg);
  if (threshold !== null) mark(threshold, "#c62828", "", "threshold-mark");
  if (whatIf !== null) mark(whatIf, "#1565c0", "4 3", "whatif-mark");
}

function drawLatency(latency) {
  rows($("latency").tBodies[0], [
    ["classify", ms(latency.classify.p50), ms(latency.classify.p90), ms(latency.classify.p99)],
    ["first byte", ms(latency.first_byte.p50), ms(latency.first_byte.p90), ms(latency.first_byte.p99)],
  ]);
}

function drawOutcomes(data) {
  $("fallbacks").textContent = String(data.fallbacks);
  const errors = Object.values(data.errors).reduce((a, b) => a + b, 0);
  $("errors").textContent = String(errors);
  const items = Object.entries(data.reasons).sort((a, b) => b[1] - a[1]).map(([r, n]) => [r, String(n)]);
  for (const [status, n] of Object.entries(data.errors)) items.push(["HTTP " + status, String(n)]);
  rows($("reasons").tBodies[0], items);
}

function drawReliability(buckets) {
  const svg = $("reliability");
  clear(svg);
  const left = 34, top = 8, size = 180;
  const x = (v) => left + v * size * 1.7;
  const y = (v) => top + (1 - v) * size;
  el("rect", { x: left, y: top, width: size * 1.7, height: size, fill: "none", stroke: "#c9ced8" }, svg);
  el("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), stroke: "#9aa3b2", "stroke-dasharray": "4 3" }, svg);
  for (const v of [0, 0.5, 1]) {
    text(svg, x(v), top + size + 14, String(v), "middle");
    text(svg, left - 4, y(v) + 4, String(v), "end");
  }
  text(svg, x(0.5), top + size + 28, "predicted P(LABEL_0)", "middle");
  for (const b of buckets) {
    if (!b.judged) continue;
    const [lo, hi] = b.interval;
    el("line", { x1: x(b.predicted), x2: x(b.predicted), y1: y(lo), y2: y(hi), stroke: "#1565c0" }, svg);
    const dot = el("circle", { class: "judged", cx: x(b.predicted), cy: y(b.judged_win_rate), r: 3 + Math.min(b.judged, 30) / 6, fill: "#1565c0" }, svg);
    el("title", {}, dot).textContent = `${b.low.toFixed(1)}–${b.high.toFixed(1)}: ${b.judged} judged, strong won ${b.strong}, tie ${b.tie}, weak won ${b.weak}; predicted ${pct(b.predicted)}, judged ${pct(b.judged_win_rate)}`;
  }
}

function drawQuality(quality) {
  drawReliability(quality.reliability);
  const kept = quality.kept;
  $("kept").textContent = pct(kept.kept);
  $("kept-interval").textContent = kept.interval ? `${pct(kept.interval[0])} – ${pct(kept.interval[1])}` : "–";
  $("judged").textContent = String(kept.judged);
  const shadow = quality.shadow;
  $("shadow-spend").textContent = `${usd(shadow.spent_usd)} (cap ${usd(shadow.daily_budget_usd)} a day)`;
  $("shadow-failed").textContent = `${shadow.failed} of ${shadow.attempts}`;
  // This process's achieved share beside the configured one (skips: queue full or budget spent).
  const process = shadow.process;
  $("shadow-share").textContent = process && process.eligible
    ? `${pct(process.started / process.eligible)} of ${process.eligible} (configured ${pct(shadow.share)})`
    : `configured ${pct(shadow.share)}`;
  rows($("feedback").tBodies[0], Object.entries(quality.feedback).map(([model, f]) => [
    model, String(f.requests), String(f.feedback), pct(f.rate), f.mean_score === null ? "–" : f.mean_score.toFixed(2),
  ]));
}

function showWhatIf(w) {
  $("whatif-threshold").textContent = w.threshold.toFixed(2);
  $("whatif-strong-share").textContent = pct(w.strong_share);
  $("whatif-cost").textContent = usd(w.cost_usd);
  $("whatif-saved").textContent = `${usd(w.saved_usd)} (${pct(w.saved_share)})`;
}

async function loadWhatIf() {
  const seq = ++whatIfSeq;
  const threshold = Number($("slider").value);
  if (current) drawHistogram(current.histogram, current.threshold, threshold);
  try {
    const w = await getJSON("/v1/whatif?" + query({ threshold: threshold.toFixed(2) }));
    if (seq === whatIfSeq) showWhatIf(w);
  } catch (err) {
    setStatus(err.message, true);
  }
}

function interval(range) {
  return range ? `${pct(range[0])} – ${pct(range[1])}` : "–";
}

async function loadCompare(candidates) {
  const panel = $("compare-panel");
  panel.hidden = !candidates.length;
  if (!candidates.length) return;
  const pick = candidates[0];
  const report = await getJSON("/v1/routers/compare?" + query({ incumbent: pick.router, candidate: pick.candidate }));
  const a = report.incumbent, b = report.candidate, shadow = report.shadow;
  $("compare-title").textContent = `${pick.candidate} beside ${pick.router} (${pick.mode})`;
  $("compare-incumbent").textContent = `${a.router} (incumbent)`;
  $("compare-candidate").textContent = `${b.router} (candidate)`;
  $("compare-summary").textContent = report.summary;
  $("compare-summary").className = report.separated ? "verdict separated" : "verdict";
  const line = (name, f) => [name, f(a), f(b)];
  rows($("compare").tBodies[0], [
    line("requests", (x) => String(x.requests)),
    line("strong share", (x) => pct(x.strong_share)),
    line("cost", (x) => usd(x.cost_usd)),
    line("saved against the baseline", (x) => usd(x.saved_usd)),
    line("judged", (x) => String(x.judged)),
    line("quality kept", (x) => pct(x.quality_kept)),
    line("95% interval", (x) => interval(x.quality_kept_interval)),
    line("latency p50 (ms)", (x) => ms(x.total_ms_p50)),
  ]);
  $("compare-shadow").textContent = shadow.requests
    ? `Shadow: the candidate decided beside ${shadow.requests} requests and disagreed on ` +
      `${pct(shadow.disagreement_rate)}; of ${shadow.judged_disagreements} judged disagreements ` +
      `the verdict bore out the candidate on ${shadow.candidate_right} ` +
      `(${interval(shadow.candidate_right_interval)}) and the incumbent on ${shadow.incumbent_right}.`
    : "Shadow: no request was decided by both yet.";
}

function drawMany(many) {
  const routers = Object.entries((many && many.routers) || {});
  $("many-panel").hidden = routers.length === 0;
  rows($("many").tBodies[0], routers.flatMap(([router, r]) =>
    Object.entries(r.models).map(([model, m]) => [
      router, model, String(m.chosen), pct(m.share), m.mean_quality === null ? "–" : m.mean_quality.toFixed(3),
    ])));
  $("many-weights").textContent = routers
    .map(([router, r]) => `${router}: ${r.requests} requests, mean cost weight ${r.mean_cost_weight.toFixed(3)}`)
    .join(" · ");
}

function setStatus(message, isError) {
  $("status").textContent = message;
  $("status").className = isError ? "error" : "";
}

async function load() {
  setStatus("Loading…");
  sessionStorage.setItem("routellm-admin-key", $("key").value);
  try {
    const data = await getJSON("/v1/dashboard?" + query());
    current = data;
    const s = data.savings;
    $("requests").textContent = String(s.requests);
    $("cost").textContent = usd(s.cost_usd);
    $("baseline").textContent = usd(s.baseline_cost_usd);
    $("baseline-model").textContent = data.baseline || "none";
    $("saved").textContent = usd(s.saved_usd);
    $("saved-share").textContent = pct(s.saved_share);
    $("unpriced").textContent = String(s.unpriced_requests);
    $("threshold").textContent = data.threshold === null ? "–" : data.threshold.toFixed(2);
    $("slider").value = String(data.threshold);
    drawSeries(data.series);
    drawSpend(s);
    drawHistogram(data.histogram, data.threshold, null);
    drawLatency(data.latency_ms);
    drawOutcomes(data);
    showWhatIf(data.what_if);
    drawQuality(data.quality);
    drawMany(data.many_models);
    await loadCompare(data.candidates || []);
    setStatus(`Updated ${new Date(data.until * 1000).toLocaleTimeString()} · ${s.requests} requests`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

$("key").value = sessionStorage.getItem("routellm-admin-key") || "";
$("controls").addEventListener("submit", (event) => { event.preventDefault(); load(); });
$("window").addEventListener("change", load);
$("slider").addEventListener("input", () => {
  clearTimeout(whatIfTimer);
  whatIfTimer = setTimeout(loadWhatIf, 120);
});
load();
