// 小爱 playground: one page = one simulated WeChat group. Messages go to the server (POST), every
// message and reply comes back over server-sent events, so several tabs see the same room.
"use strict";
const $ = (id) => document.getElementById(id);
const COLORS = ["#e57373", "#64b5f6", "#81c784", "#ffb74d", "#ba68c8", "#4db6ac"];
let room = null;
let lastTs = 0;

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

function connect() {
  const source = new EventSource("/api/events");
  source.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    if (ev.type === "message") addMessage(ev);
    else if (ev.type === "typing") $("typing").hidden = !ev.on;
    else if (ev.type === "jobs") showJobs(ev.jobs);
  };
  source.onerror = () => {
    // The browser reconnects by itself; start from a clean list, the server replays recent messages.
    source.close();
    setTimeout(() => { $("messages").replaceChildren(); lastTs = 0; connect(); }, 1000);
  };
}

async function send() {
  const box = $("text");
  const text = box.value.trim();
  if (!text) return;
  box.value = "";
  const res = await fetch("/api/messages", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ member_id: me(), text }),
  });
  if (!res.ok) alert("发送失败：" + res.status);
  box.focus();
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
  for (const m of room.members) {
    const opt = document.createElement("option");
    opt.value = m.id;
    opt.textContent = m.name;
    $("member").appendChild(opt);
  }
  $("member").onchange = restyleMine;
  $("send").onclick = send;
  $("at").onclick = () => {
    const box = $("text");
    box.value = `@${room.bot.name} ` + box.value.replace(new RegExp(`^@${room.bot.name}\\s*`), "");
    box.focus();
  };
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  connect();
}

main();
