// The planners' app: every number on the page comes from the JSON API of this server.
// The API key lives in the variable `session.key` only: never in a URL, a cookie or web storage.
import { armColor, fmt, hideHover, lineChart, showHover } from "./chart.js";

const $ = (id) => document.getElementById(id);
const session = { key: null, scopes: [] };
const state = {
  campaign: null, arms: [], scores: null, curve: null, point: null, pinned: null, minRoi: null,
  allocation: null, polls: new Set(), chart: null, analysis: null,
};

// ------------------------------------------------------------------------------------------
// the API
// ------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, detail, field) { super(detail); this.status = status; this.field = field; }
}

function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return JSON.stringify(detail);
}

async function api(path, { method = "GET", json, form, raw = false, key = session.key } = {}) {
  const headers = { "X-API-Key": key || "" };
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  const r = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
  if (!r.ok) {
    let detail = `${r.status} ${r.statusText}`, field;
    try { const j = await r.json(); detail = detailText(j.detail); field = j.field; } catch (e) { /* not JSON */ }
    throw new ApiError(r.status, detail, field);
  }
  return raw ? r : r.json();
}

function notice(text, isError = false) {
  const n = $("notice");
  n.textContent = text;
  n.classList.toggle("error", isError);
}

function sleep(ms) { return new Promise((res) => setTimeout(res, ms)); }

// ------------------------------------------------------------------------------------------
// sign in / out
// ------------------------------------------------------------------------------------------
async function signIn(ev) {
  ev.preventDefault();
  const input = $("api-key");
  const key = input.value.trim();
  $("signin-error").textContent = "";
  if (!key) { $("signin-error").textContent = "Enter an API key."; return; }
  try {
    const s = await api("/session", { key });
    session.key = key;
    session.scopes = s.scopes;
  } catch (err) {
    $("signin-error").textContent = err.status === 401 ? `Not signed in: ${err.message}.` : err.message;
    input.setAttribute("aria-invalid", "true");
    return;
  }
  input.value = "";
  input.removeAttribute("aria-invalid");
  $("signin-panel").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  const readOnly = !session.scopes.includes("write");
  $("who-scopes").textContent = readOnly ? "Signed in: read only (you can look, not start jobs)" : "Signed in: read and write";
  document.body.classList.toggle("read-only", readOnly);
  await Promise.all([loadCampaigns(), loadLearners()]);
  document.body.dataset.signedIn = "true";
}

function signOut() {
  session.key = null;
  session.scopes = [];
  for (const p of state.polls) p.cancelled = true;
  window.location.reload(); // drops every number the key fetched
}

// ------------------------------------------------------------------------------------------
// campaigns
// ------------------------------------------------------------------------------------------
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function when(t) { return t ? new Date(t * 1000).toLocaleString() : "–"; }

async function loadCampaigns() {
  const list = await api("/campaigns");
  const body = $("campaigns").querySelector("tbody");
  body.replaceChildren();
  $("campaigns-empty").hidden = list.length > 0;
  $("upload-box").open = list.length === 0;
  for (const c of list.slice().reverse()) {
    const tr = document.createElement("tr");
    cell(tr, c.name);
    cell(tr, c.id, "mono");
    cell(tr, fmt(c.files.train_rows ?? NaN), "num");
    cell(tr, fmt(c.files.candidates_rows ?? NaN), "num");
    cell(tr, when(c.created_at));
    const td = cell(tr, "");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Open";
    b.setAttribute("aria-label", `Open campaign ${c.name} (${c.id})`);
    b.addEventListener("click", () => openCampaign(c.id));
    td.appendChild(b);
    body.appendChild(tr);
  }
  return list;
}

async function loadLearners() {
  const sel = $("train-learner");
  let names = ["auto"];
  try {
    const spec = await (await fetch("/openapi.json", { credentials: "omit" })).json();
    const learner = spec.components.schemas.ModelSettings.properties.learner;
    names = (learner.anyOf || [learner]).flatMap((x) => x.enum || []);
  } catch (e) { /* keep auto */ }
  sel.replaceChildren(new Option("the config's learner", ""), ...names.map((n) => new Option(n, n)));
}

const UPLOAD_FIELDS = ["config", "train", "candidates", "panel", "drivers"];

function clearUploadErrors() {
  for (const f of UPLOAD_FIELDS) {
    $(`up-${f}-error`).textContent = "";
    $(`up-${f}`).removeAttribute("aria-invalid");
  }
  $("upload-error").textContent = "";
}

async function upload(ev) {
  ev.preventDefault();
  clearUploadErrors();
  const form = new FormData();
  for (const f of UPLOAD_FIELDS) {
    const file = $(`up-${f}`).files[0];
    if (file) form.append(f, file, file.name);
  }
  $("upload-submit").disabled = true;
  try {
    const c = await api("/campaigns", { method: "POST", form });
    notice(`Campaign ${c.name} uploaded (${c.id}).`);
    $("upload").reset();
    await loadCampaigns();
    await openCampaign(c.id);
  } catch (err) {
    if (err.field && $(`up-${err.field}-error`)) {
      $(`up-${err.field}-error`).textContent = err.message;
      $(`up-${err.field}`).setAttribute("aria-invalid", "true");
      $(`up-${err.field}`).focus();
    } else {
      $("upload-error").textContent = err.message;
    }
  } finally {
    $("upload-submit").disabled = false;
  }
}

async function campaignJobs(cid) {
  const [models, scores] = await Promise.all([api("/models?limit=1000"), api("/scores?limit=1000")]);
  return { models: models.filter((j) => j.campaign_id === cid), scores: scores.filter((j) => j.campaign_id === cid) };
}

async function openCampaign(cid) {
  const c = await api(`/campaigns/${cid}`);
  state.campaign = c;
  state.arms = (c.config.arms || []).map((a) => a.name);
  $("campaign-panel").hidden = false;
  $("campaign-title").textContent = `Campaign: ${c.name}`;
  const cons = c.config.constraints || {};
  $("campaign-facts").textContent = `${c.id} · arms ${state.arms.join(", ")} · budget ${fmt(cons.budget ?? NaN)}`
    + (cons.min_roi != null ? ` · ROI floor ${fmt(cons.min_roi)}` : "")
    + ` · ${fmt(c.files.train_rows ?? NaN)} past rows, ${fmt(c.files.candidates_rows ?? NaN)} candidates`;
  $("progress").textContent = "";
  buildCaps();
  $("check-panel").hidden = false;
  $("model-check").hidden = true;
  $("policy-check").hidden = true;
  $("analysis-result").hidden = true;
  $("analysis-progress").textContent = "";
  await Promise.all([refreshJobs(), loadAnalyses()]);
}

function jobDetail(j) {
  if (j.error) return j.error;
  if (j.kind === "train" && j.result) return `learner ${j.result.learner}, ${fmt(j.result.n_train)} rows`;
  if (j.kind === "score" && j.result) return `${fmt(j.result.n_candidates)} candidates scored`;
  return "";
}

async function refreshJobs(selectScores = null) {
  const { models, scores } = await campaignJobs(state.campaign.id);
  const body = $("jobs").querySelector("tbody");
  body.replaceChildren();
  for (const j of [...models, ...scores].sort((a, b) => b.created_at - a.created_at)) {
    const tr = document.createElement("tr");
    cell(tr, j.kind === "train" ? "model" : "scores");
    cell(tr, j.id, "mono");
    cell(tr, j.status, `status-${j.status}`);
    cell(tr, j.elapsed_seconds != null ? `${j.elapsed_seconds.toFixed(1)} s` : "–", "num");
    cell(tr, jobDetail(j));
    body.appendChild(tr);
  }
  const done = scores.filter((s) => s.status === "done").sort((a, b) => b.created_at - a.created_at);
  const sel = $("scores-select");
  sel.replaceChildren(...done.map((s) => new Option(`${s.id} (${fmt(s.result.n_candidates)} candidates)`, s.id)));
  $("whatif-panel").hidden = done.length === 0;
  $("decide-panel").hidden = done.length === 0;
  if (done.length) {
    sel.value = selectScores || done[0].id;
    await openScores(sel.value);
  }
}

// ------------------------------------------------------------------------------------------
// jobs: start and follow
// ------------------------------------------------------------------------------------------
async function follow(path, label, region) {
  const poll = { cancelled: false };
  state.polls.add(poll);
  try {
    for (;;) {
      const j = await api(path);
      if (poll.cancelled) throw new Error("cancelled");
      const secs = j.elapsed_seconds != null ? `, ${j.elapsed_seconds.toFixed(1)} s` : "";
      region.textContent = `${label}: ${j.status}${secs}` + (j.error ? ` — ${j.error}` : "");
      region.className = `progress status-${j.status}`;
      if (j.status === "done" || j.status === "failed") return j;
      await sleep(400);
    }
  } finally {
    state.polls.delete(poll);
  }
}

function refusal(err, region) {
  region.textContent = err.status === 403 ? `Refused: ${err.message}. Ask for a key with write access.` : err.message;
  region.className = "progress status-failed";
}

async function train(ev) {
  ev.preventDefault();
  const region = $("progress");
  const model = {};
  if ($("train-learner").value) model.learner = $("train-learner").value;
  if ($("train-folds").value) model.folds = Number($("train-folds").value);
  $("train-submit").disabled = true;
  try {
    const job = await api("/models", { method: "POST", json: { campaign_id: state.campaign.id, model } });
    const m = await follow(`/models/${job.id}`, `Training ${job.id}`, region);
    if (m.status !== "done") { await refreshJobs(); return; }
    const sjob = await api("/scores", { method: "POST", json: { model_id: m.id } });
    const s = await follow(`/scores/${sjob.id}`, `Scoring the candidates with ${m.id} (learner ${m.result.learner})`, region);
    await refreshJobs(s.status === "done" ? s.id : null);
  } catch (err) {
    refusal(err, region);
  } finally {
    $("train-submit").disabled = false;
  }
}

// ------------------------------------------------------------------------------------------
// what-if: the curve and the point under the slider
// ------------------------------------------------------------------------------------------
function roiFloor() {
  const v = $("roi-input").value;
  return v === "" ? null : Number(v);
}

async function openScores(sid) {
  state.scores = await api(`/scores/${sid}`);
  state.allocation = null;
  showDrift(null);
  state.evidence = null;
  $("alloc-result").hidden = true;
  $("alloc-progress").textContent = "";
  await loadCurve(true);
  loadCheck(state.scores.parent_id);
}

async function loadCurve(resetBudget = false) {
  $("whatif-error").textContent = "";
  let plan;
  try {
    plan = await api("/plans", { method: "POST", json: { scores_id: state.scores.id, n_points: 80, min_roi: roiFloor() } });
  } catch (err) {
    $("whatif-error").textContent = err.message;
    clearCurve();
    return;
  }
  state.curve = plan;
  state.minRoi = plan.min_roi;
  state.allocatedMinRoi = plan.allocated_min_roi;
  state.minRoiConfidence = plan.min_roi_confidence;
  state.costWeight = plan.allocated_cost_weight;
  const top = plan.points[plan.points.length - 1].budget;
  // a curve that stops at zero: no user gains by the model's estimates (the budget warning of a list says so too)
  $("curve-empty").hidden = top > 0;
  $("curve-empty").textContent = top > 0 ? "" : `No user gains under the objective '${plan.objective}' by the model's `
    + "estimates" + (plan.min_roi != null ? ` and the ROI floor ${fmt(plan.min_roi)}` : "")
    + ": any budget stays unspent. See the check below (the learner comparison and the held-out measurement).";
  const slider = $("budget-slider");
  slider.max = String(Math.max(top, 1));
  slider.step = String(Math.max(top / 1000, 1e-6));
  if (resetBudget || Number(slider.value) > top) {
    const want = (state.campaign.config.constraints || {}).budget;
    slider.value = String(Math.min(want ?? top / 2, top));
  }
  $("roi-input").placeholder = plan.min_roi != null ? `campaign's: ${fmt(plan.min_roi)}` : "none";
  await askPoint(Number(slider.value));
}

// no curve for what was asked (e.g. a floor no user reaches, refused by the service as the CLI refuses it): nothing of
// the last answer stays on screen as if it were this one's
function clearCurve() {
  state.curve = null;
  state.point = null;
  $("curve").replaceChildren();
  $("curve-desc").textContent = "";
  $("curve-empty").hidden = true;
  $("curve-legend").hidden = true;
  $("point").replaceChildren();
  $("point-arms").querySelector("tbody").replaceChildren();
  $("point-warning").hidden = true;
  showCompare();
}

// one request in flight; while it runs only the latest slider value waits
let inFlight = false, pending = null;
async function askPoint(budget) {
  if (!state.curve) return; // no curve at this floor: the error above says why
  if (inFlight) { pending = budget; return; }
  inFlight = true;
  const t0 = performance.now();
  try {
    const plan = await api("/plans", { method: "POST", json: { scores_id: state.scores.id, budgets: [budget], min_roi: roiFloor() } });
    state.point = plan.points[0];
    $("whatif-error").textContent = "";
    showPoint();
    const svg = $("curve");
    svg.dataset.roundtripMs = (performance.now() - t0).toFixed(2);
    svg.dataset.budget = String(budget);
  } catch (err) {
    $("whatif-error").textContent = err.message;
  } finally {
    inFlight = false;
    if (pending !== null) { const b = pending; pending = null; askPoint(b); }
  }
}

const METRIC_LABELS = {
  incremental_conversions: "incremental conversions", incremental_revenue: "incremental revenue", roi: "ROI",
};

function drawCurve() {
  const metric = $("metric-select").value;
  const pts = state.curve.points;
  const p = state.point;
  const xs = pts.map((q) => q.budget);
  // the forecast (the held-out measurement's correction) and its 90% band, where the model has one:
  // the same figures an allocation at each budget carries (pipeline.curve_forecast)
  const hasForecast = metric !== "roi" && pts.every((q) => q.forecast);
  const series = [{ name: metric, xs, ys: pts.map((q) => q[metric] ?? NaN), color: armColor(1) }];
  if (hasForecast) {
    series.push({ name: `forecast ${metric}`, xs, ys: pts.map((q) => q.forecast[metric]), color: armColor(1), dashed: true });
  }
  state.chart = lineChart($("curve"), {
    series, xLabel: "budget", yLabel: METRIC_LABELS[metric],
    marker: p ? { x: p.budget, y: p[metric] ?? NaN } : null,
    band: hasForecast ? { name: `forecast ${metric}, 90% interval`, xs, color: armColor(1),
      lo: pts.map((q) => q.forecast.interval90[metric][0]), hi: pts.map((q) => q.forecast.interval90[metric][1]) } : null,
  });
  $("curve-legend").hidden = !hasForecast;
  $("curve-desc").textContent = `Budget curve of ${METRIC_LABELS[metric]} from 0 to ${fmt(pts[pts.length - 1].budget)}`
    + (hasForecast ? ", the model's expected values (solid), the forecast (dashed) and its 90% interval (band)" : "")
    + (p ? `; chosen budget ${fmt(p.budget)} gives ${fmt(p[metric])}.` : ".");
}

function facts(dl, rows) {
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v;
    dd.dataset.key = k;
    dl.append(dt, dd);
  }
}

function armRows(tbody, perArm, extra = null) {
  tbody.replaceChildren();
  state.arms.forEach((arm, i) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.backgroundColor = armColor(i); // CSSOM, allowed by the CSP (no inline style attribute)
    th.append(sw, arm);
    tr.appendChild(th);
    cell(tr, fmt(perArm[arm] ?? 0), "num");
    if (extra) cell(tr, fmt(extra[arm] ?? 0), "num");
    tbody.appendChild(tr);
  });
}

// a forecast with its 90% interval, as the targeting list shows it
function withInterval(f, key) {
  return f ? `${fmt(f[key])} (${fmt(f.interval90[key][0])} to ${fmt(f.interval90[key][1])})` : "–";
}

function pointRows(p) {
  const f = p.forecast;
  return [
    ["budget", fmt(p.budget)], ["spend", fmt(p.spend)],
    ["incremental conversions", fmt(p.incremental_conversions)],
    ["incremental revenue", fmt(p.incremental_revenue)], ["ROI", fmt(p.roi)],
    ["marginal gain per unit", fmt(p.marginal_gain_per_unit, 4)],
    ["forecast conversions (90% interval)", withInterval(f, "incremental_conversions")],
    ["forecast spend (90% interval)", withInterval(f, "spend")],
  ];
}

// whether the allocator held a number other than the planner's (a floor, a budget, the break-even 1), by the rule
// the CLI and the report use (pipeline.held_moved): two numbers within 1e-9 (relative) are one, so a held number
// that differs from the asked one in its last bits is not named as moved
function heldMoved(asked, held) {
  return asked != null && asked !== 0 && held != null && Math.abs(held - asked) > 1e-9 * Math.max(1, Math.abs(asked));
}

// net revenue: the break-even a curve (/plans) or a list (its summary) holds, the one the held-out twin showed pays
// (pipeline.allocation_cost_weight), named in the list's words where it moved off 1; none under other objectives
function breakEvenRows(weight) {
  return heldMoved(1, weight) ? [["break-even: incremental revenue over cost held at", fmt(weight)]] : [];
}

function showPoint() {
  const p = state.point;
  const slider = $("budget-slider");
  slider.setAttribute("aria-valuetext", `budget ${fmt(p.budget)}: ${fmt(p.incremental_conversions)} incremental conversions`);
  if (document.activeElement !== $("budget-input")) $("budget-input").value = String(Math.round(p.budget * 100) / 100);
  const held = heldMoved(state.minRoi, state.allocatedMinRoi)
    ? [[state.minRoiConfidence != null
      ? `floor on the expected ROI (held on the forecast, met with ${fmt(100 * state.minRoiConfidence)}% confidence)`
      : "floor on the expected ROI (held on the forecast)", fmt(state.allocatedMinRoi)]] : [];
  facts($("point"), [...pointRows(p), ["ROI floor", state.minRoi != null ? fmt(state.minRoi) : "none"], ...held,
    ...breakEvenRows(state.costWeight), ["re-solved under the floor", p.resolved ? "yes" : "no"]]);
  armRows($("point-arms").querySelector("tbody"), p.users_per_arm, p.spend_per_arm);
  // the warning an allocation at this budget would carry, in the same words
  const w = p.forecast?.warning;
  $("point-warning").textContent = w ? `Warning: forecast. ${w}` : "";
  $("point-warning").hidden = !w;
  drawCurve();
  showCompare();
}

function pin() {
  state.pinned = { label: `${state.campaign.name} @ ${fmt(state.point.budget)}`, point: state.point };
  showCompare();
}

function showCompare() {
  const t = $("compare");
  if (!state.pinned || !state.point) { t.hidden = true; return; }
  t.hidden = false;
  $("compare-a").textContent = `Pinned: ${state.pinned.label}`;
  $("compare-b").textContent = `Now: ${state.campaign.name} @ ${fmt(state.point.budget)}`;
  const a = pointRows(state.pinned.point), b = pointRows(state.point);
  const tbody = t.querySelector("tbody");
  tbody.replaceChildren();
  a.forEach(([k, v], i) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row"; th.textContent = k; tr.appendChild(th);
    cell(tr, v, "num"); cell(tr, b[i][1], "num");
    tbody.appendChild(tr);
  });
  const arms = new Set([...Object.keys(state.pinned.point.users_per_arm), ...Object.keys(state.point.users_per_arm)]);
  for (const arm of arms) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row"; th.textContent = `users on ${arm}`; tr.appendChild(th);
    cell(tr, fmt(state.pinned.point.users_per_arm[arm] ?? NaN), "num");
    cell(tr, fmt(state.point.users_per_arm[arm] ?? NaN), "num");
    tbody.appendChild(tr);
  }
}

function hover(ev) {
  if (!state.chart || !state.curve) return;
  const svg = $("curve");
  const box = svg.getBoundingClientRect();
  const px = ((ev.clientX - box.left) / box.width) * state.chart.W;
  const x = state.chart.invertX(px);
  const pts = state.curve.points;
  let best = pts[0];
  for (const q of pts) if (Math.abs(q.budget - x) < Math.abs(best.budget - x)) best = q;
  const metric = $("metric-select").value;
  showHover(state.chart, best.budget, best[metric] ?? NaN);
  const tip = $("tooltip");
  tip.hidden = false;
  tip.textContent = `budget ${fmt(best.budget)} · conversions ${fmt(best.incremental_conversions)} · `
    + `revenue ${fmt(best.incremental_revenue)} · ROI ${fmt(best.roi)}`
    + (best.forecast ? ` · forecast conversions ${withInterval(best.forecast, "incremental_conversions")}` : "");
  tip.style.left = `${Math.max(0, Math.min(ev.clientX - box.left + 12, box.width - tip.offsetWidth - 4))}px`;
  tip.style.top = `${ev.clientY - box.top + 12}px`;
}

function unhover() {
  if (state.chart) hideHover(state.chart);
  $("tooltip").hidden = true;
}

// ------------------------------------------------------------------------------------------
// decide: the targeting list
// ------------------------------------------------------------------------------------------
function buildCaps() {
  const fs = $("caps");
  fs.querySelectorAll(".cap").forEach((e) => e.remove());
  const control = (state.campaign.config.control || {}).name || state.arms[0];
  for (const arm of state.arms) {
    if (arm === control) continue;
    const div = document.createElement("div");
    div.className = "cap field";
    const id = `cap-${arm.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const label = document.createElement("label");
    label.htmlFor = id; label.textContent = `${arm}: most users`;
    const input = document.createElement("input");
    input.type = "number"; input.min = "0"; input.step = "1"; input.id = id; input.dataset.arm = arm;
    input.placeholder = "no cap";
    div.append(label, input);
    fs.appendChild(div);
  }
}

async function allocate(ev) {
  ev.preventDefault();
  const region = $("alloc-progress");
  const caps = {};
  for (const input of $("caps").querySelectorAll("input")) {
    if (input.value !== "") caps[input.dataset.arm] = { max_users: Number(input.value) };
  }
  const budget = state.point ? state.point.budget : Number($("budget-slider").value);
  const body = { scores_id: state.scores.id, budget, min_roi: roiFloor() };
  if (Object.keys(caps).length) body.arm_caps = caps;
  $("allocate-submit").disabled = true;
  try {
    const job = await api("/allocations", { method: "POST", json: body });
    const a = await follow(`/allocations/${job.id}`, `Targeting list ${job.id}`, region);
    if (a.status === "done") showAllocation(a);
  } catch (err) {
    refusal(err, region);
  } finally {
    $("allocate-submit").disabled = false;
  }
}

function showAllocation(a) {
  state.allocation = a;
  const s = a.result;
  $("alloc-result").hidden = false;
  // a new list has not been sent anywhere yet: the previous list's deliveries go
  $("push-progress").textContent = "";
  $("push-progress").className = "progress";
  $("deliveries").hidden = true;
  facts($("certificate"), [
    ["solver", `${s.solver} (${s.solver_status})`], ["objective", s.objective],
    ["upper bound (LP)", fmt(s.lp_upper_bound)], ["gap to the bound", s.gap != null ? s.gap.toExponential(2) : "–"],
    ["budget", fmt(s.budget ?? NaN)],
    // the budget held on the forecast: the model's expected spend the allocator held (pipeline.allocation_budget)
    ...(heldMoved(s.budget, s.allocated_budget)
      ? [["expected spend held at (budget on the forecast)", fmt(s.allocated_budget)]] : []),
    ...breakEvenRows(s.allocated_cost_weight),
    ["ROI floor", s.min_roi != null ? fmt(s.min_roi) : "none"],
  ]);
  // what the CLI prints first and the report puts on top, in its order (promo_opt/report/warnings.py): the
  // model's drift check, a budget left unspent, a forecast whose 90% interval does not show a gain, a past
  // campaign that shows no promotion's average effect (the model's evidence)
  const warnings = [["drift", state.drift?.shifted ? state.drift.message : null], ["budget", s.budget_use?.warning],
    ["forecast", s.forecast?.warning], ["evidence", state.evidence?.warning]].filter(([, w]) => w);
  $("alloc-warnings").replaceChildren(...warnings.map(([what, w]) => {
    const p = document.createElement("p");
    p.className = "field-error";
    p.textContent = `Warning: ${what}. ${w}`;
    return p;
  }));
  const e = s.expected, f = s.forecast, iv = f && f.interval90;
  facts($("forecast"), [
    ["expected incremental conversions", fmt(e.incremental_conversions)],
    ["expected spend", fmt(e.spend)], ["expected incremental revenue", fmt(e.incremental_revenue)],
    ["expected ROI", fmt(e.roi)],
    ...(f ? [["forecast conversions (winner's curse corrected)", fmt(f.incremental_conversions)],
      ["forecast spend (corrected)", fmt(f.spend)],
      ...(iv ? [["conversions, 90% interval", `${fmt(iv.incremental_conversions[0])} to ${fmt(iv.incremental_conversions[1])}`],
        ["spend, 90% interval", `${fmt(iv.spend[0])} to ${fmt(iv.spend[1])}`]] : [])]
      : [["forecast", "no correction saved with the model"]]),
    ["holdout (kept untreated)", `${fmt(s.holdout_size)} of ${fmt(s.n_candidates)} users`],
  ]);
  armRows($("alloc-arms").querySelector("tbody"), s.users_per_arm, s.spend_per_arm);
  showPolicyCheck(a);
}

async function download(ev) {
  const format = ev.currentTarget.dataset.format;
  const a = state.allocation;
  try {
    const r = await api(`/allocations/${a.id}/targets?format=${format}`, { raw: true });
    const blob = await r.blob();
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `targets-${a.id}.${format}`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    notice(`Downloaded targets-${a.id}.${format} (${fmt(blob.size)} bytes).`);
  } catch (err) {
    notice(err.message, true);
  }
}

async function push(ev) {
  ev.preventDefault();
  const region = $("push-progress");
  try {
    const job = await api(`/allocations/${state.allocation.id}/push`, { method: "POST",
      json: { url: $("push-url").value, batch_size: Number($("push-batch").value || 1000) } });
    await follow(`/pushes/${job.id}`, `Push ${job.id}`, region);
    const p = await api(`/pushes/${job.id}`);
    const t = $("deliveries");
    t.hidden = false;
    const tbody = t.querySelector("tbody");
    tbody.replaceChildren();
    for (const d of p.deliveries) {
      const tr = document.createElement("tr");
      cell(tr, String(d.batch), "num"); cell(tr, String(d.attempt), "num");
      cell(tr, d.status_code != null ? String(d.status_code) : "–", "num"); cell(tr, d.error || "");
      tbody.appendChild(tr);
    }
  } catch (err) {
    refusal(err, region);
  }
}

// ------------------------------------------------------------------------------------------
// check: the model's learner comparison, Qini curves and its policy valued off-policy
// ------------------------------------------------------------------------------------------
function headRow(table, names) {
  const tr = document.createElement("tr");
  for (const h of names) { const th = document.createElement("th"); th.scope = "col"; th.textContent = h; tr.appendChild(th); }
  table.querySelector("thead").replaceChildren(tr);
}

function rowHeader(tr, text) {
  const th = document.createElement("th");
  th.scope = "row"; th.textContent = text; tr.appendChild(th);
  return th;
}

function span(iv) { return iv && iv.ci_low != null ? `${fmt(iv.ci_low)} to ${fmt(iv.ci_high)}` : "–"; }

const TOTAL_LABELS = { incremental_conversions: "incremental conversions", incremental_revenue: "incremental revenue", spend: "spend" };

async function loadCheck(modelId) {
  let m;
  try { m = await api(`/models/${modelId}/metrics`); } catch (err) { $("model-check").hidden = true; return; }
  const sel = m.selection;
  if (!sel) { $("model-check").hidden = true; return; }
  $("check-panel").hidden = false;
  $("model-check").hidden = false;
  $("check-reason").textContent = sel.reason || "";
  const learners = Object.keys(sel.transformed_outcome_risk || {});
  const arms = [...new Set(learners.flatMap((n) => Object.keys((sel.uplift_metrics || {})[n] || {})))];
  headRow($("learners"), ["learner", "chosen", "transformed-outcome risk", "log loss", ...arms.map((a) => `Qini ${a}`)]);
  const tbody = $("learners").querySelector("tbody");
  tbody.replaceChildren();
  for (const n of learners) {
    const tr = document.createElement("tr");
    cell(tr, n); cell(tr, n === sel.chosen ? "yes" : "");
    cell(tr, fmt(sel.transformed_outcome_risk[n], 4), "num");
    cell(tr, fmt((sel.oof_log_loss || {})[n] ?? NaN, 4), "num");
    for (const a of arms) cell(tr, fmt((((sel.uplift_metrics || {})[n] || {})[a] || {}).qini ?? NaN, 3), "num");
    tbody.appendChild(tr);
  }
  const curves = sel.qini_curves || {};
  const series = [];
  Object.entries(curves).forEach(([arm, c]) => {
    const color = armColor(Math.max(state.arms.indexOf(arm), 1));
    series.push({ name: arm, xs: c.fraction, ys: c.qini, color });
    series.push({ name: `${arm} random`, xs: [0, 1], ys: [0, c.qini[c.qini.length - 1]], color, dashed: true });
  });
  if (series.length) {
    lineChart($("qini"), { series, xLabel: "share of users, ranked by predicted uplift", yLabel: "incremental conversions (Qini)" });
  }
  showHeldOut(m.forecast_correction);
  showDrift(m.drift);
  state.evidence = m.evidence || null;
}

// the model's drift check (promo_opt/evaluation/drift.py): the warning the CLI prints first, above the
// what-if curve and the targeting list, and the check's figures in the check panel
function showDrift(d) {
  state.drift = d || null;
  const w = d && d.shifted ? d.message : "";
  $("drift-warning").textContent = w ? `Warning: drift. ${w}` : "";
  $("drift-warning").hidden = !w;
  facts($("drift"), d ? [
    ["domain classifier AUC", `${fmt(d.auc)} (flagged at ${fmt(d.threshold)})`],
    ["candidates differ", d.shifted ? "yes" : "no"],
    ["most different features", (d.top_features || []).join(", ") || "–"],
    ["what was done", { reweighted: "training rows reweighted toward the candidates", warned: "warned only",
      none: "nothing needed" }[d.action] || d.action],
    ["effective sample under the weights", `${fmt(100 * (d.effective_sample_share ?? 1))}% of the rows`],
  ] : [["drift check", "not run for this model (no candidates at training time, or drift.check: false)"]]);
}

// the model's metrics: the chosen learner's budget policy on the past campaign's held-out predictions,
// what the model expects of it against the doubly robust estimate from the real outcomes
function showHeldOut(fc) {
  const t = $("heldout");
  if (!fc || !fc.applied) {
    t.hidden = true;
    $("heldout-note").textContent = fc ? `Not measured: ${fc.reason}` : "Not measured for this model.";
    return;
  }
  t.hidden = false;
  $("heldout-note").textContent = `The campaign's budget and ROI floor applied to out-of-fold predictions of ${fmt(fc.rows)} `
    + "past rows; the doubly robust estimate uses their real outcomes. A ratio far from 1 is the winner's curse that "
    + (fc.corrected ? "the forecasts correct." : "the forecasts were told not to correct (model.correct_forecast: false).")
    + (fc.floor_dropped ? ` ${fc.floor_dropped}.` : "");
  const tbody = t.querySelector("tbody");
  tbody.replaceChildren();
  for (const [k, label] of Object.entries(TOTAL_LABELS)) {
    const tr = document.createElement("tr");
    rowHeader(tr, label);
    cell(tr, fmt(fc.expected[k]), "num"); cell(tr, fmt(fc.realized[k]), "num");
    cell(tr, fmt(fc.raw_ratio[k]), "num"); cell(tr, fmt(fc.ratio_se[k]), "num"); cell(tr, fmt(fc.ratio[k]), "num");
    tbody.appendChild(tr);
  }
}

// the targeting list shown in Decide, against the other strategies (an analysis job of kind policies)
async function showPolicyCheck(a) {
  $("policy-check").hidden = false;
  $("policies").hidden = true;
  $("policies-scored-by").textContent = "";
  $("policies-progress").textContent = "";
  const list = await api(`/analyses?campaign_id=${state.campaign.id}&limit=1000`);
  const done = list.filter((j) => j.parent_id === a.id && j.status === "done" && j.params.analysis === "policies");
  if (done.length) showPolicies(done[done.length - 1].result);
}

async function evaluatePolicies() {
  const region = $("policies-progress");
  const a = state.allocation;
  $("policies-submit").disabled = true;
  try {
    const job = await api("/analyses", { method: "POST", json: { analysis: "policies", allocation_id: a.id } });
    const j = await follow(`/analyses/${job.id}`, `Evaluating targeting list ${a.id} (${job.id})`, region);
    if (j.status === "done") showPolicies(j.result);
  } catch (err) {
    refusal(err, region);
  } finally {
    $("policies-submit").disabled = false;
  }
}

function showPolicies(r) {
  $("policies-scored-by").textContent = `Scored by ${r.scored_by}; budget ${fmt(r.budget)}.`;
  const t = $("policies");
  t.hidden = false;
  const tbody = t.querySelector("tbody");
  tbody.replaceChildren();
  for (const row of r.rows) {
    const tr = document.createElement("tr");
    rowHeader(tr, row.policy);
    cell(tr, fmt(row.users_treated), "num");
    cell(tr, fmt(row.incremental_conversions), "num");
    cell(tr, span(row), "num");
    cell(tr, fmt(row.spend), "num"); cell(tr, fmt(row.roi), "num"); cell(tr, fmt(row.net_revenue), "num");
    tbody.appendChild(tr);
  }
}

// ------------------------------------------------------------------------------------------
// check: the campaign's reports (effect, ltv, drivers), as the CLI commands of the same names write them
// ------------------------------------------------------------------------------------------
const REPORT_LABELS = { effect: "Effect of each arm", ltv: "Long-term value", drivers: "Drivers and causal graph" };

async function loadAnalyses(show = null) {
  const a = await api(`/campaigns/${state.campaign.id}/analyses`);
  const ul = $("analysis-availability");
  ul.replaceChildren();
  const sel = $("analysis-select");
  const keep = sel.value;
  sel.replaceChildren();
  for (const x of a.analyses) {
    const li = document.createElement("li");
    li.dataset.analysis = x.analysis;
    li.textContent = x.available ? `${x.analysis}: available (${x.needs})` : `${x.reason} (not available)`;
    if (!x.available) li.className = "unavailable";
    ul.appendChild(li);
    if (x.available) sel.appendChild(new Option(`${x.analysis}: ${REPORT_LABELS[x.analysis]}`, x.analysis));
  }
  if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
  $("analysis-form").hidden = sel.options.length === 0;
  effectOptions();
  const jobs = a.jobs.filter((j) => j.params.analysis !== "policies");
  const t = $("analyses");
  t.hidden = jobs.length === 0;
  const tbody = t.querySelector("tbody");
  tbody.replaceChildren();
  for (const j of jobs.slice().reverse()) {
    const tr = document.createElement("tr");
    cell(tr, analysisLabel(j.params));
    cell(tr, j.id, "mono");
    cell(tr, j.status, `status-${j.status}`);
    cell(tr, j.elapsed_seconds != null ? `${j.elapsed_seconds.toFixed(1)} s` : "–", "num");
    cell(tr, j.error || "");
    const td = cell(tr, "");
    if (j.status === "done") {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "Show";
      b.setAttribute("aria-label", `Show ${analysisLabel(j.params)} ${j.id}`);
      b.addEventListener("click", () => showAnalysis(j));
      td.appendChild(b);
    }
    tbody.appendChild(tr);
  }
  if (show) showAnalysis(show);
}

function analysisLabel(p) {
  return p.analysis === "effect" ? `effect (${p.method}, ${p.estimand}${p.adjust ? `, adjust ${p.adjust}` : ""})` : p.analysis;
}

function effectOptions() {
  const isEffect = $("analysis-select").value === "effect";
  for (const id of ["effect-method", "effect-estimand"]) {
    $(id).disabled = !isEffect;
  }
}

async function runAnalysis(ev) {
  ev.preventDefault();
  const region = $("analysis-progress");
  const analysis = $("analysis-select").value;
  const body = { analysis, campaign_id: state.campaign.id };
  if (analysis === "effect") { body.method = $("effect-method").value; body.estimand = $("effect-estimand").value; }
  $("analysis-submit").disabled = true;
  try {
    const job = await api("/analyses", { method: "POST", json: body });
    const j = await follow(`/analyses/${job.id}`, `Report ${analysisLabel(job.params)} ${job.id}`, region);
    await loadAnalyses(j.status === "done" ? j : null);
  } catch (err) {
    refusal(err, region);
  } finally {
    $("analysis-submit").disabled = false;
  }
}

function figuresTable(caption, head, rows) {
  const t = $("analysis-figures");
  $("analysis-figures-caption").textContent = caption;
  headRow(t, head);
  const tbody = t.querySelector("tbody");
  tbody.replaceChildren();
  for (const [name, ...values] of rows) {
    const tr = document.createElement("tr");
    rowHeader(tr, name);
    for (const v of values) cell(tr, v, "num");
    tbody.appendChild(tr);
  }
}

function showAnalysis(j) {
  const r = j.result;
  state.analysis = j;
  $("analysis-result").hidden = false;
  $("analysis-result").dataset.analysis = r.analysis;
  $("analysis-result-title").textContent = `${REPORT_LABELS[r.analysis]}: ${analysisLabel(j.params)} ${j.id}`;
  if (r.analysis === "ltv") {
    $("analysis-summary").textContent = `Change of '${r.outcome}' per customer given an arm once instead of `
      + `${r.control}: in the week of the promotion and summed over ${r.horizon} weeks; ${fmt(r.n_customers)} customers, `
      + `${fmt(r.boot)} bootstrap replicates (95% intervals).`;
    figuresTable("Immediate and long-term effect of each arm", ["arm", "immediate", "95% interval", "long term", "95% interval", "multiplier"],
      Object.entries(r.arms).map(([arm, v]) => [arm, fmt(v.immediate.estimate), span(v.immediate),
        fmt(v.long_term.estimate), span(v.long_term), fmt(v.multiplier.estimate)]));
  } else if (r.analysis === "drivers") {
    $("analysis-summary").textContent = `What drives '${r.outcome}': change of the outcome under do(high) vs do(low) `
      + `of each variable, ranked; graph of ${r.variables} variables and ${r.edges} edges (${r.undirected} undirected) by ${r.method}.`;
    figuresTable("Drivers of the outcome, ranked", ["variable", "effect", "95% interval", "adjusted for", "note"],
      r.drivers.map((d) => [d.variable, fmt(d.effect ?? NaN), span(d), (d.adjustment_set || "").split(";").join(", ") || "–",
        d.note || ""]));
  } else if (r.analysis === "effect") {
    $("analysis-summary").textContent = `Effect of each arm on '${r.outcome}' against ${r.control} `
      + `(${r.method}, ${r.estimand}; ${fmt(r.n_rows)} rows); adjusted for `
      + (r.adjustment_set ? `the set ${r.adjustment_set.join(", ")} read from the causal graph.` : "every feature.");
    figuresTable("Effect of each arm with its 95% interval", ["arm", "estimate", "95% interval", "standard error", "rows of the arm", "control rows"],
      Object.entries(r.effects).map(([arm, e]) => [arm, fmt(e.estimate), span(e), fmt(e.se ?? NaN),
        fmt(e.n_arm ?? NaN), fmt(e.n_control ?? NaN)]));
  }
  $("analysis-notes").textContent = (r.notes || []).map((n) => `Note: ${n}`).join(" ");
}

// report.html, fetched with the key (never in a URL) and opened from memory in a new tab
async function openReport() {
  const j = state.analysis;
  try {
    const r = await api(`/analyses/${j.id}/files/report.html`, { raw: true });
    const url = URL.createObjectURL(new Blob([await r.arrayBuffer()], { type: "text/html" }));
    const link = document.createElement("a");
    link.href = url; link.target = "_blank"; link.rel = "noopener";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    notice(`Opened the report of ${j.id} in a new tab.`);
  } catch (err) {
    notice(err.message, true);
  }
}

// ------------------------------------------------------------------------------------------
// wiring
// ------------------------------------------------------------------------------------------
function init() {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("upload").addEventListener("submit", upload);
  $("train").addEventListener("submit", train);
  $("scores-select").addEventListener("change", (e) => openScores(e.target.value));
  $("budget-slider").addEventListener("input", (e) => askPoint(Number(e.target.value)));
  $("budget-input").addEventListener("change", (e) => {
    const b = Math.max(0, Number(e.target.value));
    $("budget-slider").value = String(b);
    askPoint(b);
  });
  $("roi-input").addEventListener("change", () => loadCurve(false));
  $("metric-select").addEventListener("change", drawCurve);
  $("pin").addEventListener("click", pin);
  $("curve").addEventListener("mousemove", hover);
  $("curve").addEventListener("mouseleave", unhover);
  $("allocate").addEventListener("submit", allocate);
  for (const b of document.querySelectorAll(".download")) b.addEventListener("click", download);
  $("push").addEventListener("submit", push);
  $("policies-submit").addEventListener("click", evaluatePolicies);
  $("analysis-form").addEventListener("submit", runAnalysis);
  $("analysis-select").addEventListener("change", effectOptions);
  $("analysis-report").addEventListener("click", openReport);
  document.body.dataset.ready = "true";
}

init();
