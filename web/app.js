// The live view: polls /api/v1/{services,series,logs} and draws the panels. Every value
// from the API is written with textContent or as a chart value, never as markup.
"use strict";

const RANGES = [[300, "5 min"], [900, "15 min"], [1800, "30 min"], [3600, "1 h"],
                [10800, "3 h"], [21600, "6 h"], [43200, "12 h"], [86400, "24 h"]];
const state = { service: "", range: 300, filter: "", interval: 5, keep: 3600, charts: {} };

function params() {
  const hash = new URLSearchParams(location.hash.slice(1));
  state.service = hash.get("service") || "";
  state.range = Number(hash.get("range")) || 300;
  state.filter = hash.get("filter") || "";
}

function saveParams() {
  const hash = new URLSearchParams();
  if (state.service) hash.set("service", state.service);
  hash.set("range", String(state.range));
  if (state.filter) hash.set("filter", state.filter);
  history.replaceState(null, "", "#" + hash.toString());
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function number(value, digits) {
  if (value === null || value === undefined || !isFinite(value)) return "–";
  return Number(value).toFixed(digits);
}

function seconds(value) {
  if (value === null || value === undefined || !isFinite(value)) return "–";
  return value < 1 ? (value * 1000).toFixed(1) + " ms" : value.toFixed(3) + " s";
}

function bytes(value) {
  if (value === null || value === undefined || !isFinite(value)) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return value.toFixed(1) + " " + units[i];
}

// A panel's value: shown as text, and as data-value (a plain number) for scripts and tests.
function setValue(panelId, value, text, level) {
  const element = document.querySelector("#" + panelId + " .value");
  element.textContent = text;
  element.dataset.value = (value === null || value === undefined || !isFinite(value))
    ? "" : String(value);
  element.classList.remove("ok", "warn", "bad");
  if (level) element.classList.add(level);
}

function setSub(panelId, text) {
  document.querySelector("#" + panelId + " .sub").textContent = text;
}

function fillTable(panelId, rows) {
  const body = document.querySelector("#" + panelId + " tbody");
  body.replaceChildren();
  for (const cells of rows) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}

function chart(panelId, labels, rows, options) {
  const graph = document.querySelector("#" + panelId + " .graph");
  const data = rows.length ? rows : [[new Date(), ...labels.slice(1).map(() => null)]];
  const settings = Object.assign({ labels: labels, legend: "always", connectSeparatedPoints:
    false, drawPoints: false, strokeWidth: 1.5, labelsKMB: true, height: 160,
    labelsSeparateLines: false }, options || {});
  if (!state.charts[panelId]) {
    state.charts[panelId] = new Dygraph(graph, data, settings);
  } else {
    state.charts[panelId].updateOptions(Object.assign({ file: data }, settings));
  }
  graph.dataset.points = String(rows.length);
}

function finite(value) {
  return value === null || value === undefined || !isFinite(value) ? null : value;
}

async function refreshServices() {
  const services = await getJson("/api/v1/services");
  state.interval = services.interval_seconds;
  state.keep = services.keep_seconds;
  document.getElementById("metrics-link").setAttribute("href", services.telemetry_path);
  const select = document.getElementById("service");
  const names = services.services.map((s) => s.name);
  const shown = Array.from(select.options).slice(1).map((o) => o.value);
  if (names.join("\n") !== shown.join("\n")) {
    while (select.options.length > 1) select.remove(1);
    for (const name of names) {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = name;
      select.appendChild(option);
    }
  }
  select.value = state.service;
  const ranges = document.getElementById("range");
  if (!ranges.options.length) {
    for (const [value, label] of RANGES) {
      if (value > state.keep) break;
      const option = document.createElement("option");
      option.value = String(value);
      option.textContent = label;
      ranges.appendChild(option);
    }
  }
  ranges.value = String(state.range);
}

async function refreshSeries() {
  const query = new URLSearchParams({ range: String(state.range) });
  if (state.service) query.set("service", state.service);
  const series = await getJson("/api/v1/series?" + query.toString());
  const now = series.current;
  const errors = (now.errors_4xx_per_second || 0) + (now.errors_5xx_per_second || 0);
  const hasRequests = now.requests_per_second !== null;
  setValue("panel-total-requests", now.requests_per_second,
           number(now.requests_per_second, 2) + " req/s");
  setSub("panel-total-requests", hasRequests
    ? Math.round(now.requests) + " requests in the last " + Math.round(series.window_seconds) + " s"
    : "no requests seen yet");
  // The reference guide's thresholds: yellow from 1/s, red from 5/s.
  setValue("panel-errors", hasRequests ? errors : null, number(errors, 2) + " /s",
           errors >= 5 ? "bad" : errors >= 1 ? "warn" : "ok");
  setSub("panel-errors", "4xx " + number(now.errors_4xx_per_second, 2) + " /s · 5xx " +
         number(now.errors_5xx_per_second, 2) + " /s");
  setValue("panel-cpu", now.cpu_percent, number(now.cpu_percent, 1) + " %",
           now.cpu_percent >= 80 ? "bad" : now.cpu_percent >= 50 ? "warn" : "ok");
  setValue("panel-memory", now.resident_bytes, bytes(now.resident_bytes),
           now.resident_bytes >= 1024 * 1048576 ? "bad"
             : now.resident_bytes >= 512 * 1048576 ? "warn" : "ok");
  const rpm = finite(now.requests_per_second) === null ? null : now.requests_per_second * 60;
  setValue("panel-rpm", rpm, number(rpm, 1) + " req/min");
  setValue("panel-average", now.average_duration_seconds, seconds(now.average_duration_seconds));
  setValue("panel-p60", now.p60_seconds, seconds(now.p60_seconds));

  const points = series.points;
  const time = (p) => new Date(p.t * 1000);
  chart("panel-rpm", ["time", "req/min", "errors/min"], points.map((p) => [time(p),
    finite(p.requests_per_second) === null ? null : p.requests_per_second * 60,
    finite(p.errors_4xx_per_second) === null ? null
      : (p.errors_4xx_per_second + p.errors_5xx_per_second) * 60]));
  chart("panel-average", ["time", "average (s)"],
        points.map((p) => [time(p), finite(p.average_duration_seconds)]));
  chart("panel-p60", ["time", "P60 (s)", "P95 (s)"],
        points.map((p) => [time(p), finite(p.p60_seconds), finite(p.p95_seconds)]));
  chart("panel-resources", ["time", "CPU %", "memory MiB"], points.map((p) => [time(p),
    finite(p.cpu_percent),
    finite(p.resident_bytes) === null ? null : p.resident_bytes / 1048576]),
    { series: { "memory MiB": { axis: "y2" } }, axes: { y2: { independentTicks: true } } });

  const classes = now.status_classes_per_second;
  fillTable("panel-status-codes", Object.keys(classes).filter((k) => classes[k] !== null &&
    classes[k] > 0).map((k) => [k, number(classes[k], 3)]));
  const routes = series.top_routes;
  fillTable("panel-top-rate", routes.slice(0, 10).map((r) => [r.route,
    number(r.requests_per_second * 60, 1)]));
  const byP95 = routes.filter((r) => r.p95_seconds !== null)
    .sort((a, b) => b.p95_seconds - a.p95_seconds).slice(0, 10);
  fillTable("panel-top-p95", byP95.map((r) => [r.route, seconds(r.p95_seconds)]));
}

async function refreshLogs() {
  const query = new URLSearchParams({ limit: "200" });
  if (state.service) query.set("service", state.service);
  if (state.filter) query.set("filter", state.filter);
  const logs = await getJson("/api/v1/logs?" + query.toString());
  const body = document.getElementById("log-lines");
  body.replaceChildren();
  for (const line of logs.lines) {
    const tr = document.createElement("tr");
    tr.className = "level-" + line.level.toLowerCase();
    const cells = [new Date(line.time * 1000).toISOString().slice(11, 23), line.service,
      line.level, line.method, line.path + (line.path_cut ? "…" : ""), String(line.status),
      line.duration_seconds === null ? "" : seconds(line.duration_seconds)];
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.appendChild(td);
    }
    tr.dataset.path = line.path;
    tr.dataset.status = String(line.status);
    body.appendChild(tr);
  }
  setValue("panel-logs", logs.lines.length, logs.lines.length + " lines");
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  const status = document.getElementById("status");
  try {
    await refreshServices();
    await Promise.all([refreshSeries(), refreshLogs()]);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.classList.remove("bad");
    document.body.dataset.loaded = "true";
  } catch (error) {
    status.textContent = String(error.message || error);
    status.classList.add("bad");
  }
  timer = setTimeout(refresh, Math.max(2, state.interval) * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  params();
  document.getElementById("filter").value = state.filter;
  document.getElementById("service").addEventListener("change", (event) => {
    state.service = event.target.value;
    saveParams();
    refresh();
  });
  document.getElementById("range").addEventListener("change", (event) => {
    state.range = Number(event.target.value);
    saveParams();
    refresh();
  });
  let typing = null;
  document.getElementById("filter").addEventListener("input", (event) => {
    state.filter = event.target.value;
    clearTimeout(typing);
    typing = setTimeout(() => { saveParams(); refreshLogs(); }, 250);
  });
  refresh();
});
