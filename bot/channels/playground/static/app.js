// 小爱 playground: one page = one simulated WeChat group. Messages go to the server (POST), every
// message and reply comes back over server-sent events, so several tabs see the same room.
// Nothing is lost: the server keeps the conversation and replays what came after the last message this
// page has; a message typed while the server is down waits in an outbox (kept across reloads) and is
// sent when it is back, or marked as failed with the reason.
"use strict";
const $ = (id) => document.getElementById(id);
const COLORS = ["#e57373", "#64b5f6", "#81c784", "#ffb74d", "#ba68c8", "#4db6ac"];
const OUTBOX_KEY = "xiaoai-playground-outbox";
let room = null;
let lastTs = 0;
let lastId = 0; // newest message id received over the event stream
let epoch = null; // which server transcript those ids belong to
let online = false;
let flushing = false;
const shown = new Set(); // message ids on the page
let outbox = loadOutbox(); // [{client_id, member_id, text}] not yet accepted by the server

function me() { return $("member").value; }

function avatar(id, name, fromBot) {
  const el = document.createElement("div");
  el.className = "avatar";
  const index = [...id].reduce((a, c) => a + c.charCodeAt(0), 0) % COLORS.length;
  el.style.background = fromBot ? "#07c160" : COLORS[index];
  el.textContent = fromBot ? "爱" : name.slice(-1);
  return el;
}

function textWithMentions(container, text) {
  // Highlight "@名字" like WeChat does.
  const parts = text.split(/(@[^\s\u2005@]+)/);
  for (const part of parts) {
    if (!part) continue;
    if (part.startsWith("@")) {
      const span = document.createElement("span");
      span.className = "mention";
      span.textContent = part;
      container.appendChild(span);
    } else {
      container.appendChild(document.createTextNode(part));
    }
  }
}

function addTime(ts) {
  if (ts - lastTs < 300) return;
  lastTs = ts;
  const el = document.createElement("div");
  el.className = "time";
  el.textContent = new Date(ts * 1000).toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit" });
  $("messages").appendChild(el);
}

function addMessage(ev) {
  addTime(ev.ts);
  const row = document.createElement("div");
  row.className = "msg" + (!ev.from_bot && ev.sender_id === me() ? " me" : "") + (ev.from_bot ? " bot" : "");
  row.dataset.sender = ev.sender_id;
  row.appendChild(avatar(ev.sender_id, ev.sender_name, ev.from_bot));
  const body = document.createElement("div");
  body.className = "body";
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = ev.sender_name;
  if (!ev.from_bot) {
    const id = document.createElement("span");
    id.className = "member-id";
    id.textContent = ev.sender_id;
    id.title = "成员 id（bot.admins 里填它）";
    name.appendChild(id);
  }
  body.appendChild(name);
  const text = (ev.mentions.length ? ev.mentions.map((n) => "@" + n).join(" ") + " " : "") + (ev.text || "");
  if (text.trim() || !ev.media) {
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    textWithMentions(bubble, text);
    const pct = ev.from_bot && /(\d{1,3})\s*%/.exec(ev.text || "");
    if (pct) {
      const bar = document.createElement("div");
      bar.className = "progress";
      const fill = document.createElement("i");
      fill.style.width = Math.min(100, Number(pct[1])) + "%";
      bar.appendChild(fill);
      bubble.appendChild(bar);
    }
    body.appendChild(bubble);
  }
  if (ev.media) body.appendChild(mediaElement(ev.media));
  row.appendChild(body);
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.appendChild(row);
  if (atBottom || !ev.from_bot) list.scrollTop = list.scrollHeight;
}

function mediaElement(media) {
  const box = document.createElement("div");
  box.className = "media";
  let el;
  if (media.kind === "image") {
    el = document.createElement("img");
    el.alt = media.name;
  } else if (media.kind === "video") {
    el = document.createElement("video");
    el.controls = true;
    el.playsInline = true;
    el.preload = "metadata";
  } else {
    el = document.createElement("a");
    el.textContent = "📎 " + media.name;
    el.href = media.url;
    el.target = "_blank";
  }
  if (media.kind !== "file") el.src = media.url;
  box.appendChild(el);
  return box;
}

function showJobs(jobs) {
  const panel = $("jobs");
  panel.replaceChildren();
  panel.hidden = jobs.length === 0;
  for (const job of jobs) {
    const row = document.createElement("div");
    row.className = "job";
    const label = document.createElement("span");
    const steps = job.steps ? ` ${job.step}/${job.steps}` : "";
    label.textContent = `#${job.id} ${job.label} · ${job.asker} · ${job.state}${steps}`;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("i");
    fill.style.width = (job.steps ? Math.round((100 * job.step) / job.steps) : 0) + "%";
    bar.appendChild(fill);
    row.append(label, bar);
    panel.appendChild(row);
  }
}

function setOnline(on) {
  online = on;
  $("status").hidden = on;
  if (!on) $("typing").hidden = true;
}

function connect() {
  const query = new URLSearchParams({ since: String(lastId) });
  if (epoch) query.set("epoch", epoch);
  const source = new EventSource("/api/events?" + query);
  source.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.type === "hello") {
      if (ev.reset) { // another transcript (its file was removed): show it from the start
        $("messages").replaceChildren();
        shown.clear();
        lastTs = 0;
        lastId = 0;
        showOutbox();
      }
      epoch = ev.epoch;
      setOnline(true);
      flushOutbox();
    } else if (ev.type === "message") {
      lastId = Math.max(lastId, ev.id);
      showOnce(ev);
    } else if (ev.type === "typing") $("typing").hidden = !ev.on;
    else if (ev.type === "jobs") showJobs(ev.jobs);
  };
  source.onerror = () => {
    // Keep everything shown; reconnect and ask only for what came after the last message we have.
    source.close();
    setOnline(false);
    setTimeout(connect, 1000);
  };
}

function showOnce(ev) {
  if (ev.client_id) removePending(ev.client_id);
  if (shown.has(ev.id)) return;
  shown.add(ev.id);
  addMessage(ev);
}

// -- the outbox: messages typed while the server could not take them ------------------------------
function loadOutbox() {
  try { return JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]"); } catch { return []; }
}

function saveOutbox() {
  try { localStorage.setItem(OUTBOX_KEY, JSON.stringify(outbox)); } catch { /* private mode: memory only */ }
}

function newClientId() {
  return (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random().toString(16).slice(2);
}

function pendingRow(item) {
  const row = document.createElement("div");
  row.className = "msg me pending";
  row.dataset.clientId = item.client_id;
  row.dataset.sender = item.member_id;
  const body = document.createElement("div");
  body.className = "body";
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  textWithMentions(bubble, item.text);
  const state = document.createElement("div");
  state.className = "state";
  state.textContent = online ? "发送中…" : "等待连接，恢复后自动发送";
  body.append(bubble, state);
  row.appendChild(body);
  return row;
}

function showPending(item) {
  const list = $("messages");
  list.appendChild(pendingRow(item));
  list.scrollTop = list.scrollHeight;
}

function showOutbox() {
  for (const item of outbox) showPending(item);
}

function removePending(clientId) {
  const row = document.querySelector(`.msg.pending[data-client-id="${CSS.escape(clientId)}"]`);
  if (row) row.remove();
}

function markFailed(item, reason) {
  const row = document.querySelector(`.msg.pending[data-client-id="${CSS.escape(item.client_id)}"]`);
  if (!row) return;
  row.classList.add("failed");
  row.querySelector(".state").textContent = "发送失败：" + reason;
}

async function failureReason(res) {
  try {
    const body = await res.json();
    if (typeof body.detail === "string") return body.detail;
  } catch { /* not JSON */ }
  return "HTTP " + res.status;
}

async function flushOutbox() {
  if (flushing || !online) return;
  flushing = true;
  try {
    while (outbox.length && online) {
      const item = outbox[0];
      let res;
      try {
        res = await fetch("/api/messages", {
          method: "POST",
          signal: AbortSignal.timeout(10000), // a server dying mid-request must not hold the outbox
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(item),
        });
      } catch {
        retryLater(); // the server went away again: the message stays in the outbox
        break;
      }
      if (res.status >= 500) { retryLater(); break; } // stopping or starting: try again shortly
      outbox.shift();
      saveOutbox();
      if (res.ok) showOnce(await res.json());
      else markFailed(item, await failureReason(res));
    }
  } finally {
    flushing = false;
  }
}

function retryLater() {
  setTimeout(flushOutbox, 2000);
}

function send() {
  const box = $("text");
  const text = box.value.trim();
  if (!text) return;
  box.value = "";
  const item = { client_id: newClientId(), member_id: me(), text };
  outbox.push(item);
  saveOutbox();
  showPending(item);
  flushOutbox();
  box.focus();
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function sendPhoto() {
  // The photo goes straight to the room (no outbox: it is too large to keep in the page's storage).
  const input = $("photo");
  const file = input.files && input.files[0];
  input.value = "";
  if (!file) return;
  const body = { client_id: newClientId(), member_id: me(), name: file.name, data: await readBase64(file) };
  try {
    const res = await fetch("/api/photos", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (res.ok) showOnce(await res.json());
    else alert("照片没发出去：" + (await failureReason(res)));
  } catch {
    alert("照片没发出去：连接断开了，稍后再试");
  }
}

function restyleMine() {
  for (const row of document.querySelectorAll(".msg")) {
    if (!row.classList.contains("bot")) row.classList.toggle("me", row.dataset.sender === me());
  }
}

async function main() {
  room = await (await fetch("/api/room")).json();
  $("topic").textContent = room.topic;
  $("count").textContent = `(${room.members.length + 1})`;
  document.title = `${room.bot.name} · ${room.topic}`;
  $("text").placeholder = `@${room.bot.name} 说点什么… (Enter 发送)`;
  if (room.notice) { $("notice").textContent = room.notice; $("notice").hidden = false; }
  $("members").textContent = "成员 id：" + room.members.map((m) => `${m.name} ${m.id}`).join(" · ")
    + (room.admin_hint ? "。" + room.admin_hint : "");
  for (const m of room.members) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = m.name;
    $("member").appendChild(opt);
  }
  $("member").onchange = restyleMine;
  $("send").onclick = send;
  $("photo").onchange = sendPhoto;
  $("at").onclick = () => {
    const box = $("text");
    box.value = `@${room.bot.name} ` + box.value.replace(new RegExp(`^@${room.bot.name}\\s*`), "");
    box.focus();
  };
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  showOutbox();
  connect();
}

async function start() {
  // The server may be down when the page (re)loads: keep trying, showing that it is reconnecting.
  for (;;) {
    try {
      await main();
      return;
    } catch {
      setOnline(false);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

start();
