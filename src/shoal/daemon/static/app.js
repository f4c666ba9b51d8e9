// shoal's web page: the qBittorrent Web API v2 from a browser, no build step, no
// external assets. Polls sync/maindata (incremental, rid-based) once a second.
"use strict";

const API = "/api/v2/";
let rid = 0;
const torrents = new Map(); // hash -> merged torrent fields
let timer = null;

function $(id) { return document.getElementById(id); }

async function post(method, fields, body) {
  const init = { method: "POST", credentials: "same-origin" };
  if (body) init.body = body;
  else init.body = new URLSearchParams(fields || {});
  const response = await fetch(API + method, init);
  if (response.status === 403) { showLogin(); throw new Error("not logged in"); }
  if (!response.ok) throw new Error(await response.text());
  return response;
}

function showLogin() {
  if (timer) { clearInterval(timer); timer = null; }
  $("app").hidden = true; $("logout").hidden = true; $("login").hidden = false;
}

function showApp() {
  $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
  rid = 0; torrents.clear();
  refresh();
  timer = setInterval(refresh, 1000);
}

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return bytes.toFixed(i ? 1 : 0) + " " + units[i];
}

async function refresh() {
  let data;
  try {
    data = await (await post("sync/maindata", { rid: String(rid) })).json();
  } catch (e) { return; }
  const changed = data.full_update || data.torrents || data.torrents_removed;
  if (data.full_update) torrents.clear();
  for (const [hash, fields] of Object.entries(data.torrents || {})) {
    torrents.set(hash, Object.assign(torrents.get(hash) || {}, fields));
  }
  for (const hash of data.torrents_removed || []) torrents.delete(hash);
  rid = data.rid;
  if (!changed) return; // keep the rows (and the button under the pointer) as they are
  if (data.server_state) {
    const s = data.server_state;
    if (s.dl_info_speed !== undefined && s.up_info_speed !== undefined)
      $("totals").textContent = "↓ " + size(s.dl_info_speed) + "/s  ↑ " + size(s.up_info_speed) +
        "/s  DHT nodes: " + s.dht_nodes;
  }
  render();
}

function cell(row, cls, text) {
  const td = document.createElement("td");
  td.className = cls;
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function button(td, cls, label, action) {
  const b = document.createElement("button");
  b.className = cls; b.textContent = label; b.type = "button";
  b.addEventListener("click", action);
  td.appendChild(b);
}

function render() {
  const body = document.querySelector("#torrents tbody");
  body.replaceChildren();
  const rows = [...torrents.entries()].sort((a, b) => (a[1].added_on || 0) - (b[1].added_on || 0));
  for (const [hash, t] of rows) {
    const tr = document.createElement("tr");
    tr.dataset.hash = hash;
    cell(tr, "name", t.name || hash);
    const pct = (100 * (t.progress || 0)).toFixed(1) + "%";
    const progress = cell(tr, "progress", "");
    const bar = document.createElement("span"); bar.className = "bar";
    const fill = document.createElement("span"); fill.style.width = pct;
    bar.appendChild(fill); progress.appendChild(bar);
    progress.appendChild(document.createTextNode(" " + pct));
    cell(tr, "dlspeed", size(t.dlspeed || 0) + "/s");
    cell(tr, "upspeed", size(t.upspeed || 0) + "/s");
    cell(tr, "peers", String((t.num_seeds || 0) + (t.num_leechs || 0)));
    cell(tr, "state", t.state || "");
    const actions = cell(tr, "actions", "");
    const paused = (t.state || "").startsWith("paused") || (t.state || "").startsWith("stopped");
    if (paused) button(actions, "resume", "Resume", () => post("torrents/resume", { hashes: hash }).then(refresh));
    else button(actions, "pause", "Pause", () => post("torrents/pause", { hashes: hash }).then(refresh));
    button(actions, "remove", "Remove", () =>
      post("torrents/delete", { hashes: hash, deleteFiles: "false" }).then(refresh));
    body.appendChild(tr);
  }
  $("empty").hidden = torrents.size > 0;
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch(API + "auth/login", {
    method: "POST", credentials: "same-origin",
    body: new URLSearchParams({ username: $("username").value, password: $("password").value }),
  });
  const text = await response.text();
  if (response.ok && text.trim() === "Ok.") showApp();
  else $("login-error").textContent = response.status === 403 ? text : "Wrong user name or password.";
});

$("logout").addEventListener("click", async () => {
  await fetch(API + "auth/logout", { method: "POST", credentials: "same-origin" });
  showLogin();
});

$("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData();
  const magnet = $("magnet").value.trim();
  if (magnet) form.append("urls", magnet);
  for (const file of $("file").files) form.append("torrents", file, file.name);
  if ($("add-paused").checked) { form.append("paused", "true"); form.append("stopped", "true"); }
  try {
    const text = await (await post("torrents/add", null, form)).text();
    $("add-status").textContent = text.trim() === "Ok." ? "Added." : "Nothing added (already there?).";
    $("magnet").value = ""; $("file").value = "";
    refresh();
  } catch (e) {
    $("add-status").textContent = String(e.message || e);
  }
});

// Logged in already (cookie or localhost bypass)? The version call says.
fetch(API + "app/version", { credentials: "same-origin" })
  .then((r) => (r.ok ? showApp() : showLogin()))
  .catch(showLogin);
