"use strict";
// Clinic screens: user admin (admins), PIN entry with keypad and confirmation, the on-screen keyboard,
// the body-site picker, a patient's history and course. Loaded after app.js (uses its api, show, on,
// message, esc, S, home, planScreen, renderPlan, refusalNote, plural).

const C = { sites: null };
const ROMAN = ["", "I", "II", "III", "IV", "V", "VI"];

// ------------------------------------------------------------------ on-screen keyboard
// Fills an input without a physical keyboard: letters, digits and the characters a user name may hold.
const KEY_ROWS = ["1234567890", "qwertyuiop", "asdfghjkl-", "zxcvbnm._"];
function keyboard(input, { upper = false, onDone = null } = {}) {
  const box = document.createElement("div");
  box.className = "kbd no-print"; box.id = `kbd-${input.id}`;
  const keys = KEY_ROWS.map((row) => `<div class="kbd-row">${[...row].map((k) => {
    const c = upper ? k.toUpperCase() : k;
    return `<button type="button" data-kbd="${esc(c)}">${esc(c)}</button>`;
  }).join("")}</div>`).join("");
  box.innerHTML = `${keys}<div class="kbd-row"><button type="button" data-kbd="back" class="wide">⌫ Delete</button>
    <button type="button" data-kbd="clear" class="wide">Clear</button><button type="button" data-kbd="done" class="primary wide">Done</button></div>`;
  box.querySelectorAll("[data-kbd]").forEach((b) => b.onclick = () => {
    const k = b.dataset.kbd;
    if (k === "back") input.value = input.value.slice(0, -1);
    else if (k === "clear") input.value = "";
    else if (k === "done") { box.remove(); if (onDone) onDone(input.value); return; }
    else input.value += k;
    input.dispatchEvent(new Event("input"));
  });
  return box;
}
// a "Keyboard" button beside an input opens the keyboard under its row
function keyboardButton(inputId, options = {}) {
  const input = document.getElementById(inputId), button = document.getElementById(`${inputId}-kbd`);
  if (!input || !button) return;
  button.onclick = () => {
    const open = document.getElementById(`kbd-${inputId}`);
    if (open) return open.remove();
    button.closest(".row").after(keyboard(input, options));
  };
}

// ------------------------------------------------------------------ PIN entry: keypad and confirmation
// ``fields``: [id, label] pairs; the keypad types into the selected field. Returns a getter of the values.
function pinEntry(root, fields) {
  const values = Object.fromEntries(fields.map(([id]) => [id, ""]));
  let current = fields[0][0];
  root.innerHTML = `${fields.map(([id, label]) => `<div class="row"><label for="${id}">${esc(label)}</label>
      <input id="${id}" class="pin-field" type="password" readonly inputmode="none" aria-label="${esc(label)}"></div>`).join("")}
    <div class="keypad">${[1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => `<button type="button" data-pin="${n}">${n}</button>`).join("")}
      <button type="button" data-pin="clear" class="small">Clear</button><button type="button" data-pin="0">0</button>
      <button type="button" data-pin="next" class="small">Next</button></div>`;
  const mark = () => fields.forEach(([id]) => {
    const el = document.getElementById(id);
    el.value = "•".repeat(values[id].length); el.classList.toggle("current", id === current);
  });
  fields.forEach(([id]) => { document.getElementById(id).onclick = () => { current = id; mark(); }; });
  root.querySelectorAll("[data-pin]").forEach((b) => b.onclick = () => {
    const k = b.dataset.pin;
    if (k === "clear") values[current] = "";
    else if (k === "next") { const i = fields.findIndex(([id]) => id === current); current = fields[(i + 1) % fields.length][0]; }
    else if (values[current].length < 12) values[current] += k;
    mark();
  });
  mark();
  return () => ({ ...values });
}

// a new PIN typed twice: the reason it cannot be used, or null
function pinProblem(pin, again) {
  if (!/^\d{4,12}$/.test(pin)) return "A PIN is 4 to 12 digits.";
  if (pin !== again) return "The two PINs differ: type the new PIN again in both fields.";
  return null;
}

// Change one's own PIN: with the one-time PIN just used (first login) or the current one typed.
function changePinScreen(oldPin = null) {
  const first = oldPin !== null;
  show(`<h1>${first ? "Choose your own PIN" : "Change your PIN"}</h1><div class="panel" id="pin-change">
    ${first ? "<p>The PIN you used can be used once only.</p>" : ""}<div id="pin-entry"></div>
    <div class="row"><button id="setpin" class="primary">Save PIN</button>${first ? "" : `<button id="pin-cancel">Cancel</button>`}</div>
    <div id="message"></div></div>`);
  const fields = [["newpin", "New PIN (4-12 digits)"], ["newpin2", "New PIN again"]];
  const read = pinEntry($("#pin-entry"), first ? fields : [["oldpin", "Current PIN"], ...fields]);
  on("pin-cancel", home);
  on("setpin", async () => {
    const v = read(), problem = pinProblem(v.newpin, v.newpin2);
    if (problem) return message(problem);
    try {
      await api("POST", "/api/me/pin", { old_pin: first ? oldPin : v.oldpin, new_pin: v.newpin });
      S.mustChange = false; home();
      note(`pin:${Date.now()}`, "info", "Your new PIN is saved: use it from the next login.");
    } catch (e) { message(e.message); }
  });
}

// ------------------------------------------------------------------ user admin (admins)
async function usersScreen() {
  let users;
  try { users = await api("GET", "/api/users"); } catch (e) { return refusalNote("users", e.message); }
  const rows = users.map((u) => {
    const from = (u.locked_from || []).map((l) => `${l.client} (${Math.max(1, Math.round(l.seconds_left / 60))} min)`);
    const state = !u.active ? "deactivated" : u.locked ? "LOCKED" : from.length ? `locked from ${from.join(", ")}`
      : u.must_change_pin ? "one-time PIN" : "active";
    const acts = !u.active ? "" : `${u.locked || from.length ? `<button data-unlock="${esc(u.name)}" class="primary">Unlock</button>` : ""}
      <button data-reset="${esc(u.name)}">Reset PIN</button>
      ${u.name === S.user ? "" : `<button data-deactivate="${esc(u.name)}">Deactivate</button>`}`;
    return `<tr data-user="${esc(u.name)}"><td>${esc(u.name)}</td><td>${esc(u.role)}</td><td class="user-state"><b>${esc(state)}</b></td><td>${acts}</td></tr>`;
  }).join("");
  show(`<h1>Users</h1><div class="panel"><table id="users"><tr><th>Name</th><th>Role</th><th>State</th><th></th></tr>${rows}</table>
    <div class="row"><button id="newuser" class="primary">New user</button></div></div><div id="dialog"></div><div id="message"></div>`);
  on("newuser", newUserScreen);
  const done = (text) => { note(`user:${Date.now()}`, "info", text); usersScreen(); };
  document.querySelectorAll("[data-unlock]").forEach((b) => b.onclick = async () => {
    try { await api("POST", `/api/users/${encodeURIComponent(b.dataset.unlock)}/unlock`); done(`${b.dataset.unlock} is unlocked.`); }
    catch (e) { message(e.message); }
  });
  document.querySelectorAll("[data-reset]").forEach((b) => b.onclick = () => resetPinScreen(b.dataset.reset));
  document.querySelectorAll("[data-deactivate]").forEach((b) => b.onclick = () => {
    const name = b.dataset.deactivate;
    $("#dialog").innerHTML = `<div class="refusal" id="confirm-deactivate">Deactivate ${esc(name)}? They can no longer log in; their records keep their name.
      <div class="row"><button id="deact-yes" class="primary">Deactivate ${esc(name)}</button><button id="deact-no">Keep</button></div></div>`;
    on("deact-no", () => { $("#dialog").innerHTML = ""; });
    on("deact-yes", async () => {
      try { await api("POST", `/api/users/${encodeURIComponent(name)}/deactivate`); done(`${name} is deactivated.`); }
      catch (e) { message(e.message); }
    });
  });
}

function newUserScreen() {
  let role = "practitioner";
  show(`<h1>New user</h1><div class="panel" id="new-user">
    <div class="row"><label for="username">Name</label><input id="username" autocomplete="off" autocapitalize="off" maxlength="64">
      <button id="username-kbd" class="small">Keyboard</button></div>
    <h2>Role</h2><div class="row" id="roles">${["practitioner", "technician", "admin"].map((r) =>
      `<button data-role="${r}" class="${r === role ? "selected" : ""}">${r}</button>`).join("")}</div>
    <h2>One-time PIN</h2><p class="muted">The new user chooses their own PIN at their first login.</p><div id="pin-entry"></div>
    <div class="row"><button id="createuser" class="primary">Create user</button><button id="user-cancel">Cancel</button></div>
    <div id="message"></div></div>`);
  keyboardButton("username");
  document.querySelectorAll("[data-role]").forEach((b) => b.onclick = () => {
    role = b.dataset.role;
    document.querySelectorAll("[data-role]").forEach((x) => x.classList.toggle("selected", x === b));
  });
  const read = pinEntry($("#pin-entry"), [["userpin", "PIN"], ["userpin2", "PIN again"]]);
  on("user-cancel", usersScreen);
  on("createuser", async () => {
    const name = $("#username").value.trim(), v = read();
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) return message("A name is letters, digits, '.', '_' or '-' (at most 64).");
    const problem = pinProblem(v.userpin, v.userpin2);
    if (problem) return message(problem);
    try {
      await api("POST", "/api/users", { name, role, pin: v.userpin });
      note(`user:${Date.now()}`, "info", `${name} (${role}) is created: they choose their own PIN at their first login.`);
      usersScreen();
    } catch (e) { message(e.message); }
  });
}

function resetPinScreen(name) {
  show(`<h1>Reset the PIN of ${esc(name)}</h1><div class="panel" id="reset-pin">
    <p>A one-time PIN: ${esc(name)} chooses their own at the next login. This also unlocks ${esc(name)} and ends their logins.</p>
    <div id="pin-entry"></div>
    <div class="row"><button id="resetpin" class="primary">Reset PIN</button><button id="reset-cancel">Cancel</button></div>
    <div id="message"></div></div>`);
  const read = pinEntry($("#pin-entry"), [["resetpin1", "One-time PIN"], ["resetpin2", "One-time PIN again"]]);
  on("reset-cancel", usersScreen);
  on("resetpin", async () => {
    const v = read(), problem = pinProblem(v.resetpin1, v.resetpin2);
    if (problem) return message(problem);
    try {
      await api("POST", `/api/users/${encodeURIComponent(name)}/pin`, { pin: v.resetpin1 });
      note(`user:${Date.now()}`, "info", `${name} has a one-time PIN now.`);
      usersScreen();
    } catch (e) { message(e.message); }
  });
}

// ------------------------------------------------------------------ body-site picker
// Region and side from the fixed list (GET /api/sites); the site is the key "region" or "region:side".
async function loadSites() {
  if (!C.sites) C.sites = await api("GET", "/api/sites").catch(() => null);
  return C.sites;
}
function siteParts(key) {
  const [region, side = ""] = String(key || "").split(":");
  return { region, side };
}
function siteLabel(key) {
  if (!C.sites || !key) return key || "";
  const { region, side } = siteParts(key);
  const r = C.sites.regions.find((x) => x.key === region);
  return r ? (side ? `${side} ${r.label}` : r.label) : key;
}
// free text read as a site key (as the service does), or null
function siteFromText(text) {
  if (!C.sites) return null;
  const sides = { left: "left", l: "left", right: "right", r: "right", both: "both", bilateral: "both" };
  const words = String(text).toLowerCase().replace(/[^a-z0-9]+/g, " ").trim().split(" ").filter(Boolean);
  const found = [...new Set(words.filter((w) => sides[w]).map((w) => sides[w]))];
  const rest = words.filter((w) => !sides[w] && !["side", "of", "the", "and"].includes(w)).join(" ");
  const r = C.sites.regions.find((x) => x.label === rest || x.key === rest.replace(/ /g, "_"));
  if (!r) return null;
  const side = found.length > 1 ? "both" : (found[0] || "");
  return r.sided && side ? `${r.key}:${side}` : r.key;
}
function sitePickerHtml(current) {
  if (!C.sites) return "";
  const { region, side } = siteParts(current);
  const r = C.sites.regions.find((x) => x.key === region);
  return `<div class="row site-regions" id="site-regions">${C.sites.regions.map((x) =>
      `<button type="button" class="small ${x.key === region ? "selected" : ""}" data-region="${esc(x.key)}">${esc(x.label)}</button>`).join("")}</div>
    ${r && r.sided ? `<div class="row" id="site-sides">${C.sites.sides.map((s) =>
      `<button type="button" class="${s === side ? "selected" : ""}" data-side="${esc(s)}">${esc(s)}</button>`).join("")}</div>` : ""}`;
}
// wires the picker: a tap writes the site's words into #site (what the plan is made with)
function wireSitePicker(onChange) {
  document.querySelectorAll("[data-region]").forEach((b) => b.onclick = () => {
    const r = C.sites.regions.find((x) => x.key === b.dataset.region);
    const { side } = siteParts(siteFromText($("#site").value) || "");
    onChange(r.sided && side ? `${r.key}:${side}` : r.key);
  });
  document.querySelectorAll("[data-side]").forEach((b) => b.onclick = () => {
    const { region } = siteParts(siteFromText($("#site").value) || "");
    onChange(`${region}:${b.dataset.side}`);
  });
  const input = $("#site"), reads = $("#site-reads");
  if (input && reads) {
    const hint = () => {
      const key = siteFromText(input.value);
      reads.textContent = !input.value.trim() ? "" : key ? `site: ${siteLabel(key)}` : "not a site of the list: pick its region (free text goes in the note)";
      reads.className = key || !input.value.trim() ? "muted" : "reason";
    };
    input.addEventListener("input", hint); hint();
  }
}

// ------------------------------------------------------------------ a new plan from the last one on this site
// The last treated session's request and settings; the planner still refuses what is above the cap.
async function lastPlanOffer() {
  const el = $("#last-plan"); if (!el) return;
  const pid = S.plan.patient_id, site = siteFromText(S.plan.site);
  if (!pid || !site) { el.innerHTML = ""; return; }
  let last;
  try { last = await api("GET", `/api/patients/${encodeURIComponent(pid)}/last-plan?site=${encodeURIComponent(site)}`); } catch (e) { el.innerHTML = ""; return; }
  if (!last.session || !last.request) { el.innerHTML = `<p class="muted">No earlier session of ${esc(pid)} on the ${esc(siteLabel(site))}.</p>`; return; }
  const s = last.settings;
  const words = s.energy_mj !== undefined ? `${s.energy_mj} mJ, ${s.fluence_j_cm2} J/cm², ${s.rate_hz} Hz, ${s.pulse_budget} pulses`
    : `${s.target_c} °C, ${s.freeze_s} s × ${s.cycles}`;
  el.innerHTML = `<div class="warning" id="last-plan-offer">Last on the ${esc(siteLabel(site))}: session ${last.session} (${esc(last.device)}, ${esc(words)}).
    <button id="use-last" class="small">Start from the last settings</button></div>`;
  on("use-last", () => {
    const r = last.request;
    Object.assign(S.plan, { device: last.device, indication: r.indication, skin_type: r.skin_type, sensitive_skin: !!r.sensitive_skin,
      inks: r.inks || [], area_cm2: String(r.area_cm2 ?? S.plan.area_cm2), fromLast: s });
    renderPlan();
  });
}

// after the plan is made: the last settings applied through the planner (which refuses above the cap)
async function applyLastSettings(session) {
  const last = S.plan.fromLast;
  if (!last) return session;
  const changes = session.plan.modality === "laser" ? { energy_mj: last.energy_mj, rate_hz: last.rate_hz, pulse_budget: last.pulse_budget }
    : { freeze_s: last.freeze_s, cycles: last.cycles, target_c: last.target_c };
  try { return await api("POST", `/api/sessions/${session.id}/edit`, changes); }
  catch (e) { note(`lastplan:${session.id}`, "warn", `The last settings were not taken over: ${e.message}. The plan keeps the protocol's start.`); return session; }
}

// ------------------------------------------------------------------ patients: search and history
function patientsScreen(query = "") {
  show(`<h1>Patients</h1><div class="panel"><div class="row"><label for="patient-q">Patient ID</label>
      <input id="patient-q" autocomplete="off" autocapitalize="characters" value="${esc(query)}" placeholder="P-...">
      <button id="patient-q-kbd" class="small">Keyboard</button><button id="patient-find" class="primary">Find</button></div>
    <div id="patient-results"></div><div id="message"></div></div>`);
  keyboardButton("patient-q", { upper: true, onDone: (v) => find(v) });
  const find = async (q) => {
    try {
      const found = await api("GET", `/api/patients?q=${encodeURIComponent(q.trim())}`);
      $("#patient-results").innerHTML = found.length ? `<table id="patients"><tr><th>Patient</th><th>Since</th><th>Sessions</th><th></th></tr>${found.map((p) =>
        `<tr><td>${esc(p.patient_id)}</td><td>${esc(p.created)}</td><td>${p.sessions}</td><td><button data-patient="${esc(p.patient_id)}">History</button></td></tr>`).join("")}</table>`
        : `<p class="muted">No patient with "${esc(q)}" in their ID.</p>`;
      document.querySelectorAll("[data-patient]").forEach((b) => b.onclick = () => patientScreen(b.dataset.patient));
    } catch (e) { message(e.message); }
  };
  on("patient-find", () => find($("#patient-q").value));
  if (query) find(query);
}

function settingsWords(x) {
  const s = x.settings || {};
  return x.modality === "laser" ? `${s.wavelength_nm} nm · ${s.spot_mm} mm · ${s.energy_mj} mJ · ${s.fluence_j_cm2} J/cm² · ${s.rate_hz} Hz`
    : `${s.target_c} °C · ${s.freeze_s} s × ${s.cycles}`;
}

async function patientScreen(pid) {
  await loadSites();
  let h;
  try { h = await api("GET", `/api/patients/${encodeURIComponent(pid)}/history`); } catch (e) { return message(e.message); }
  const sites = h.sites.map((site) => `<div class="panel course" data-site="${esc(site.site_key)}">
      <h2>${esc(site.site)}</h2>
      <p class="next">${site.next_from ? `Next session on this site: not before <b>${esc(site.next_from)}</b>` : "No treated session on this site yet."}</p>
      <table><tr><th>Date</th><th>Course</th><th>Device</th><th>Settings</th><th>Done</th><th>Outcome</th><th>Safety events</th></tr>
      ${site.sessions.map((x) => `<tr data-history="${x.id}"><td>${esc(x.date)}</td>
        <td>${esc((x.indication || "").replace("_", " "))} — session ${x.course_number}<br><span class="muted">#${x.id}${x.skin_type ? ` · skin ${ROMAN[x.skin_type]}` : ""}${x.site_note ? ` · ${esc(x.site_note)}` : ""}</span></td>
        <td>${esc(x.device)}</td><td>${esc(settingsWords(x))}</td>
        <td>${x.modality === "laser" ? plural(x.pulses, "pulse") : plural(x.freezes, "freeze")}</td>
        <td><b>${esc(x.state)}</b>${x.outcome ? ` — ${esc(x.outcome)}` : ""}</td>
        <td>${x.decisions.filter((d) => !/^(session opened|session ended)/.test(d.reason)).map((d) => `<div>${esc(d.kind)}: ${esc(d.reason)}</div>`).join("") || "—"}</td></tr>`).join("")}</table>
      <div class="row"><button data-plan-site="${esc(site.site_key)}" class="primary">New plan for this site</button></div></div>`).join("");
  show(`<h1>Patient ${esc(pid)}${h.skin_type ? ` <span class="muted">skin type ${ROMAN[h.skin_type]}</span>` : ""}</h1>
    <div id="patient-history">${sites || `<p class="muted">No sessions yet.</p>`}</div>
    <div class="row"><button id="patients-back">Patients</button></div><div id="message"></div>`);
  on("patients-back", () => patientsScreen(pid));
  document.querySelectorAll("[data-plan-site]").forEach((b) => b.onclick = () => {
    planScreen();
    Object.assign(S.plan, { patient_id: pid, site: siteLabel(b.dataset.planSite), skin_type: h.skin_type || null });
    renderPlan();
  });
}

// ------------------------------------------------------------------ the clinic on its sheets; dates in its locale
async function loadClinic() {
  C.clinic = await api("GET", "/api/clinic").catch(() => null);
  return C.clinic;
}
// a day in the configured locale: ISO (2026-03-01) unless [clinic] locale names another
function sheetDate(ts) {
  const locale = (C.clinic && C.clinic.locale) || "iso";
  if (locale === "iso") return isoDate(ts);
  try { return new Date(ts * 1000).toLocaleDateString(locale, { year: "numeric", month: "2-digit", day: "2-digit" }); }
  catch (e) { return isoDate(ts); }
}
function clinicHeader() {
  const c = C.clinic || {};
  return c.name ? `<p class="clinic" id="clinic-name"><b>${esc(c.name)}</b></p>` : "";
}
function clinicFooter() {
  const c = C.clinic || {};
  return c.contact ? `<p class="clinic-contact" id="clinic-contact">Questions or a concern: ${esc(c.contact)}${c.name ? ` (${esc(c.name)})` : ""}</p>` : "";
}
