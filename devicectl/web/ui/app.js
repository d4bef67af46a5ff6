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
  if (msg.type === "decision") decisionNote(msg.device, msg.decision, msg.reason);
  if (msg.type === "alarm") alarmNote(msg.device, msg.message);
  if (msg.type === "console_lost") note(`console_lost:${msg.user}`, msg.stopped.length ? "bad" : "warn",
    `${msg.message}.${msg.stopped.length ? " Nothing fires until a practitioner logs in and arms again." : ""}`);
  if (msg.type === "event" || msg.type === "decision" || (msg.type === "status" && S.session && msg.device === S.session.device)) scheduleRefresh();
  if (msg.type === "hello" || msg.type === "status") { syncConditionNotes(); homeLive(msg); }
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
// Two kinds: conditions (door open, connection lost: shown while true) and notes, the reasons
// (refusals, STOPs, lock-outs, alarms) that stay until a person dismisses them. A re-render of
// any screen never erases a note; a note whose cause is still present cannot be dismissed yet.
S.notes = [];
function note(key, kind, text, active = false) {
  let n = S.notes.find((x) => x.key === key);
  if (!n) { n = { key, kind, text, active, at: new Date().toTimeString().slice(0, 5) }; S.notes.push(n); }
  else Object.assign(n, { kind, text, active });
  renderBanners();
}
function dismiss(key) { S.notes = S.notes.filter((n) => n.key !== key || n.active); renderBanners(); }
function refusalNote(device, reason) { note(`Refuse:${device}:${reason}`, "warn", `Not done: ${reason}. Deal with this, then try again.`); }
function alarmNote(device, message) {
  note(`alarm:${device}`, "alarm", `ALARM — ${message}. Then acknowledge the ${device} once it is safe.`, !!(S.devices[device] || {}).alarm);
}
function decisionNote(device, kind, reason) {
  if (kind === "Refuse") return refusalNote(device, reason);
  if (kind === "Stop" && /^(session opened|session ended|freeze ended \()/.test(reason)) return;  // routine, not a reason
  const words = {
    Stop: ["bad", `${device} stopped: ${reason}. It is in its safe state; nothing fires or freezes until a practitioner arms again.`],
    Pause: ["warn", `${device} paused: ${reason}. Check the settings, then tap Re-confirm session.`],
  }[kind];
  if (words) note(`${kind}:${device}:${reason}`, words[0], words[1]);
}
function syncConditionNotes() {
  // alarms, swapped units and lock-outs of every device: kept active while the device reports them
  for (const [name, d] of Object.entries(S.devices)) {
    const conditions = [[`alarm:${name}`, d.alarm, "alarm", `ALARM — ${d.alarm}. Then acknowledge the ${name} once it is safe.`],
      [`refused:${name}`, d.refused, "alarm", `${name} refused: ${d.refused}. Connect the right unit to this port; nothing runs on it until then.`],
      [`locked:${name}`, d.locked, "bad", `${name} locked: ${d.locked}. Deal with the cause, then tap Acknowledge.`]];
    for (const [key, value, kind, text] of conditions) {
      const n = S.notes.find((x) => x.key === key);
      if (value) note(key, kind, text, true);
      else if (n && n.active) n.active = false;  // the cause is gone: the note stays until read
    }
  }
}

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
  }
  const notes = S.token ? S.notes : [];
  const html = out.map(([k, t]) => `<div class="banner ${k}" role="alert">${esc(t)}</div>`).join("")
    + notes.map((n) => {
      const dev = n.key.split(":")[1];
      const ack = n.active && n.key.startsWith("locked:") ? `<button class="small" data-ack="${esc(dev)}">Acknowledge</button>` : "";
      const act = n.active ? `<span class="until">until resolved</span>` : `<button class="small" data-dismiss="${esc(n.key)}">Dismiss</button>`;
      return `<div class="banner note ${n.kind}" role="alert" data-note="${esc(n.key)}"><span>${esc(n.at)} · ${esc(n.text)}</span>${ack}${act}</div>`;
    }).join("");
  const el = $("#banners");
  if (el.dataset.html === html) return;  // unchanged: no flicker, no lost taps
  el.dataset.html = html; el.innerHTML = html;
  el.querySelectorAll("[data-dismiss]").forEach((b) => b.onclick = () => dismiss(b.dataset.dismiss));
  el.querySelectorAll("[data-ack]").forEach((b) => b.onclick = async () => {
    try { S.devices[b.dataset.ack] = await api("POST", `/api/devices/${b.dataset.ack}/acknowledge`); syncConditionNotes(); renderBanners(); }
    catch (e) { refusalNote(b.dataset.ack, e.message); }
  });
}

// ------------------------------------------------------------------ login
function loginScreen(note = "") {
  S.sessionId = null;
  let pin = "";
  show(`<h1>Log in</h1>
    <div class="grid"><div class="panel">
      <div class="row"><label for="user">User</label><input id="user" autocomplete="username" autocapitalize="off">
        <button id="user-kbd" class="small">Keyboard</button></div>
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
  keyboardButton("user");
  $("#user").focus();
}

async function doLogin(user, pin) {
  try {
    const r = await api("POST", "/api/login", { name: user, pin });
    Object.assign(S, { token: r.token, user: r.user, role: r.role, mustChange: r.must_change_pin });
    $("#who").textContent = `${r.user} · ${r.role}`;
    $("#home-btn").hidden = false; $("#logout-btn").hidden = false;
    connectLive();
    S.options = await api("GET", "/api/options");
    S.sim = await api("GET", "/api/sim").catch(() => null);  // only with `devicectl serve --simulate`
    await loadSites(); await loadClinic();
    $("#sim-btn").hidden = !S.sim || S.role === "admin";
    if (S.mustChange) return pinScreen(pin);
    home();
  } catch (e) { message(e.message); }
}

function logout(note = "") {
  if (S.token) api("POST", "/api/logout").catch(() => {});
  Object.assign(S, { token: null, user: null, role: null, session: null, sessionId: null });
  if (S.ws) { const ws = S.ws; S.ws = null; ws.close(); }
  $("#who").textContent = ""; $("#sim-btn").hidden = true; $("#home-btn").hidden = true; $("#logout-btn").hidden = true;
  setConn(false);
  loginScreen(note);
}

function pinScreen(oldPin) { changePinScreen(oldPin); }  // keypad and confirmation field: clinic.js

// ------------------------------------------------------------------ home
async function home() {
  clearInterval(S.poll);
  S.sessionId = null; S.session = null;
  renderBanners();
  show(`<h1>Home</h1><div id="home"></div>
    <div class="row" style="margin-top:24px">
      ${S.role === "practitioner" ? `<button id="new" class="primary">New treatment</button><button id="patients">Patients</button>` : ""}
      ${S.role !== "practitioner" ? `<button id="cal">Calibration status</button>` : ""}
      ${S.role === "admin" ? `<button id="users-btn">Users</button>` : ""}<button id="mypin">My PIN</button>
    </div><div id="message"></div>`);
  on("new", planScreen);
  on("patients", () => patientsScreen());
  on("users-btn", usersScreen);
  on("mypin", () => changePinScreen());
  on("cal", calibrationScreen);
  await loadOverview();
}

const isoDate = (ts) => { const d = new Date(ts * 1000); return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`; };
const since = (ts) => ts ? `${isoDate(ts)} ${new Date(ts * 1000).toTimeString().slice(0, 5)}` : "—";

async function loadOverview() {
  S.overviewDue = false;
  try { S.overview = await api("GET", "/api/overview"); } catch (e) { return; }
  for (const d of S.overview.devices) S.devices[d.name] = { ...S.devices[d.name], ...d };
  syncConditionNotes(); renderBanners(); renderHome();
}

// Home follows the live stream: device state at once, sessions re-read when a device's session changes.
function homeLive(msg) {
  if (!$("#home") || !S.overview) return;
  if (msg.type === "status") {
    const known = S.overview.devices.find((d) => d.name === msg.device);
    if (known && (known.session ? known.session.id : null) !== (msg.status.session_id ?? null) && !S.overviewDue) {
      S.overviewDue = true; setTimeout(loadOverview, 200);
    }
  }
  renderHome();
}

// A tap is never lost to a live re-render: while a finger (or the mouse) is down, the screens
// that redraw with live data wait, and redraw once the tap's click has been dispatched.
const held = { down: false, pending: new Set() };
document.addEventListener("pointerdown", () => { held.down = true; }, true);
for (const end of ["pointerup", "pointercancel"]) {
  document.addEventListener(end, () => {
    held.down = false;
    setTimeout(() => { const redraw = [...held.pending]; held.pending.clear(); redraw.forEach((fn) => fn()); }, 0);
  }, true);
}
function holdWhilePressed(fn) {
  if (!held.down) return false;
  held.pending.add(fn); return true;
}

function renderHome() {
  if (holdWhilePressed(renderHome)) return;
  const el = $("#home"); if (!el || !S.overview) return;
  const cards = S.overview.devices.map((o) => {
    const d = { ...o, ...(S.devices[o.name] || {}) };
    const state = d.connected ? d.state : "DISCONNECTED";
    const cal = o.calibration || {};
    const ses = o.session;
    return `<div class="panel device" data-device="${esc(o.name)}"><h2>${esc(o.name)} · ${esc(d.model || d.kind)}</h2>
      <span class="state ${esc(state)}">${esc(state)}</span>
      <p class="muted">serial ${esc(d.serial || "?")}${d.fault ? ` · fault ${esc(d.fault)}` : ""}</p>
      <p class="cal cal-${esc(cal.status)}">calibration <b>${esc(cal.status)}</b>${cal.due ? ` · due ${esc(cal.due)}` : ""}</p>
      ${d.refused ? `<div class="refusal">${esc(d.refused)}</div>` : ""}
      ${d.locked ? `<div class="warning lock">Locked: ${esc(d.locked)}</div>` : ""}
      ${ses ? `<p class="in-session">In session ${ses.id}: ${ses.own ? `patient ${esc(ses.patient_id)}, ` : ""}${esc(ses.practitioner)}, since ${esc(since(ses.opened))}</p>
        ${ses.own ? `<button data-open="${ses.id}">Open session ${ses.id}</button>` : ""}` : `<p class="muted">no session</p>`}</div>`;
  }).join("");
  const rows = S.overview.open_sessions.map((x) => {
    const acts = !x.own ? `<span class="muted">${esc(x.practitioner)}'s</span>`
      : x.state === "interrupted" ? `<button data-review="${x.id}" class="primary">Review and close</button>`
      : `<button data-open="${x.id}">Resume</button>${x.state === "planned" ? ` <button data-cancel="${x.id}" class="small">Cancel</button>` : ""}`;
    return `<tr data-session="${x.id}"><td>${x.id}</td><td>${x.own ? esc(x.patient_id) : "—"}</td><td>${esc(x.device)}</td><td>${x.own ? esc(x.site) : "—"}</td>
      <td><b>${esc(x.state)}</b></td><td>${esc(x.practitioner)}</td><td>${esc(since(x.opened || x.created))}</td><td>${acts}</td></tr>`;
  }).join("");
  const html = `<div class="grid">${cards}</div>
    <h2>Open and interrupted sessions</h2>${rows ? `<table id="open-sessions"><tr><th>#</th><th>Patient</th><th>Device</th><th>Site</th><th>State</th><th>By</th><th>Since</th><th></th></tr>${rows}</table>`
      : `<p class="muted" id="open-sessions">none</p>`}`;
  if (el.dataset.html === html) return;
  el.dataset.html = html; el.innerHTML = html;
  el.querySelectorAll("[data-open]").forEach((b) => b.onclick = () => openSession(Number(b.dataset.open)));
  el.querySelectorAll("[data-review]").forEach((b) => b.onclick = () => openSession(Number(b.dataset.review)));
  el.querySelectorAll("[data-cancel]").forEach((b) => b.onclick = async () => {
    try { await api("POST", `/api/sessions/${b.dataset.cancel}/cancel`); loadOverview(); } catch (e) { refusalNote("session", e.message); }
  });
}

// ------------------------------------------------------------------ plan
function choice(name, values, labels, multi = false) {
  return `<div class="row" data-choice="${name}">${values.map((v, i) =>
    `<button type="button" data-value="${esc(v)}" class="${(multi ? (S.plan[name] || []).includes(v) : S.plan[name] === v) ? "selected" : ""}">${esc(labels ? labels[i] : v)}</button>`).join("")}</div>`;
}

// a device in another session says whose it is
function busy(name) {
  const o = S.overview && S.overview.devices.find((d) => d.name === name);
  return o && o.session ? ` — in session ${o.session.id}, patient ${o.session.patient_id}, ${o.session.practitioner}` : "";
}

function planScreen() {
  S.plan = { device: null, indication: null, skin_type: null, sensitive_skin: false, inks: [], area_cm2: "", site: "", site_note: "", patient_id: "", fromLast: null };
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
      <h2>Device</h2>${choice("device", opts.devices.map((d) => d.name), opts.devices.map((d) => `${d.name} (${d.type})${busy(d.name)}`))}
      ${dev ? `<h2>Indication</h2>${choice("indication", indications.map((i) => i.value), indications.map((i) => i.label))}` : ""}
      <h2>Skin type (Fitzpatrick)</h2>${choice("skin_type", [1, 2, 3, 4, 5, 6], roman)}
      <h2>Sensitive skin</h2>${choice("sensitive_skin", [false, true], ["no", "yes"])}
      ${S.plan.indication === "tattoo" ? `<h2>Ink colours</h2>${choice("inks", opts.inks, opts.inks.map((i) => i.replace("_", " ")), true)}` : ""}
      <div class="row"><label for="area">Area cm²</label><input id="area" inputmode="decimal" size="6" value="${esc(S.plan.area_cm2)}"></div>
      <h2>Body site</h2>${sitePickerHtml(siteFromText(S.plan.site))}
      <div class="row"><label for="site">Site</label><input id="site" value="${esc(S.plan.site)}" placeholder="pick above, or type e.g. left forearm">
        <span id="site-reads" class="muted"></span></div>
      <div class="row"><label for="site-note">Note</label><input id="site-note" size="30" value="${esc(S.plan.site_note)}" placeholder="free text about the site (optional)"></div>
      <div id="last-plan"></div>
      ${S.plan.fromLast ? `<p class="muted" id="from-last">Starts from the last settings on this site; the planner refuses what is above the protocol's cap.</p>` : ""}
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
  wireSitePicker((key) => { keepInputs(); S.plan.site = siteLabel(key); renderPlan(); });
  $("#patient").addEventListener("change", () => { keepInputs(); lastPlanOffer(); });
  $("#site").addEventListener("change", () => { keepInputs(); lastPlanOffer(); });
  lastPlanOffer();
  on("newpatient", async () => { keepInputs(); try { S.plan.patient_id = (await api("POST", "/api/patients")).patient_id; renderPlan(); } catch (e) { message(e.message); } });
  on("makeplan", makePlan);
}

function keepInputs() {
  S.plan.patient_id = $("#patient").value.trim(); S.plan.area_cm2 = $("#area").value.trim(); S.plan.site = $("#site").value.trim();
  S.plan.site_note = $("#site-note").value.trim();
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
      sensitive_skin: p.sensitive_skin, area_cm2: Number(p.area_cm2), site: siteFromText(p.site) || p.site, site_note: p.site_note || null, inks: p.inks });
    S.sessionId = s.id; S.session = await applyLastSettings(s); planReview();
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
  show(`<h1 id="plan-head">Plan · ${esc(plan.indication.replace("_", " "))}, ${esc(plan.site)} — session ${S.session.course_number ?? "?"}</h1>
    <p class="who-line" id="plan-patient">patient <b>${esc(S.session.patient_id)}</b> · skin type <b>${esc(ROMAN[S.session.skin_type] || "?")}</b>${S.session.site_note ? ` · ${esc(S.session.site_note)}` : ""}</p>
    <div class="grid"><div class="panel"><table>${planLines(plan).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table>
      <p class="muted">${esc(plan.rationale)}</p></div>
    <div class="panel"><h2>Warnings</h2>${plan.warnings.map((w) => `<div class="warning">${esc(w)}</div>`).join("") || "<p>none</p>"}</div></div>
    <div class="row"><button id="tochecklist" class="primary">Checklist</button></div><div id="message"></div>`);
  on("tochecklist", checklistScreen);
  window.scrollTo(0, 0);  // the plan opens at its header
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
// A screen belongs to one session: it loads that session and shows the step it is at.
async function openSession(id) {
  try {
    clearInterval(S.poll);
    S.sessionId = id; S.session = await api("GET", `/api/sessions/${id}`);
    if (S.session.state === "planned") return planReview();
    if (S.session.state === "active") return treatmentScreen();
    return reviewScreen();
  } catch (e) { refusalNote("session", e.message); }
}

async function treatmentScreen() {
  show(`<div id="treatment"></div><div id="dialog" class="no-print"></div><div id="simbar" class="no-print">${simControls(S.session.device)}</div>`);
  wireSim($("#simbar"));
  if (S.session.state === "planned") {
    try { S.session = await api("POST", `/api/sessions/${S.sessionId}/start`); } catch (e) { refusalNote(S.session.device, e.message); }
  }
  clearInterval(S.poll);
  S.poll = setInterval(() => { if ($("#treatment")) refreshSession(); else clearInterval(S.poll); }, 700);
  renderTreatment();
}

// Why ARM must not be offered now (null: it may be): the kernel decides again on the service.
function armBlock(s, d, fluence) {
  const x = d.details || {}, plan = s.plan;
  if (s.state !== "active") return `the session is ${s.state}`;
  if (d.session_id !== undefined && d.session_id !== s.id) return `the ${s.device} is in another session`;
  if (d.connected === false) return `the ${s.device} is disconnected`;
  if (d.alarm) return "alarm: use the device's emergency stop";
  if (d.locked) return "locked: acknowledge first";
  if (d.paused) return "paused: re-confirm the session first";
  if (x.interlock === false) return "door open: close the treatment-room door";
  if (x.key === false) return "key switch off";
  if (x.estop === true) return "emergency stop pressed";
  if (d.state === "EMITTING") return "emitting";
  if (d.state === "READY" || d.state === "CHARGING") return "armed: the footswitch fires";
  if (d.state === "FAULT") return `fault ${d.fault || ""}`.trim();
  if (d.remaining === 0) return "the pulse budget is spent";
  if (!x.spot_mm) return "reading the handpiece…";
  if (fluence > plan.fluence_cap_j_cm2 + 1e-9) return `fit the ${plan.spot_mm} mm handpiece: with the ${x.spot_mm} mm the fluence is above the cap`;
  return null;
}

function renderTreatment() {
  if (holdWhilePressed(renderTreatment)) return;
  const s = S.session; if (!s) return;
  const typing = document.activeElement && document.activeElement.id === "seconds";
  const dev = S.devices[s.device] || {};
  // only this session's live data: a device in another session shows whose it is, never its counts
  const mine = s.live || (dev.session_id === s.id ? dev : null);
  const d = mine ? { ...dev, ...mine } : { ...dev, pulses: undefined, remaining: undefined, cycles_done: undefined, exposure_s: undefined };
  const other = !mine && dev.session_id ? dev.session_id : null;
  const state = d.connected === false ? "DISCONNECTED" : (d.state || "UNKNOWN");
  const words = { STANDBY: "standby — not armed", CHARGING: "charging", READY: "READY — footswitch fires", EMITTING: "EMITTING",
    IDLE: "idle", FREEZING: "FREEZING", THAW: "thawing", FAULT: "FAULT", DISCONNECTED: "disconnected", UNKNOWN: "unknown" };
  const laser = s.plan.modality === "laser";
  const x = d.details || {};
  let body, block;
  if (laser) {
    const f = x.spot_mm ? s.plan.energy_mj / 1000 / (Math.PI * (x.spot_mm / 20) ** 2) : null;
    const over = f !== null && f > s.plan.fluence_cap_j_cm2 + 1e-9;
    block = armBlock(s, d, f ?? 0);
    body = `<div class="panel"><h2>Pulses</h2><div class="counter" id="pulse-count">${d.pulses ?? s.pulses_recorded} <small>/ ${s.plan.pulse_budget}</small></div>
        <p>remaining <b id="remaining">${d.remaining ?? (s.state === "active" ? "?" : "—")}</b></p></div>
      <div class="panel ${over ? "out" : ""}" id="values"><h2>Settings</h2><table><tr><th>Energy</th><td>${s.plan.energy_mj} mJ (cap ${s.plan.energy_cap_mj})</td></tr>
        <tr><th>Fluence</th><td id="fluence">${f === null ? "?" : f.toFixed(2)} J/cm² (cap ${s.plan.fluence_cap_j_cm2}) ${over ? "<b>ABOVE THE PLAN</b>" : ""}</td></tr>
        <tr><th>Handpiece</th><td>${esc(x.spot_mm ?? "?")} mm (plan ${s.plan.spot_mm} mm)</td></tr>
        <tr><th>Wavelength</th><td>${s.plan.wavelength_nm} nm</td></tr><tr><th>Rate</th><td>${s.plan.rate_hz} Hz</td></tr><tr><th>Head</th><td>${esc(x.temp_c ?? x.head_c ?? "?")} °C</td></tr></table></div>`;
  } else {
    block = s.state !== "active" ? `the session is ${s.state}` : (other ? `the ${s.device} is in another session` : null);
    const left = d.state === "FREEZING" && x.elapsed_s !== undefined ? Math.max(0, (S.freezeSeconds || 0) - x.elapsed_s).toFixed(1) : "—";
    body = `<div class="panel"><h2>Tip</h2><div class="counter" id="tip">${esc(x.tip_c ?? "?")} <small>°C (target ${esc(s.plan.target_c)})</small></div>
        <p>freeze countdown <b id="countdown">${left}</b> s · cycles <b id="cycles">${d.cycles_done ?? s.freezes.length} / ${s.plan.cycles}</b> · exposure ${esc(d.exposure_s ?? 0)} / ${s.plan.total_exposure_cap_s} s</p></div>
      <div class="panel"><h2>Tip temperature</h2><canvas id="curve" width="800" height="260"></canvas></div>`;
  }
  const action = laser ? `<button id="arm" class="go" ${block || S.busy ? "disabled" : ""}>ARM</button>`
    : `<label for="seconds">seconds</label><input id="seconds" size="4" inputmode="decimal" value="${esc(S.freezeInput ?? s.plan.freeze_s)}">
       <button id="freeze" class="go" ${block || S.busy ? "disabled" : ""}>FREEZE</button>`;
  const html = `<h1>${esc(s.plan.indication.replace("_", " "))} · ${esc(s.plan.site)} <span class="muted">session ${s.id} · patient ${esc(s.patient_id)} · skin type ${esc(ROMAN[s.skin_type] || "?")} · course session ${s.course_number ?? "?"}</span></h1>
    <div class="row"><span id="device-state" class="state ${esc(state)}">${esc(words[state] || state)}</span></div>
    ${other ? `<div class="refusal" id="other-session">The ${esc(s.device)} is in session ${other}. <button id="open-other" class="small">Open session ${other}</button></div>` : ""}
    <div class="grid">${body}</div>
    <div class="row no-print">${action}<span id="arm-reason" class="reason">${esc(block || "")}</span>
      ${d.locked && mine ? `<button id="ack" class="primary">Acknowledge</button>` : ""}
      ${d.paused && mine ? `<button id="reconfirm" class="primary">Re-confirm session</button>` : ""}
      <button id="endsession">End session</button></div><div id="message"></div>`;
  const el = $("#treatment");
  if (el.dataset.html === html) { if (!laser) drawCurve(s.plan.target_c); return; }  // unchanged: stable buttons
  el.dataset.html = html; el.innerHTML = html;
  const seconds = $("#seconds");
  if (seconds) {
    seconds.oninput = () => { S.freezeInput = seconds.value; };  // a re-render never loses what was typed
    if (typing) { seconds.focus(); seconds.setSelectionRange(seconds.value.length, seconds.value.length); }
  }
  // one request at a time: a double tap never sends a second ARM
  const act = (fn) => async () => {
    if (S.busy) return;
    S.busy = true; renderTreatment();
    try { await fn(); } catch (e) { refusalNote(s.device, e.message); } finally { S.busy = false; refreshSession(); }
  };
  on("arm", act(() => api("POST", `/api/sessions/${s.id}/arm`)));
  on("freeze", act(() => {
    S.freezeInput = $("#seconds").value; S.freezeSeconds = Number(S.freezeInput);
    return api("POST", `/api/sessions/${s.id}/freeze`, { seconds: S.freezeSeconds });
  }));
  on("ack", act(() => api("POST", `/api/sessions/${s.id}/acknowledge`)));
  on("reconfirm", act(() => api("POST", `/api/sessions/${s.id}/reconfirm`)));
  on("open-other", () => openSession(other));
  on("endsession", () => confirmEnd(s));
  if (!laser) drawCurve(s.plan.target_c);
}

function confirmEnd(s) {
  const done = s.plan.modality === "laser" ? plural(s.pulses_recorded, "pulse") : plural(s.freezes.length, "freeze");
  $("#dialog").innerHTML = `<div class="refusal" id="confirm-end">End this session (${esc(done)} recorded)? The device is stopped first.
    <div class="row"><button id="end-yes" class="primary">End session</button><button id="end-no">Keep treating</button></div></div>`;
  on("end-no", () => { $("#dialog").innerHTML = ""; });
  on("end-yes", async () => {
    try { S.session = await api("POST", `/api/sessions/${s.id}/end`); aftercareScreen(); }
    catch (e) { refusalNote(s.device, e.message); $("#dialog").innerHTML = ""; }
  });
}

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function drawCurve(target) {
  const c = $("#curve"); if (!c) return;
  if (c.clientWidth && c.width !== c.clientWidth) c.width = c.clientWidth;  // one canvas pixel per CSS pixel: labels at 16 px
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
  show(`<div class="sheet" id="aftercare">${clinicHeader()}<h1>Aftercare</h1>
    <p>Treatment: ${esc(s.plan.indication.replace("_", " "))}, ${esc(s.plan.site)} — session ${s.course_number ?? "?"} · ${esc(sheetDate(Date.now() / 1000))} · patient ${esc(s.patient_id)}</p>
    <ul>${s.aftercare.map((l) => `<li>${esc(l)}</li>`).join("")}</ul>
    <p>${s.plan.modality === "laser" ? plural(s.pulses_recorded, "pulse") : plural(s.freezes.length, "freeze")} recorded.</p>
    <p id="next-session">Next session on this site: not before ${esc(sheetDate(Date.now() / 1000 + s.plan.interval_days * 86400))} (${plural(s.plan.interval_days, "day")}).</p>
    ${clinicFooter()}</div>
    <div class="row no-print"><button id="print" class="primary">Print</button><button id="done">Done</button></div>`);
  S.sessionId = null;
  on("print", () => window.print());
  on("done", home);
}

function reviewScreen() {
  clearInterval(S.poll);
  const s = S.session;
  show(`<h1>Session ${s.id} · ${esc(s.plan.indication.replace("_", " "))} · ${esc(s.plan.site)}</h1>
    <div class="panel" id="review"><p>patient ${esc(s.patient_id)} · ${esc(s.device)} · <b>${esc(s.state)}</b>${s.outcome ? ` — ${esc(s.outcome)}` : ""}</p>
      <p>${s.plan.modality === "laser" ? plural(s.pulses_recorded, "pulse") : plural(s.freezes.length, "freeze")} recorded.</p>
      ${(s.decisions || []).map((x) => `<div class="warning">${esc(x.kind)}: ${esc(x.reason)}</div>`).join("")}</div>
    <div class="row">${s.state === "interrupted" ? `<button id="close-session" class="primary">Close with aftercare sheet</button>` : ""}
      <button id="done">Home</button></div><div id="message"></div>`);
  on("done", home);
  on("close-session", async () => {
    try { S.session = await api("POST", `/api/sessions/${s.id}/close`); aftercareScreen(); } catch (e) { refusalNote(s.device, e.message); }
  });
}

// ------------------------------------------------------------------ simulator panel (--simulate only)
const SIM_WORDS = { foot: ["Footswitch", "press", "release"], interlock: ["Door interlock", "close", "open"], key: ["Key", "on", "off"],
  estop: ["Emergency stop", "press", "release"], probe: ["Probe", "attach", "remove"] };
function simControls(only) {
  if (!S.sim) return "";
  return S.sim.devices.filter((d) => !only || d.name === only).map((d) => {
    const x = (S.devices[d.name] || {}).details || {};
    const inputs = Object.keys(d.inputs).filter((k) => k !== "spot").map((k) => {
      const [label, one, zero] = SIM_WORDS[k];
      return `<span class="sim-input">${label} <button class="small" data-sim="${d.name}" data-name="${k}" data-value="1">${one}</button><button class="small" data-sim="${d.name}" data-name="${k}" data-value="0">${zero}</button></span>`;
    }).join("");
    const spots = d.inputs.spot ? `<span class="sim-input">Handpiece ${d.inputs.spot.map((v) => `<button class="small ${x.spot_mm === v ? "selected" : ""}" data-sim="${d.name}" data-name="spot" data-value="${v}">${v} mm</button>`).join("")}</span>` : "";
    const faults = `<span class="sim-input">Fault ${d.faults.map((c) => `<button class="small" data-fault="${d.name}" data-code="${c}">${c}</button>`).join("")}
      <button class="small" data-clear="${d.name}">remove causes</button></span>`;
    return `<div class="panel sim" data-simdevice="${d.name}"><h2>Simulated ${esc(d.name)}</h2><div class="row">${inputs}${spots}</div><div class="row">${faults}</div></div>`;
  }).join("");
}
function wireSim(root) {
  const send = async (device, body) => {
    try { await api("POST", `/api/sim/${device}`, body); } catch (e) { refusalNote(device, e.message); }
  };
  root.querySelectorAll("[data-sim]").forEach((b) => b.onclick = () => send(b.dataset.sim, { op: "set_input", name: b.dataset.name, value: Number(b.dataset.value) }));
  root.querySelectorAll("[data-fault]").forEach((b) => b.onclick = () => send(b.dataset.fault, { op: "inject_fault", code: b.dataset.code }));
  root.querySelectorAll("[data-clear]").forEach((b) => b.onclick = async () => {
    const d = S.sim.devices.find((x) => x.name === b.dataset.clear);
    for (const code of d.faults) await send(d.name, { op: "remove_fault_cause", code });
  });
}
function simScreen() {
  clearInterval(S.poll); S.sessionId = null; S.session = null;
  show(`<h1>Simulator</h1><p class="muted">The simulated units' hardware inputs and faults (only with --simulate).</p><div id="simpanel">${simControls()}</div>`);
  wireSim($("#simpanel"));
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
  try {
    const r = await api("POST", "/api/stop", { origin: "touchscreen" });
    for (const name of r.unconfirmed || []) alarmNote(name, `the ${name} did not confirm STOP — use its emergency stop`);
    if ((r.stopped || []).length) note(`stop:${Date.now()}`, "info", `STOP from this screen: ${r.stopped.join(" and ")} confirmed safe. Nothing fires or freezes until a practitioner arms again.`);
    refreshSession();
  } catch (e) {
    // STOP works without a login from the treatment-room screens; anywhere else it needs one
    if (e.status === 401) note("stop-login", "alarm", "This screen may STOP only when logged in: log in, or use the device's emergency stop.");
    else note("stop-unreachable", "alarm", "STOP could not reach the service: use the device's emergency stop.");
  }
};
$("#home-btn").onclick = home;
$("#sim-btn").onclick = simScreen;
$("#logout-btn").onclick = () => logout();
document.addEventListener("DOMContentLoaded", () => loginScreen());  // once every script (clinic.js too) is loaded
