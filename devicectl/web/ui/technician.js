"use strict";
// Technician screens: a device's latched fault in words and its clearing, service mode, calibration
// runs with live progress, the plot filling point by point, and the certificate. Loaded after app.js
// (uses its api, show, on, message, esc, S).

const T = { run: null, timer: null };

function techDeviceActions() {
  // on the device screen: a technician clears a fault; anyone else is told to call one
  for (const card of document.querySelectorAll(".panel.device[data-device]")) {
    const d = S.devices[card.dataset.device];
    const mark = d ? `${d.fault || ""}|${d.service_mode || ""}|${S.role}` : "";
    if (!d || card.dataset.tech === mark) continue;
    card.dataset.tech = mark;
    card.querySelectorAll(".tech-action").forEach((el) => el.remove());
    const parts = [];
    if (d.fault) {
      parts.push(S.role === "technician"
        ? `<button class="go" data-fault="${esc(d.name)}">Clear fault…</button>`
        : `<p class="warning">Fault ${esc(d.fault)}: call a technician.</p>`);
    }
    if (d.service_mode) parts.push(`<p class="warning">In service mode (${esc(d.service_mode)}): no treatment.</p>`);
    if (parts.length) card.insertAdjacentHTML("beforeend", `<div class="tech-action">${parts.join("")}</div>`);
  }
  document.querySelectorAll("[data-fault]").forEach((b) => b.onclick = () => faultScreen(b.dataset.fault));
}

async function faultScreen(device) {
  let f;
  try { f = await api("GET", `/api/devices/${device}/fault`); } catch (e) { return message(e.message); }
  if (!f.active) {
    show(`<h1>${esc(device)}: no fault</h1><div class="panel"><p>The unit reports no latched fault (state ${esc(f.state)}).</p>
      <button id="back">Back</button></div>`);
    return on("back", technicianScreen);
  }
  show(`<h1>${esc(device)}: fault ${esc(f.code)}</h1><div class="panel" id="fault">
    <p><b>Cause:</b> <span id="fault-cause">${esc(f.cause)}</span></p>
    <p><b>What to do:</b> ${esc(f.what_to_do)}</p>
    ${f.advice ? `<p class="refusal">${esc(f.advice)}</p>` : ""}
    ${f.blocked ? `<p class="refusal">${esc(f.blocked)}</p>` : ""}
    ${f.can_clear ? `<div class="row"><label for="fault-reason">What was found and done</label>
      <input id="fault-reason" size="50"></div>
      <div class="row"><button id="fault-clear" class="primary">Clear the fault</button><button id="back">Back</button></div>`
      : `<div class="row"><button id="back">Back</button></div>`}
    <div id="message"></div></div>`);
  on("back", technicianScreen);
  on("fault-clear", async () => {
    try {
      const r = await api("POST", `/api/devices/${device}/fault/clear`, { reason: $("#fault-reason").value });
      show(`<h1>${esc(device)}: fault ${esc(r.cleared)} cleared</h1><div class="panel" id="fault-result">
        <p>The unit now reports <b>${esc(r.state)}</b>${r.verified ? " and no fault: verified." : ": NOT verified, read its fault again."}</p>
        ${r.next ? `<p class="warning">${esc(r.next)}</p>` : ""}<button id="back">Back</button></div>`);
      on("back", technicianScreen);
    } catch (e) { message(e.message); }
  });
}

async function technicianScreen() {
  if (T.timer) { clearInterval(T.timer); T.timer = null; }
  const devices = await api("GET", "/api/devices").catch(() => []);
  const cards = devices.map((d) => `<div class="panel" id="tech-${esc(d.name)}"><h2>${esc(d.name)} · ${esc(d.model || d.kind)} · ${esc(d.serial || "?")}</h2>
    <span class="state ${d.connected ? esc(d.state) : "DISCONNECTED"}">${d.connected ? esc(d.state) : "DISCONNECTED"}</span>
    ${d.fault ? `<p class="warning">Fault ${esc(d.fault)}</p><button class="go" data-fault="${esc(d.name)}">Clear fault…</button>` : ""}
    <div class="row">${d.service_mode
      ? `<span class="warning">Service mode (${esc(d.service_mode)})</span>
         <button data-cal="${esc(d.name)}" data-kind="${esc(d.kind)}" class="primary">Calibrate…</button>
         <button data-service-off="${esc(d.name)}">End service mode</button>`
      : `<button data-service-on="${esc(d.name)}">Service mode</button>`}</div></div>`).join("");
  show(`<h1>Technician</h1><div class="grid">${cards}</div><div id="message"></div>`);
  document.querySelectorAll("[data-fault]").forEach((b) => b.onclick = () => faultScreen(b.dataset.fault));
  document.querySelectorAll("[data-service-on]").forEach((b) => b.onclick = () => serviceMode(b.dataset.serviceOn, true));
  document.querySelectorAll("[data-service-off]").forEach((b) => b.onclick = () => serviceMode(b.dataset.serviceOff, false));
  document.querySelectorAll("[data-cal]").forEach((b) => b.onclick = () => calibrateScreen(b.dataset.cal, b.dataset.kind));
}

async function serviceMode(device, on_) {
  try { await api("PUT", `/api/devices/${device}/service-mode`, { on: on_, reason: on_ ? "technician screen" : "" }); technicianScreen(); }
  catch (e) { message(e.message); }
}

function calibrateScreen(device, kind) {
  const laser = kind === "laser";
  show(`<h1>Calibrate ${esc(device)}</h1><div class="panel">
    ${laser ? `<p>Energy meter EM-1 in the beam, at the laser's wavelength.</p>
      <div class="row"><label for="cal-setpoints">Setpoints (mJ)</label><input id="cal-setpoints" value="200,500,800"></div>
      <div class="row"><label for="cal-pulses">Pulses per setpoint</label><input id="cal-pulses" value="10" size="4"></div>`
    : `<p>Reference thermometer RT-1 clamped on the tip.</p>
      <div class="row"><label for="cal-targets">Targets (°C)</label><input id="cal-targets" value="-30,-50"></div>
      <div class="row"><label for="cal-freeze">Freeze per target (s)</label><input id="cal-freeze" value="6" size="4"></div>`}
    <div class="row"><button id="cal-start" class="primary">Start</button><button id="back">Back</button></div>
    <div id="message"></div></div>`);
  on("back", technicianScreen);
  on("cal-start", async () => {
    const list = (id) => $(id).value.split(",").map((v) => parseInt(v, 10)).filter((v) => !Number.isNaN(v));
    const body = laser ? { device, setpoints: list("#cal-setpoints"), pulses: parseInt($("#cal-pulses").value, 10), rate: 5.0 }
      : { device, targets: list("#cal-targets"), freeze: parseFloat($("#cal-freeze").value) };
    try { T.run = await api("POST", "/api/calibration-runs", body); runScreen(); } catch (e) { message(e.message); }
  });
}

function runScreen() {
  show(`<h1>Calibration of ${esc(T.run.device)}</h1><div class="panel" id="run">
    <div class="progress"><div id="run-bar" style="width:0%"></div></div>
    <p id="run-step"></p><canvas id="run-plot" width="900" height="300"></canvas>
    <table id="run-points"></table><div id="run-result"></div>
    <div class="row"><button id="run-cancel" class="go">Cancel</button><button id="back" hidden>Back</button></div>
    <div id="message"></div></div>`);
  on("run-cancel", async () => { try { await api("POST", `/api/calibration-runs/${T.run.id}/cancel`); } catch (e) { message(e.message); } });
  on("back", technicianScreen);
  renderRun();
  T.timer = setInterval(async () => {
    try { T.run = await api("GET", `/api/calibration-runs/${T.run.id}`); } catch (e) { return; }
    if (!$("#run")) { clearInterval(T.timer); T.timer = null; return; }
    renderRun();
    if (T.run.state !== "running") { clearInterval(T.timer); T.timer = null; }
  }, 300);
}

function renderRun() {
  const r = T.run;
  $("#run-bar").style.width = `${Math.round(r.progress * 100)}%`;
  $("#run-step").textContent = `${Math.round(r.progress * 100)} % · ${r.step}`;
  const laser = r.kind === "laser";
  $("#run-points").innerHTML = (laser ? "<tr><th>Set (mJ)</th><th>Emitted / set</th><th>Monitor / meter</th></tr>"
    : "<tr><th>Target (°C)</th><th>Sensor − reference (°C)</th></tr>")
    + r.points.map((p) => laser ? `<tr><td>${p.set_mj}</td><td>${p.gain.toFixed(3)}</td><td>${p.monitor_ratio.toFixed(3)}</td></tr>`
      : `<tr><td>${p.target_c}</td><td>${p.offset_c.toFixed(2)}</td></tr>`).join("");
  drawRunPlot(r);
  if (r.state === "running") return;
  $("#run-cancel").hidden = true; $("#back").hidden = false;
  const verdict = { passed: "PASSED", failed: "FAILED", aborted: "ABORTED", cancelled: "CANCELLED" }[r.state];
  const detail = r.state === "aborted" && r.error ? `<p>${esc(r.error.what)} at ${esc(r.error.address)}: ${esc(r.error.cause)}</p><p><b>Next:</b> ${esc(r.error.next_step)}</p>`
    : r.state === "failed" ? `<p>${r.reasons.map(esc).join("<br>")}</p><p>Treatment with this device is refused until it passes a calibration.</p>` : "";
  $("#run-result").innerHTML = `<h2 class="verdict ${esc(r.state)}">${verdict}</h2>${detail}
    ${r.record_id ? `<div class="row"><button id="run-cert" class="primary">Certificate</button><button id="run-pdf">PDF</button></div>` : ""}`;
  on("run-cert", () => openCertificate(r.record_id, "html"));
  on("run-pdf", () => openCertificate(r.record_id, "pdf"));
}

async function openCertificate(recordId, format) {
  const res = await fetch(`/api/calibrations/${recordId}/certificate.${format}`, { headers: { Authorization: `Bearer ${S.token}` } });
  if (!res.ok) return message(`the certificate could not be opened (${res.status})`);
  window.open(URL.createObjectURL(await res.blob()), "_blank");
}

function drawRunPlot(r) {
  const c = $("#run-plot"); if (!c) return;
  const g = c.getContext("2d"); g.clearRect(0, 0, c.width, c.height);
  const pts = r.kind === "laser" ? r.points.flatMap((p) => p.meter_mj.map((m) => [p.set_mj, m]))
    : r.points.flatMap((p) => p.reference_c.map((ref, i) => [ref, p.sensor_c[i]]));
  if (!pts.length) return;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const lo = Math.min(...xs, ...ys) * (r.kind === "laser" ? 0.8 : 1.1), hi = Math.max(...xs, ...ys) * (r.kind === "laser" ? 1.1 : 0.9);
  const sx = (v) => 40 + (v - lo) / (hi - lo || 1) * (c.width - 60), sy = (v) => c.height - 30 - (v - lo) / (hi - lo || 1) * (c.height - 50);
  g.strokeStyle = "#a9b4c2"; g.setLineDash([6, 6]); g.beginPath(); g.moveTo(sx(lo), sy(lo)); g.lineTo(sx(hi), sy(hi)); g.stroke(); g.setLineDash([]);
  g.fillStyle = "#3ba3ff"; for (const [x, y] of pts) { g.beginPath(); g.arc(sx(x), sy(y), 4, 0, 7); g.fill(); }
}

// ------------------------------------------------------------------ hooks into the shell (app.js)
(function hookTechnician() {
  const style = document.createElement("style");
  style.textContent = `.progress { height: 28px; background: #0b0f14; border: 2px solid var(--line); border-radius: 10px; overflow: hidden; }
    .progress > div { height: 100%; background: var(--ok); transition: width .2s; }
    .verdict.passed { color: var(--ok); } .verdict.failed, .verdict.aborted { color: var(--bad); }`;
  document.head.appendChild(style);
  const btn = document.createElement("button");
  Object.assign(btn, { id: "tech-btn", className: "small", textContent: "Technician", hidden: true, onclick: technicianScreen });
  $("#topbar").insertBefore(btn, $("#logout-btn"));
  const sync = () => { btn.hidden = !(S.token && S.role === "technician"); };
  new MutationObserver(sync).observe($("#who"), { childList: true, characterData: true, subtree: true });
  new MutationObserver(techDeviceActions).observe($("#screen"), { childList: true, subtree: true });
})();
