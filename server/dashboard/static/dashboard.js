// fedcare dashboard: polls /api/state every 2 s and renders it. Every value
// from the run folder goes into the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 2000;
const COLOURS = ["#0b57d0", "#b3261e", "#1b6e20", "#8a5300", "#6a1b9a", "#00695c"];
const LABELS = {
  auroc: "AUROC", auprc: "AUPRC", f1: "F1", mae_days: "MAE (days)",
  rmse_days: "RMSE (days)", local_only: "local-only", federated: "federated",
  centralized: "centralized",
};
const charts = {};

function $(id) { return document.getElementById(id); }
function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
function fmt(v, digits) {
  if (v === null || v === undefined) return "n/a";
  return typeof v === "number" ? v.toFixed(digits === undefined ? 3 : digits) : String(v);
}
function when(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString();
}
function label(name) { return LABELS[name] || name; }

async function poll() {
  try {
    const response = await fetch("api/state", { cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) { showLogin(); return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    $("login").hidden = true;
    render(await response.json());
  } catch (err) {
    setMessage("error", "Cannot reach the dashboard server (" + err.message + "); retrying.");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function setMessage(state, text) {
  const box = $("message");
  box.dataset.state = state;
  box.textContent = text;
  box.hidden = !text;
}

function showLogin() {
  $("login").hidden = false;
  setMessage("login", "This dashboard needs its token.");
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("api/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: $("token").value }), credentials: "same-origin",
  });
  $("login-error").textContent = response.ok ? "" : "Wrong token.";
  if (response.ok) { $("token").value = ""; $("login").hidden = true; }
});

function render(s) {
  $("run-dir").textContent = "Run folder: " + s.run_dir;
  const present = !["missing", "empty"].includes(s.status.state);
  setMessage(s.status.state, s.status.message);
  for (const id of ["run", "hospitals", "audit"]) $(id).hidden = !present;
  $("metrics").hidden = !present || !s.rounds.rounds.length;
  $("downloads").hidden = !s.downloads.length;
  if (!present) return;
  renderRun(s);
  renderCharts(s);
  renderComparison(s.comparison);
  renderHospitals(s);
  renderAudit(s.audit);
  renderDownloads(s.downloads);
}

function renderRun(s) {
  const r = s.run;
  const planned = r.rounds_planned || 0;
  const running = ["running", "starting"].includes(s.status.state);
  const current = running && r.rounds_done < planned ? r.rounds_done + 1 : r.rounds_done;
  $("round-counter").textContent = !planned
    ? "Waiting for the federation to start"
    : running
      ? "Round " + current + " of " + planned + " under way (" + r.rounds_done + " done)"
      : r.rounds_done + " of " + planned + " rounds done";
  const bar = $("rounds-bar");
  bar.setAttribute("aria-valuemax", String(planned));
  bar.setAttribute("aria-valuenow", String(r.rounds_done));
  bar.setAttribute("aria-valuetext", r.rounds_done + " of " + planned + " rounds done");
  bar.firstElementChild.style.width = planned ? (100 * r.rounds_done / planned) + "%" : "0";
  const sa = r.secagg;
  const facts = [
    ["Run", r.run_name || "(not named yet)"],
    ["Task", r.task + (r.model ? " (model " + r.model + ")" : "")],
    ["Strategy", r.strategy + (r.strategy === "fedprox" ? ", mu " + r.proximal_mu : "")],
    ["Privacy guarantee", r.privacy.text],
    ["Epsilon (this run)", r.privacy.dp ? fmt(r.privacy.epsilon, 2) : "none (no DP)"],
    ["Delta", r.privacy.delta === null || r.privacy.delta === undefined
      ? "set by each hospital (not known to the aggregator)" : String(r.privacy.delta)],
    ["Privacy unit", r.privacy.unit || (r.privacy.dp ? "set by each hospital" : "none")],
    ["SecAgg+", sa.enabled
      ? "on: " + sa.num_shares + " shares, reconstruction threshold " + sa.reconstruction_threshold
        + ", clipping range " + sa.clipping_range + ", quantization range " + sa.quantization_range
        + ", at least " + sa.min_hospitals + " hospitals"
      : "off: updates reach the aggregator unmasked"],
    ["Status", s.status.message],
  ];
  const list = $("run-facts");
  list.replaceChildren();
  for (const [k, v] of facts) { list.append(el("dt", k), el("dd", v)); }
}

function chartSpecs(s) {
  const rounds = s.rounds;
  const specs = [];
  const pooled = Object.keys(rounds.pooled);
  if (pooled.length) {
    const series = pooled.map((m) => ({ name: "pooled " + label(m), values: rounds.pooled[m] }));
    const c = s.comparison;
    if (c && c.metric) {
      for (const arm of ["local_only", "centralized"]) {
        const v = c.means[arm];
        if (v !== null && v !== undefined) {
          series.push({
            name: label(arm) + " " + label(c.metric) + " (mean over hospitals, simulation)",
            values: rounds.rounds.map(() => v), dash: true,
          });
        }
      }
    }
    specs.push({ id: "pooled", title: "Pooled test metrics", series: series });
  }
  const losses = Object.keys(rounds.loss);
  if (losses.length) {
    specs.push({
      id: "loss", title: "Loss",
      series: losses.map((n) => ({ name: n, values: rounds.loss[n] })),
    });
  }
  return specs;
}

function renderCharts(s) {
  const holder = $("charts");
  for (const spec of chartSpecs(s)) {
    const key = spec.id + ":" + spec.series.map((x) => x.name).join("|");
    let entry = charts[spec.id];
    if (!entry || entry.key !== key) {
      if (entry) { entry.plot.destroy(); entry.box.remove(); }
      entry = makeChart(holder, spec, key);
      charts[spec.id] = entry;
    }
    const data = [s.rounds.rounds, ...spec.series.map((x) => x.values)];
    entry.plot.setData(data);
    fillChartTable(entry.table, s.rounds.rounds, spec.series);
  }
}

function makeChart(holder, spec, key) {
  const box = el("figure", null, { class: "chart", "aria-labelledby": "chart-" + spec.id });
  box.append(el("h3", spec.title + " by round", { id: "chart-" + spec.id }));
  const canvasBox = el("div", null, {
    role: "img", "aria-label": spec.title + " by round; the numbers are in the table below",
  });
  box.append(canvasBox);
  const details = el("details");
  details.append(el("summary", spec.title + ": the numbers"));
  const table = el("table");
  details.append(table);
  box.append(details);
  holder.append(box);
  const opts = {
    width: Math.max(320, Math.min(holder.clientWidth || 900, 1150)),
    height: 260,
    scales: { x: { time: false } },
    axes: [{ label: "round", incrs: [1, 2, 5, 10, 20, 50] }, { label: spec.title }],
    series: [{ label: "round" }].concat(spec.series.map((x, i) => ({
      label: x.name, stroke: COLOURS[i % COLOURS.length], width: 2,
      dash: x.dash ? [8, 5] : undefined, points: { show: !x.dash, size: 7 },
      spanGaps: false,
    }))),
  };
  const plot = new uPlot(opts, [[]].concat(spec.series.map(() => [])), canvasBox);
  return { key: key, plot: plot, box: box, table: table };
}

function fillChartTable(table, rounds, series) {
  const head = el("tr");
  head.append(el("th", "round", { scope: "col" }));
  for (const x of series) head.append(el("th", x.name, { scope: "col" }));
  const rows = rounds.map((r, i) => {
    const tr = el("tr");
    tr.append(el("th", r, { scope: "row" }));
    for (const x of series) tr.append(el("td", fmt(x.values[i]), { class: "num" }));
    return tr;
  });
  table.replaceChildren(el("thead"), el("tbody"));
  table.tHead.append(head);
  table.tBodies[0].append(...rows);
}

function renderComparison(c) {
  const box = $("comparison");
  box.replaceChildren();
  if (!c) return;
  box.append(el("h3", "Local-only, federated and centralized: test " + label(c.metric)
    + " per hospital (simulation only)"));
  const table = el("table", null, { id: "comparison-table" });
  const head = el("tr");
  for (const h of ["hospital", "local-only", "federated", "centralized"]) {
    head.append(el("th", h, { scope: "col" }));
  }
  table.append(el("thead"), el("tbody"));
  table.tHead.append(head);
  const rows = Object.entries(c.hospitals).concat([["mean", c.means]]);
  for (const [hid, v] of rows) {
    const tr = el("tr");
    tr.append(el("th", hid, { scope: "row" }));
    for (const arm of ["local_only", "federated", "centralized"]) {
      tr.append(el("td", fmt(v[arm]), { class: "num" }));
    }
    table.tBodies[0].append(tr);
  }
  box.append(table);
  if (c.cost) box.append(el("p", c.cost));
}

function renderHospitals(s) {
  $("hospitals-note").textContent = s.simulation
    ? "A simulation: the epsilon column is each simulated hospital's own report "
      + "(in a deployment the aggregator never learns a hospital's spend)."
    : "What the aggregator knows. Each hospital's epsilon spend stays in its own "
      + "ledger (fedcare budget at the hospital) and is not shown here.";
  const body = $("hospital-table").tBodies[0];
  body.replaceChildren();
  if (!s.hospitals.length) {
    const tr = el("tr");
    tr.append(el("td", "No hospital has been seen yet.", { colspan: "5" }));
    body.append(tr);
  }
  for (const h of s.hospitals) {
    const tr = el("tr");
    tr.append(el("th", h.hospital, { scope: "row" }));
    tr.append(el("td", h.last_seen_round === null
      ? "not yet" : "round " + h.last_seen_round + (h.last_seen_time ? ", " + when(h.last_seen_time) : "")));
    tr.append(el("td", h.rounds_joined, { class: "num" }));
    const problems = el("td");
    const all = (h.problems || []).map((p) => "round " + p.round + ": " + p.status
      + (p.reason ? " (" + p.reason + ")" : ""));
    for (const d of h.simulation_declines || []) {
      all.push("round " + d.round + ": declined (" + d.reason + ") [simulation only]");
    }
    problems.textContent = all.length ? all.join("; ") : "none";
    tr.append(problems);
    tr.append(epsilonCell(h.epsilon));
    body.append(tr);
  }
}

function epsilonCell(e) {
  const td = el("td");
  if (!e) { td.textContent = "not known to the aggregator"; return td; }
  if (e.spent === null || e.budget === null) {
    td.textContent = "budget " + fmt(e.budget, 2) + ", nothing reported yet";
  } else {
    const pct = Math.round(100 * e.fraction);
    const words = fmt(e.spent, 2) + " of " + fmt(e.budget, 2) + " (" + pct + "%)"
      + (e.level === "red" ? ", near the limit" : e.level === "amber" ? ", getting close" : "");
    const bar = el("div", null, {
      class: "bar", "data-level": e.level, role: "progressbar",
      "aria-valuemin": "0", "aria-valuemax": String(e.budget), "aria-valuenow": String(e.spent),
      "aria-valuetext": words, "aria-label": "epsilon spent",
    });
    const fill = el("span");
    fill.style.width = Math.min(100, pct) + "%";
    bar.append(fill);
    td.append(el("span", words, { class: "epsilon level-" + e.level }), bar);
  }
  td.append(el("span", "simulation only", { class: "tag" }));
  return td;
}

function renderAudit(a) {
  const p = $("audit-status");
  p.dataset.status = a.status;
  p.textContent = a.text;
  const body = $("audit-table").tBodies[0];
  body.replaceChildren();
  for (const r of a.records) {
    const tr = el("tr");
    tr.append(el("th", r.round, { scope: "row" }), el("td", r.time),
      el("td", (r.participating || []).join(", ")),
      el("td", (r.dropped || []).map((d) => d.hospital + " " + d.status).join(", ") || "none"),
      el("td", r.model_after + "..."), el("td", r.hash + "..."));
    body.append(tr);
  }
}

function renderDownloads(items) {
  const list = $("download-list");
  list.replaceChildren();
  for (const item of items) {
    const li = el("li");
    li.append(el("a", item.label + " (" + item.name + ")", { href: item.href }));
    list.append(li);
  }
}

window.addEventListener("resize", () => {
  const width = Math.max(320, Math.min($("charts").clientWidth || 900, 1150));
  for (const entry of Object.values(charts)) entry.plot.setSize({ width: width, height: 260 });
});

poll();
