"use strict";
// devicectl touchscreen: plain JS, no dependencies, works offline. Talks to the service's REST API
// and follows the WebSocket live stream; every screen keeps the STOP button in reach.

const S = { token: null, user: null, role: null, mustChange: false, options: null, devices: {},
            sessionId: null, session: null, ws: null, wsLive: false, tips: [], poll: null, plan: {} };
const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (S.token) headers.Authorization = `Bearer ${S.token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    setConn(false);
    throw new Error("The service cannot be reached.");
  }
  const data = await res.json().catch(() => ({}));
  if (res.status === 401 && S.token && path !== "/api/login") { logout("Your login expired: log in again."); }
  if (!res.ok) {
    const err = new Error(data.error || (data.detail ? data.detail.map((d) => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("; ") : `error ${res.status}`));
    err.status = res.status; err.hazard = data.hazard; throw err;
  }
  return data;
}

function show(html) { $("#screen").innerHTML = html; }
function on(id, fn) { const el = document.getElementById(id); if (el) el.onclick = fn; }
function message(text, kind = "refusal") {
  const el = $("#message"); if (!el) return;
  el.innerHTML = text ? `<div class="${kind}" role="alert">${esc(text)}</div>` : "";
  if (text) el.scrollIntoView({ block: "center" });
}

// ------------------------------------------------------------------ connection
function setConn(live) {
  S.wsLive = live;
  const el = $("#conn");
  el.textContent = live ? "live" : (S.token ? "CONNECTION LOST" : "offline");
  el.className = "conn " + (live ? "live" : (S.token ? "lost" : ""));
  renderBanners();
}

function connectLive() {
  if (!S.token) return;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?token=${encodeURIComponent(S.token)}`);
  S.ws = ws;
  ws.onopen = () => setConn(true);
  ws.onmessage = (m) => live(JSON.parse(m.data));
  ws.onclose = () => { setConn(false); if (S.token && S.ws === ws) setTimeout(connectLive, 1500); };
}

function live(msg) {
  if (msg.type === "hello") { for (const d of msg.devices) S.devices[d.name] = d; }
  if (msg.type === "status") S.devices[msg.device] = msg.status;
  if (msg.type === "event" && msg.event.kind === "TEMP" && msg.event.tip_c !== undefined) {
    S.tips.push([Date.now(), msg.event.tip_c, msg.event.target_c]);
    if (S.tips.length > 600) S.tips.shift();
  }
  if (msg.type === "event" || msg.type === "decision") scheduleRefresh();
  renderBanners();
}

let refreshTimer = null;
function scheduleRefresh() { if (!refreshTimer && S.sessionId) refreshTimer = setTimeout(refreshSession, 150); }
async function refreshSession() {
  refreshTimer = null;
  if (!S.sessionId) return;
  try { S.session = await api("GET", `/api/sessions/${S.sessionId}`); } catch (e) { return; }
  if (S.session.live) S.devices[S.session.device] = { ...S.devices[S.session.device], ...S.session.live };
  if ($("#treatment")) renderTreatment();
  renderBanners();
}

// ------------------------------------------------------------------ banners
function renderBanners() {
  const out = [];
  if (S.token && !S.wsLive) out.push(["bad", "Connection to the service lost — reconnecting. If a device must stop now, use its emergency-stop button."]);
  const name = S.session && S.session.state === "active" ? S.session.device : null;
  const d = name ? S.devices[name] : null;
  if (d) {
    const x = d.details || {};
    if (!d.connected) out.push(["bad", `${name}: device disconnected — treatment stopped. Check its cable and power; it reconnects by itself.`]);
    if (d.fault) out.push(["bad", `${name}: device fault ${d.fault} — treatment stopped. Remove the cause, clear the fault on the device, then acknowledge.`]);
    if (x.interlock === false) out.push(["bad", "Door interlock open — treatment stopped. Close the treatment-room door."]);
    if (x.key === false) out.push(["bad", "Key switch off — turn the key to continue."]);
    if (x.estop === true) out.push(["bad", "Emergency stop pressed — release it when the room is safe."]);
    if (d.locked) out.push(["warn", `Locked: ${d.locked}. Acknowledge once the cause is dealt with.`]);
    if (d.paused) out.push(["warn", `Paused: ${d.paused}.`]);
  }
  $("#banners").innerHTML = out.map(([k, t]) => `<div class="banner ${k}" role="alert">${esc(t)}</div>`).join("");
}

// ------------------------------------------------------------------ login
function loginScreen(note = "") {
  S.sessionId = null;
  let pin = "";
  show(`<h1>Log in</h1>
    <div class="grid"><div class="panel">
      <div class="row"><label for="user">User</label><input id="user" autocomplete="username" autocapitalize="off"></div>
      <div class="row"><label>PIN</label><input id="pin" type="password" inputmode="numeric" readonly aria-label="PIN"></div>
      <div class="keypad">${[1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `<button data-key="${n}">${n}</button>`).join("")}
        <button data-key="clear" class="small">Clear</button><button data-key="0">0</button><button data-key="ok" class="primary">OK</button></div>
      <div id="message">${note ? `<div class="refusal">${esc(note)}</div>` : ""}</div>
    </div></div>`);
  document.querySelectorAll("[data-key]").forEach((b) => b.onclick = async () => {
    const k = b.dataset.key;
    if (k === "clear") pin = "";
    else if (k === "ok") return doLogin($("#user").value.trim(), pin);
    else pin += k;
    $("#pin").value = "•".repeat(pin.length);
  });
  $("#user").focus();
}

async function doLogin(user, pin) {
  try {
    const r = await api("POST", "/api/login", { user, pin });
    Object.assign(S, { token: r.token, user: r.user, role: r.role, mustChange: r.must_change_pin });
    $("#who").textContent = `${r.user} · ${r.role}`;
    $("#stop").hidden = false; $("#home-btn").hidden = false; $("#logout-btn").hidden = false;
    connectLive();
    S.options = await api("GET", "/api/options");
    if (S.mustChange) return pinScreen(pin);
    home();
  } catch (e) { message(e.message); }
}

function logout(note = "") {
  if (S.token) api("POST", "/api/logout").catch(() => {});
  Object.assign(S, { token: null, user: null, role: null, session: null, sessionId: null });
  if (S.ws) { const ws = S.ws; S.ws = null; ws.close(); }
  $("#who").textContent = ""; $("#stop").hidden = true; $("#home-btn").hidden = true; $("#logout-btn").hidden = true;
  setConn(false);
  loginScreen(note);
}

function pinScreen(oldPin) {
  show(`<h1>Choose your own PIN</h1><div class="panel">
    <p>The PIN you used can be used once only.</p>
    <div class="row"><label for="newpin">New PIN (4-12 digits)</label><input id="newpin" type="password" inputmode="numeric"></div>
    <div class="row"><button id="setpin" class="primary">Save PIN</button></div><div id="message"></div></div>`);
  on("setpin", async () => {
    try { await api("POST", "/api/me/pin", { old_pin: oldPin, new_pin: $("#newpin").value }); S.mustChange = false; home(); }
    catch (e) { message(e.message); }
  });
}

// ------------------------------------------------------------------ home
async function home() {
  S.sessionId = null; S.session = null;
  renderBanners();
  const devices = await api("GET", "/api/devices").catch(() => []);
  for (const d of devices) S.devices[d.name] = d;
  const cards = devices.map((d) => `<div class="panel"><h2>${esc(d.name)} · ${esc(d.model || d.kind)}</h2>
      <span class="state ${d.connected ? esc(d.state) : "DISCONNECTED"}">${d.connected ? esc(d.state) : "DISCONNECTED"}</span>
      <p class="muted">serial ${esc(d.serial || "?")}${d.fault ? ` · fault ${esc(d.fault)}` : ""}</p></div>`).join("");
  show(`<h1>Devices</h1><div class="grid">${cards}</div>
    <div class="row" style="margin-top:24px">
      ${S.role === "practitioner" ? `<button id="new" class="primary">New treatment</button>` : ""}
      ${S.role !== "practitioner" ? `<button id="cal">Calibration status</button>` : ""}
    </div><div id="message"></div>`);
  on("new", planScreen);
  on("cal", calibrationScreen);
}

// ------------------------------------------------------------------ plan
function choice(name, values, labels, multi = false) {
  return `<div class="row" data-choice="${name}">${values.map((v, i) =>
    `<button type="button" data-value="${esc(v)}" class="${(multi ? (S.plan[name] || []).includes(v) : S.plan[name] === v) ? "selected" : ""}">${esc(labels ? labels[i] : v)}</button>`).join("")}</div>`;
}

function planScreen() {
  S.plan = { device: null, indication: null, skin_type: null, sensitive_skin: false, inks: [], area_cm2: "", site: "", patient_id: "" };
  renderPlan();
}

function renderPlan() {
  const opts = S.options;
  const dev = opts.devices.find((d) => d.name === S.plan.device);
  const indications = dev ? opts.indications.filter((i) => i.modality === dev.type) : [];
  const roman = ["I", "II", "III", "IV", "V", "VI"];
  show(`<h1>Patient and plan</h1>
    <div class="panel">
      <div class="row"><label for="patient">Patient ID</label><input id="patient" value="${esc(S.plan.patient_id)}" placeholder="P-... or new">
        <button id="newpatient" class="small">New patient</button></div>
      <h2>Device</h2>${choice("device", opts.devices.map((d) => d.name), opts.devices.map((d) => `${d.name} (${d.type})`))}
      ${dev ? `<h2>Indication</h2>${choice("indication", indications.map((i) => i.value), indications.map((i) => i.label))}` : ""}
      <h2>Skin type (Fitzpatrick)</h2>${choice("skin_type", [1, 2, 3, 4, 5, 6], roman)}
      <h2>Sensitive skin</h2>${choice("sensitive_skin", [false, true], ["no", "yes"])}
      ${S.plan.indication === "tattoo" ? `<h2>Ink colours</h2>${choice("inks", opts.inks, opts.inks.map((i) => i.replace("_", " ")), true)}` : ""}
      <div class="row"><label for="area">Area cm²</label><input id="area" inputmode="decimal" size="6" value="${esc(S.plan.area_cm2)}">
        <label for="site">Site</label><input id="site" value="${esc(S.plan.site)}" placeholder="e.g. left forearm"></div>
      <div class="row"><button id="makeplan" class="primary">Make plan</button></div>
      <div id="message"></div>
    </div>`);
  document.querySelectorAll("[data-choice]").forEach((row) => row.querySelectorAll("button").forEach((b) => b.onclick = () => {
    keepInputs();
    const name = row.dataset.choice; let v = b.dataset.value;
    if (name === "skin_type") v = Number(v);
    if (name === "sensitive_skin") v = v === "true";
    if (name === "inks") { const s = new Set(S.plan.inks); s.has(v) ? s.delete(v) : s.add(v); S.plan.inks = [...s]; }
    else S.plan[name] = v;
    if (name === "device") S.plan.indication = null;
    renderPlan();
  }));
  on("newpatient", async () => { keepInputs(); try { S.plan.patient_id = (await api("POST", "/api/patients")).patient_id; renderPlan(); } catch (e) { message(e.message); } });
  on("makeplan", makePlan);
}

function keepInputs() {
  S.plan.patient_id = $("#patient").value.trim(); S.plan.area_cm2 = $("#area").value.trim(); S.plan.site = $("#site").value.trim();
}

async function makePlan() {
  keepInputs();
  const p = S.plan;
  const missing = [["patient_id", "a patient"], ["device", "a device"], ["indication", "an indication"], ["skin_type", "a skin type"], ["site", "a site"]]
    .filter(([k]) => p[k] === null || p[k] === "").map(([, w]) => w);
  if (!(Number(p.area_cm2) > 0)) missing.push("the area in cm²");
  if (missing.length) return message(`Choose ${missing.join(", ")}.`);
  try {
    const s = await api("POST", "/api/sessions", { patient_id: p.patient_id, device: p.device, indication: p.indication, skin_type: p.skin_type,
      sensitive_skin: p.sensitive_skin, area_cm2: Number(p.area_cm2), site: p.site, inks: p.inks });
    S.sessionId = s.id; S.session = s; planReview();
  } catch (e) { message(`Not treated: ${e.message}`); }
}

function planLines(plan) {
  if (plan.modality === "laser") return [["Wavelength", `${plan.wavelength_nm} nm`], ["Handpiece", `${plan.spot_mm} mm`],
    ["Energy", `${plan.energy_mj} mJ (cap ${plan.energy_cap_mj})`], ["Fluence", `${plan.fluence_j_cm2} J/cm² (cap ${plan.fluence_cap_j_cm2})`],
    ["Rate", `${plan.rate_hz} Hz`], ["Pulse budget", plan.pulse_budget], ["Next session", `after ${plan.interval_days} days`]];
  return [["Target", `${plan.target_c} °C`], ["Freeze", `${plan.freeze_s} s (cap ${plan.freeze_cap_s} s)`], ["Cycles", plan.cycles],
    ["Thaw at least", `${plan.thaw_min_s} s`], ["Total exposure cap", `${plan.total_exposure_cap_s} s`], ["Next session", `after ${plan.interval_days} days`]];
}

function planReview() {
  const plan = S.session.plan;
  show(`<h1>Plan · ${esc(plan.indication.replace("_", " "))} · ${esc(plan.site)}</h1>
    <div class="grid"><div class="panel"><table>${planLines(plan).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table>
      <p class="muted">${esc(plan.rationale)}</p></div>
    <div class="panel"><h2>Warnings</h2>${plan.warnings.map((w) => `<div class="warning">${esc(w)}</div>`).join("") || "<p>none</p>"}</div></div>
    <div class="row"><button id="tochecklist" class="primary">Checklist</button></div><div id="message"></div>`);
  on("tochecklist", checklistScreen);
}

// ------------------------------------------------------------------ checklist
const ITEMS = [["identity_confirmed", "Patient identity confirmed"], ["consent_signed", "Consent signed"],
  ["eye_protection_all", "Eye protection for everyone in the room", "laser"], ["no_sun_last_4_weeks", "No sun or solarium in the last 4 weeks"],
  ["benign_assessed", "Mole assessed as benign by a physician", "mole"]];

function checklistScreen() {
  const s = S.session, answers = { ...s.checklist };
  const applies = ([, , only]) => !only || (only === "laser" ? s.plan.modality === "laser" : s.plan.indication === only);
  const draw = () => {
    show(`<h1>Checklist</h1><div class="panel">
      ${ITEMS.filter(applies).map(([k, label]) => `<div class="row"><button id="chk-${k}" class="${answers[k] ? "selected" : ""}" aria-pressed="${!!answers[k]}">${answers[k] ? "✔" : "☐"} ${esc(label)}</button></div>`).join("")}
      ${s.plan.test_spot_required ? `<h2>Test spot</h2><div class="row"><label for="ts-date">done on</label><input id="ts-date" type="date" value="${esc(answers.test_spot?.done_on || "")}">
        <button id="ts-reviewed" class="${answers.test_spot?.reviewed ? "selected" : ""}">reviewed</button>
        <button id="ts-dark" class="${answers.test_spot?.darkened ? "selected" : ""}">darkened</button></div>` : ""}
      <div class="row"><button id="savechecklist" class="primary">Save and continue</button></div>
      <div id="openitems">${s.open_items.map((i) => `<div class="item-open">• ${esc(i.reason)}</div>`).join("")}</div><div id="message"></div></div>`);
    ITEMS.filter(applies).forEach(([k]) => on(`chk-${k}`, () => { answers[k] = !answers[k]; draw(); }));
    const ts = () => (answers.test_spot = answers.test_spot || { done_on: "", reviewed: false, darkened: false });
    on("ts-reviewed", () => { ts().done_on = $("#ts-date").value; ts().reviewed = !ts().reviewed; draw(); });
    on("ts-dark", () => { ts().done_on = $("#ts-date").value; ts().darkened = !ts().darkened; draw(); });
    on("savechecklist", async () => {
      if (answers.test_spot) answers.test_spot.done_on = $("#ts-date").value;
      try {
        S.session = await api("PUT", `/api/sessions/${s.id}/checklist`, answers);
        if (S.session.open_items.length) { Object.assign(s, S.session); return draw(); }
        treatmentScreen();
      } catch (e) { message(e.message); }
    });
  };
  draw();
}

// ------------------------------------------------------------------ treatment
async function treatmentScreen() {
  show(`<div id="treatment"></div>`);
  if (S.session.state === "planned") {
    try { S.session = await api("POST", `/api/sessions/${S.sessionId}/start`); } catch (e) { show(`<div id="treatment"></div><div id="message"></div>`); message(e.message); }
  }
  clearInterval(S.poll);
  S.poll = setInterval(() => { if ($("#treatment")) refreshSession(); else clearInterval(S.poll); }, 700);
  renderTreatment();
}

function renderTreatment() {
  const s = S.session; if (!s) return;
  const typing = document.activeElement && document.activeElement.id === "seconds";
  const d = { ...(S.devices[s.device] || {}), ...(s.live || {}) };
  const state = d.connected === false ? "DISCONNECTED" : (d.state || "UNKNOWN");
  const words = { STANDBY: "standby — not armed", CHARGING: "charging", READY: "READY — footswitch fires", EMITTING: "EMITTING",
    IDLE: "idle", FREEZING: "FREEZING", THAW: "thawing", FAULT: "FAULT", DISCONNECTED: "disconnected", UNKNOWN: "unknown" };
  const laser = s.plan.modality === "laser";
  const x = d.details || {};
  let body;
  if (laser) {
    const fluence = x.spot_mm ? (s.plan.energy_mj / 1000 / (Math.PI * (x.spot_mm / 20) ** 2)).toFixed(2) : "?";
    body = `<div class="panel"><h2>Pulses</h2><div class="counter" id="pulse-count">${d.pulses ?? s.pulses_recorded} <small>/ ${s.plan.pulse_budget}</small></div>
        <p>remaining <b id="remaining">${d.remaining ?? "?"}</b></p></div>
      <div class="panel"><h2>Settings</h2><table><tr><th>Energy</th><td>${s.plan.energy_mj} mJ</td></tr><tr><th>Fluence</th><td>${fluence} J/cm² (spot ${esc(x.spot_mm ?? "?")} mm)</td></tr>
        <tr><th>Wavelength</th><td>${s.plan.wavelength_nm} nm</td></tr><tr><th>Rate</th><td>${s.plan.rate_hz} Hz</td></tr><tr><th>Head</th><td>${esc(x.temp_c ?? x.head_c ?? "?")} °C</td></tr></table></div>`;
  } else {
    const left = d.state === "FREEZING" && x.elapsed_s !== undefined ? Math.max(0, (S.freezeSeconds || 0) - x.elapsed_s).toFixed(1) : "—";
    body = `<div class="panel"><h2>Tip</h2><div class="counter" id="tip">${esc(x.tip_c ?? "?")} <small>°C (target ${esc(s.plan.target_c)})</small></div>
        <p>freeze countdown <b id="countdown">${left}</b> s · cycles <b id="cycles">${d.cycles_done ?? s.freezes.length} / ${s.plan.cycles}</b> · exposure ${esc(d.exposure_s ?? 0)} / ${s.plan.total_exposure_cap_s} s</p></div>
      <div class="panel"><h2>Tip temperature</h2><canvas id="curve" width="800" height="260"></canvas></div>`;
  }
  const action = laser ? `<button id="arm" class="go" ${s.state !== "active" ? "disabled" : ""}>ARM (ready)</button>`
    : `<label for="seconds">seconds</label><input id="seconds" size="4" inputmode="decimal" value="${esc(S.freezeInput ?? s.plan.freeze_s)}">
       <button id="freeze" class="go" ${s.state !== "active" ? "disabled" : ""}>FREEZE</button>`;
  $("#treatment").innerHTML = `<h1>${esc(s.plan.indication.replace("_", " "))} · ${esc(s.plan.site)} <span class="muted">session ${s.id}</span></h1>
    <div class="row"><span id="device-state" class="state ${esc(state)}">${esc(words[state] || state)}</span></div>
    <div class="grid">${body}</div>
    <div class="row no-print">${action}
      ${d.locked ? `<button id="ack" class="primary">Acknowledge</button>` : ""}
      ${d.paused ? `<button id="reconfirm" class="primary">Re-confirm session</button>` : ""}
      <button id="endsession">End session</button></div><div id="message"></div>`;
  const seconds = $("#seconds");
  if (seconds) {
    seconds.oninput = () => { S.freezeInput = seconds.value; };  // a re-render never loses what was typed
    if (typing) { seconds.focus(); seconds.setSelectionRange(seconds.value.length, seconds.value.length); }
  }
  on("arm", async () => { try { await api("POST", `/api/sessions/${s.id}/arm`); refreshSession(); } catch (e) { message(e.message); } });
  on("freeze", async () => {
    S.freezeInput = $("#seconds").value; S.freezeSeconds = Number(S.freezeInput);
    try { await api("POST", `/api/sessions/${s.id}/freeze`, { seconds: S.freezeSeconds }); refreshSession(); } catch (e) { message(e.message); }
  });
  on("ack", async () => { try { await api("POST", `/api/sessions/${s.id}/acknowledge`); refreshSession(); } catch (e) { message(e.message); } });
  on("reconfirm", async () => { try { await api("POST", `/api/sessions/${s.id}/reconfirm`); refreshSession(); } catch (e) { message(e.message); } });
  on("endsession", async () => { try { S.session = await api("POST", `/api/sessions/${s.id}/end`); aftercareScreen(); } catch (e) { message(e.message); } });
  if (!laser) drawCurve(s.plan.target_c);
}

function drawCurve(target) {
  const c = $("#curve"); if (!c) return;
  const g = c.getContext("2d"), w = c.width, h = c.height, lo = -100, hi = 40;
  const y = (t) => h - ((t - lo) / (hi - lo)) * h;
  g.fillStyle = "#0b0f14"; g.fillRect(0, 0, w, h);
  g.strokeStyle = "#3a4656"; g.beginPath(); g.moveTo(0, y(0)); g.lineTo(w, y(0)); g.stroke();
  g.strokeStyle = "#f0b429"; g.setLineDash([8, 6]); g.beginPath(); g.moveTo(0, y(target)); g.lineTo(w, y(target)); g.stroke(); g.setLineDash([]);
  const pts = S.tips.slice(-300);
  g.strokeStyle = "#3ba3ff"; g.lineWidth = 3; g.beginPath();
  pts.forEach(([, t], i) => { const px = (i / 299) * w; i ? g.lineTo(px, y(t)) : g.moveTo(px, y(t)); });
  g.stroke(); g.lineWidth = 1;
  g.fillStyle = "#a9b4c2"; g.font = "16px sans-serif"; g.fillText("0 °C", 6, y(0) - 4); g.fillText(`target ${target} °C`, 6, y(target) - 4);
}

// ------------------------------------------------------------------ aftercare and calibration
function aftercareScreen() {
  clearInterval(S.poll);
  const s = S.session;
  show(`<div class="sheet" id="aftercare"><h1>Aftercare</h1>
    <p>Treatment: ${esc(s.plan.indication.replace("_", " "))} · ${esc(s.plan.site)} · ${new Date().toLocaleDateString()} · patient ${esc(s.patient_id)}</p>
    <ul>${s.aftercare.map((l) => `<li>${esc(l)}</li>`).join("")}</ul>
    <p>${s.plan.modality === "laser" ? `${s.pulses_recorded} pulses` : `${s.freezes.length} freeze(s)`} recorded.</p></div>
    <div class="row no-print"><button id="print" class="primary">Print</button><button id="done">Done</button></div>`);
  S.sessionId = null;
  on("print", () => window.print());
  on("done", home);
}

async function calibrationScreen() {
  try {
    const rows = await api("GET", "/api/calibrations");
    const today = new Date().toISOString().slice(0, 10);
    show(`<h1>Calibration status</h1><div class="panel"><table><tr><th>Device</th><th>Kind</th><th>Result</th><th>By</th><th>Expires</th></tr>
      ${rows.map((r) => `<tr><td>${esc(r.device_serial)}</td><td>${esc(r.device_kind)}</td><td>${r.passed ? "passed" : "<b>FAILED</b>"}</td>
        <td>${esc(r.technician)}</td><td>${esc(r.expires_on)}${r.expires_on < today ? " <b>(expired)</b>" : ""}</td></tr>`).join("")}</table></div>`);
  } catch (e) { show(`<div id="message"></div>`); message(e.message); }
}

// ------------------------------------------------------------------ start
$("#stop").onclick = async () => {
  try { await api("POST", "/api/stop", { origin: "touchscreen" }); refreshSession(); }
  catch (e) { $("#banners").insertAdjacentHTML("afterbegin", `<div class="banner bad">STOP could not reach the service: use the device's emergency stop.</div>`); }
};
$("#home-btn").onclick = home;
$("#logout-btn").onclick = () => logout();
loginScreen();
