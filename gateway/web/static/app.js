// bms-gateway dashboard: renders the snapshot pushed over /ws. No dependencies, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (x, nd) => (x === null || x === undefined ? "–" : Number(x).toFixed(nd));
const clamp01 = (x) => Math.max(0, Math.min(1, x));
let history = null;
let lastSnap = null;
let healthShown; // the `time` of the health report on the page (undefined: none rendered yet)
let lastUpdate = 0; // Date.now() when the last snapshot arrived (0: none yet)
let pushIntervalMs = 1000;
// The server pushes only new steps: no push for this long means the gateway stopped stepping
// (or the feed stalled), and the page must not look live.
const staleAfterMs = () => Math.max(3000, 3 * pushIntervalMs);

function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function renderSummary(s) {
  const st = s.state;
  setText("gateway-id", s.gateway_id);
  if (!st) return;
  setText("mode", st.mode);
  setText("soc", fmt(st.soc_pct, 1));
  setText("soh", fmt(st.soh_pct, 1));
  setText("voltage", fmt(st.voltage_v, 2));
  setText("current", fmt(st.current_a, 2));
  setText("power", fmt(st.power_w, 0));
  setText("energy-in", fmt(st.energy_charged_kwh, 3));
  setText("energy-out", fmt(st.energy_discharged_kwh, 3));
}

function renderLimits(st) {
  for (const key of ["ccl_a", "dcl_a", "cvl_v", "dvl_v"]) {
    const name = key.slice(0, 3);
    const lim = st[key];
    const value = $(`${name}-value`);
    value.dataset.value = lim.value === null ? "" : String(lim.value);
    value.textContent = fmt(lim.value, 1);
    const winner = $(`${name}-winner`);
    winner.dataset.winner = lim.winner;
    winner.textContent = `limited by ${lim.winner}`;
    const ul = $(`${name}-terms`);
    ul.replaceChildren(
      ...Object.entries(lim.terms).map(([term, v]) => {
        const li = document.createElement("li");
        li.dataset.term = term;
        if (term === lim.winner) li.className = "won";
        const a = document.createElement("span");
        a.textContent = term;
        const b = document.createElement("span");
        b.textContent = fmt(v, 1);
        li.append(a, b);
        return li;
      })
    );
  }
}

// A duration in s as "42 s", "12 min" or "3.5 h".
function dur(s) {
  if (s === null || s === undefined || !(s >= 0)) return "–";
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

// The charge phase (MQTT `state.charge`): the phase, why (its last transition), the full charge.
function renderCharge(st) {
  const c = st.charge;
  const phase = $("charge-phase");
  phase.dataset.phase = c ? c.phase : "";
  setText("charge-phase", c ? c.phase : "–");
  setText("charge-since", c ? `for ${dur(st.t_s - c.since_s)}` : "");
  setText("charge-cvl", c ? fmt(c.cvl_v, 2) : "–");
  setText("charge-reason", c ? c.reason : "");
  const full = $("charge-full");
  full.dataset.requested = c ? String(c.full_charge_requested) : "";
  const due = c ? c.full_charge_due_in_h : null;
  full.dataset.due = due === null || due === undefined ? "" : String(due);
  if (!c) {
    setText("charge-full", "–");
    setText("charge-full-detail", "");
    return;
  }
  let text = "not requested";
  if (c.full_charge_requested) {
    const when = due === null || due === undefined ? "" : due === 0 ? ", due now" : `, due in ${fmt(due, 1)} h`;
    text = `requested: ${c.full_charge_reason}${when}`;
  }
  setText("charge-full", text);
  const last = c.last_full_age_h === null ? "no full charge on record" : `last full charge ${fmt(c.last_full_age_h, 1)} h ago`;
  setText("charge-full-detail", c.grid_charge_requested ? `${last}; grid charge requested` : last);
}

function ensureCells(n) {
  const box = $("cells");
  while (box.children.length > n) box.lastChild.remove();
  while (box.children.length < n) {
    const i = box.children.length;
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.index = String(i);
    const bars = document.createElement("div");
    bars.className = "bars";
    for (const k of ["v", "soc", "t"]) {
      const bar = document.createElement("div");
      bar.className = `bar ${k}`;
      bar.append(document.createElement("i"));
      bars.append(bar);
    }
    const label = document.createElement("span");
    label.textContent = String(i + 1);
    cell.append(bars, label);
    box.append(cell);
  }
  return box.children;
}

function renderCells(s) {
  const c = s.cells;
  if (!c) return;
  const [vmin, vmax] = s.v_window;
  const temps = c.temp_c;
  const sensors = c.sensor_temp_c;
  const kids = ensureCells(c.count);
  let bleeding = 0;
  for (let i = 0; i < c.count; i++) {
    const cell = kids[i];
    const v = c.voltage_v[i];
    const soc = c.soc_pct ? c.soc_pct[i] : null;
    // One sensor per cell, or the sensor that covers the cell.
    const t = temps ? temps[i] : sensors.length ? sensors[Math.floor((i * sensors.length) / c.count)] : null;
    const bars = cell.firstChild.children;
    bars[0].firstChild.style.height = v === null ? "0" : `${100 * clamp01((v - vmin) / (vmax - vmin))}%`;
    bars[1].firstChild.style.height = soc === null ? "0" : `${clamp01(soc / 100) * 100}%`;
    bars[2].firstChild.style.height = t === null ? "0" : `${100 * clamp01((t + 10) / 70)}%`;
    const on = c.balancing[i];
    if (on) bleeding++;
    cell.classList.toggle("bleeding", on);
    cell.dataset.voltage = v === null ? "" : String(v);
    cell.title = `cell ${i + 1}: ${fmt(v, 3)} V, SoC ${fmt(soc, 1)} %, ${fmt(t, 1)} °C${on ? ", bleeding" : ""}`;
  }
  const st = s.state;
  setText(
    "cells-summary",
    `${c.count} cells, ${fmt(st.min_cell_v, 3)}–${fmt(st.max_cell_v, 3)} V, spread ${fmt(st.cell_spread_mv, 1)} mV, ${bleeding} bleeding`
  );
}

function li(text, cls) {
  const el = document.createElement("li");
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}

function when(t) {
  return t ? new Date(t * 1000).toLocaleTimeString() : "";
}

function renderAlarms(s) {
  const a = s.alarms;
  if (a) {
    setText("alarm-level", a.level);
    $("alarms-active").replaceChildren(
      ...(a.active.length
        ? a.active.map((x) => li(`${x.code}: ${x.message}${x.latched ? " (latched)" : ""}`, `sev-${x.severity}`))
        : [li("none")])
    );
  }
  $("alarm-history").replaceChildren(
    ...s.alarm_history
      .slice()
      .reverse()
      .map((x) => li(`${when(x.time)} ${x.code} ${x.change} (${x.severity}): ${x.message}`, `sev-${x.severity}`))
  );
}

// A trend with its standard error, e.g. "-0.021 ± 0.004" (null: too few days yet).
function trend(v, sigma, nd) {
  if (v === null || v === undefined) return "–";
  const sign = v > 0 ? "+" : "";
  return sigma === null || sigma === undefined ? `${sign}${fmt(v, nd)}` : `${sign}${fmt(v, nd)} ± ${fmt(sigma, nd)}`;
}

function td(text) {
  const el = document.createElement("td");
  el.textContent = text;
  return el;
}

// The MQTT `health` payload (also at /api/health): arrays in cell order, cell numbers shown 1-based.
function renderHealth(h) {
  const t = h ? h.time : null;
  if (t === healthShown) return; // a report arrives daily; the snapshot repeats it every push
  healthShown = t;
  $("health-empty").hidden = !!h;
  $("health-table").hidden = !h;
  if (!h) {
    setText("health-summary", "");
    return;
  }
  const range = h.first_day ? `${h.first_day} to ${h.last_day}` : "no history";
  const weakest = h.weakest.map((k) => k + 1).join(", ") || "–";
  setText(
    "health-summary",
    `${h.days} days of data (${range}), weakest ${weakest}, SoC spread ${fmt(h.soc_spread_pct, 2)} % ` +
      `(${trend(h.soc_spread_trend_pct_per_day, null, 3)} %/d), days to spread limit ${fmt(h.days_to_spread_limit, 0)}, ` +
      `days to capacity limit ${fmt(h.min_days_to_capacity_limit, 0)}`
  );
  const n = h.capacity_ah.length;
  const rows = [];
  for (let i = 0; i < n; i++) {
    const warns = h.warnings.filter((w) => w.cell === i);
    const tr = document.createElement("tr");
    tr.dataset.cell = String(i + 1);
    if (warns.length) tr.className = "warned";
    const w = td(warns.map((x) => x.code).join(", ") || "–");
    if (warns.length) w.title = warns.map((x) => x.message).join("\n");
    tr.append(
      td(String(i + 1)),
      td(String(h.rank[i])),
      td(fmt(h.capacity_ah[i], 2)),
      td(trend(h.capacity_fade_pct_per_day[i], h.capacity_fade_sigma[i], 4)),
      td(fmt(h.r0_mohm[i], 3)),
      td(trend(h.resistance_growth_pct_per_day[i], h.resistance_growth_sigma[i], 3)),
      td(trend(h.self_discharge_pct_per_day[i], h.self_discharge_sigma[i], 3)),
      td(fmt(h.days_to_capacity_limit[i], 0)),
      w
    );
    rows.push(tr);
  }
  $("health-cells").replaceChildren(...rows);
}

function renderLinks(s) {
  $("links").replaceChildren(
    ...Object.entries(s.links).map(([name, up]) => {
      const el = li(`${name} ${up ? "up" : "down"}`, up ? "up" : "down");
      el.dataset.link = name;
      return el;
    })
  );
  $("events").replaceChildren(
    ...s.events
      .slice()
      .reverse()
      .map((e) => li(`${when(e.time)} ${e.event} ${Object.keys(e.data).length ? JSON.stringify(e.data) : ""}`))
  );
}

function plot(canvas, ts, ys, color, zero) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const pts = [];
  for (let i = 0; i < ts.length; i++) if (ys[i] !== null) pts.push([ts[i], ys[i]]);
  ctx.fillStyle = "#6b7483";
  ctx.font = "11px system-ui";
  if (pts.length < 2) {
    ctx.fillText("collecting…", 8, 16);
    return;
  }
  const t1 = pts[pts.length - 1][0];
  const t0 = Math.min(pts[0][0], t1 - 60);
  let lo = Math.min(...pts.map((p) => p[1]));
  let hi = Math.max(...pts.map((p) => p[1]));
  if (zero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const pad = 18;
  const x = (t) => pad + ((w - 2 * pad) * (t - t0)) / (t1 - t0);
  const y = (v) => h - pad - ((h - 2 * pad) * (v - lo)) / (hi - lo);
  ctx.strokeStyle = "#dde1e7";
  if (zero) { ctx.beginPath(); ctx.moveTo(pad, y(0)); ctx.lineTo(w - pad, y(0)); ctx.stroke(); }
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  pts.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
  ctx.stroke();
  ctx.fillText(`${fmt(hi, 1)}`, 2, 12);
  ctx.fillText(`${fmt(lo, 1)}`, 2, h - 4);
  ctx.fillText(`-${((t1 - t0) / 3600).toFixed(2)} h`, pad + 48, h - 4);
  ctx.fillText("now", w - pad - 20, h - 4);
}

function renderPlots() {
  if (!history) return;
  plot($("plot-soc"), history.t_s, history.soc_pct, "#27a360", false);
  plot($("plot-current"), history.t_s, history.current_a, "#2f6fdb", true);
  plot($("plot-spread"), history.t_s, history.spread_mv, "#e08a1e", false);
}

function render(s) {
  lastSnap = s;
  if (s.history) history = s.history;
  renderSummary(s);
  if (s.state) {
    renderLimits(s.state);
    renderCharge(s.state);
  }
  renderCells(s);
  renderAlarms(s);
  renderHealth(s.health);
  renderLinks(s);
  if (s.history) renderPlots();
  $("commands-section").hidden = !s.commands;
  // The test reads these: which step the page shows and when it arrived.
  document.body.dataset.seq = s.seq === null ? "" : String(s.seq);
  lastUpdate = Date.now();
  if (s.push_interval_s) pushIntervalMs = 1000 * s.push_interval_s;
  document.body.dataset.updated = String(lastUpdate);
  checkLive();
}

function checkLive() {
  const age = lastUpdate ? Date.now() - lastUpdate : null;
  const live = document.body.dataset.connected === "true" && age !== null && age <= staleAfterMs();
  document.body.dataset.live = String(live);
  const note = $("stale-note");
  note.hidden = live || age === null;
  if (!note.hidden) setText("stale-note", `no new step for ${Math.round(age / 1000)} s: values are old`);
}

async function command(name, body) {
  body.token = $("cmd-token").value;
  const r = await fetch(`/api/command/${name}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const j = await r.json();
  setText("cmd-result", `${j.accepted ? "accepted" : "rejected"}: ${j.message}`);
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => (document.body.dataset.connected = "true");
  ws.onmessage = (ev) => render(JSON.parse(ev.data));
  ws.onclose = () => {
    document.body.dataset.connected = "false";
    checkLive();
    setTimeout(connect, 2000);
  };
}

window.addEventListener("DOMContentLoaded", () => {
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  $("cmd-cap").onclick = () => command("current_cap", { charge_a: num("cap-charge"), discharge_a: num("cap-discharge") });
  $("cmd-reset").onclick = () => command("reset_alarms", {});
  window.addEventListener("resize", renderPlots);
  setInterval(checkLive, 500);
  connect();
});
