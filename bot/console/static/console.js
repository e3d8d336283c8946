// 小爱 admin console: a small page over /admin/api. Every change sends the session's CSRF token in a
// header; all data is put in the page as text (textContent), never as HTML.
'use strict'

const API = '/admin/api'
const POLL_MS = 1000
let csrf = null
let tab = 'status'
let timer = null
let lastQr = null

const $ = (sel, root = document) => root.querySelector(sel)
function el (tag, props = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value
    else if (key === 'dataset') Object.assign(node.dataset, value)
    else if (key in node) node[key] = value
    else node.setAttribute(key, value)
  }
  for (const child of children) node.append(child)
  return node
}
const when = ts => (ts ? new Date(ts * 1000).toLocaleString('zh-CN', { hour12: false }) : '')
const seconds = s => (s == null ? '' : s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`)

async function api (path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf
  const response = await fetch(API + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin',
  })
  const data = await response.json().catch(() => ({}))
  if (response.status === 401 && path !== '/login') showLogin()
  if (!response.ok) {
    const detail = typeof data.detail === 'string' ? data.detail : JSON.stringify(data.detail || data)
    throw Object.assign(new Error(detail), { status: response.status })
  }
  return data
}

// -- login ---------------------------------------------------------------------------------------
function showLogin () {
  csrf = null
  clearInterval(timer)
  $('#app').hidden = true
  $('#tabs').hidden = true
  $('#login').hidden = false
}

function showApp () {
  $('#login').hidden = true
  $('#app').hidden = false
  $('#tabs').hidden = false
  selectTab(tab)
}

$('#login-form').addEventListener('submit', async event => {
  event.preventDefault()
  $('#login-error').textContent = ''
  try {
    const data = await api('/login', { method: 'POST', body: { password: $('#password').value } })
    csrf = data.csrf
    $('#password').value = ''
    showApp()
  } catch (e) {
    $('#login-error').textContent = e.status === 401 ? '密码不对 Wrong password' : e.message
  }
})

$('#logout').addEventListener('click', async () => {
  await api('/logout', { method: 'POST' }).catch(() => {})
  showLogin()
})

// -- tabs ----------------------------------------------------------------------------------------
function selectTab (name) {
  tab = name
  for (const button of document.querySelectorAll('#tabs button[data-tab]')) {
    button.classList.toggle('active', button.dataset.tab === name)
  }
  for (const section of document.querySelectorAll('.tab')) section.hidden = section.id !== `tab-${name}`
  clearInterval(timer)
  const load = { status: loadStatus, queue: loadQueue, groups: loadGroups, settings: loadSettings }[name]
  load()
  if (name === 'status' || name === 'queue') timer = setInterval(load, POLL_MS) // live: QR, progress
}
for (const button of document.querySelectorAll('#tabs button[data-tab]')) {
  button.addEventListener('click', () => selectTab(button.dataset.tab))
}

// -- status --------------------------------------------------------------------------------------
async function loadStatus () {
  const data = await api('/status').catch(() => null)
  if (!data) return
  const c = data.connection
  const state = $('#conn-state')
  state.textContent = c.text
  state.className = `pill ${c.phase}`
  state.dataset.phase = c.phase
  $('#conn-since').textContent = when(c.since)
  $('#conn-account').textContent = c.account ? `· ${c.account}` : ''
  $('#conn-reason').textContent = c.phase === 'serving' ? '' : c.reason || ''
  $('#qr').hidden = !c.has_qr
  if (c.has_qr && c.qr_at !== lastQr) { // a new code (or a scan status change): fetch the image again
    lastQr = c.qr_at
    $('#qr-image').src = `${API}/qr.svg?at=${encodeURIComponent(c.qr_at)}`
  }
  $('#qr-note').textContent = c.phase === 'logged_out'
    ? '已退出登录，请重新扫码 Logged out: scan again with WeChat'
    : '用微信扫码登录 Scan with WeChat to log the bot in'
  $('#checks').replaceChildren(...data.checks.map(check => el('li', { class: check.ok ? 'ok' : 'bad' },
    el('b', {}, check.name), `: ${check.detail}`, ...(check.fix ? [el('span', { class: 'fix' }, `→ ${check.fix}`)] : []))))
  const cfg = data.config
  $('#config-line').textContent = cfg.path
    ? `config: ${cfg.path} (hot-reloaded ${cfg.reloads} times)` : 'config: embedded defaults (no file)'
}

// -- queue ---------------------------------------------------------------------------------------
const roomCell = job => el('td', { title: job.room }, job.is_room ? (job.room_topic || job.room) : `私聊 ${job.asker}`)
async function loadQueue () {
  const data = await api('/jobs').catch(e => { $('#queue-error').textContent = e.message; return null })
  if (!data) return
  const now = Date.now() / 1000
  $('#pending tbody').replaceChildren(...data.pending.map(job => {
    const bar = job.steps ? el('progress', { max: job.steps, value: job.step }) : ''
    const cancel = el('button', { class: 'cancel', type: 'button', textContent: '取消 Cancel' })
    cancel.addEventListener('click', async () => {
      cancel.disabled = true
      try {
        await api(`/jobs/${job.id}/cancel`, { method: 'POST' })
        $('#queue-error').textContent = ''
      } catch (e) {
        $('#queue-error').textContent = e.message
      }
      loadQueue()
    })
    return el('tr', { dataset: { jobId: job.id, state: job.state } }, el('td', {}, `#${job.id}`),
      el('td', {}, job.label), el('td', {}, job.asker), roomCell(job), el('td', {}, job.state_text),
      el('td', {}, bar, job.steps ? ` ${job.step}/${job.steps}` : ''), el('td', {}, seconds(now - job.created_at)),
      el('td', {}, cancel))
  }))
  $('#pending-empty').hidden = data.pending.length > 0
  $('#finished tbody').replaceChildren(...data.finished.map(job => el('tr', { dataset: { jobId: job.id, state: job.state } },
    el('td', {}, `#${job.id}`), el('td', {}, job.label), el('td', {}, job.asker), roomCell(job),
    el('td', {}, job.state_text), el('td', {}, when(job.finished_at)),
    el('td', {}, job.started_at ? seconds(job.finished_at - job.started_at) : ''), el('td', { class: 'error' }, job.error || ''))))
}

// -- groups --------------------------------------------------------------------------------------
function roomCard (room, intents, quotaKeys, writable) {
  const allowed = el('input', { type: 'checkbox', class: 'allowed', checked: room.allowed })
  const boxes = intents.map(name => el('label', {}, el('input', {
    type: 'checkbox', class: 'intent', value: name, checked: room.intents === null || room.intents.includes(name),
  }), ` ${name}`))
  const persona = el('textarea', { class: 'persona', placeholder: '空 = 全局 chat.persona', value: room.persona })
  const quotas = quotaKeys.map(key => el('label', {}, `${key} `, el('input', {
    type: 'text', class: 'quota', name: key, size: 5, value: key in room.quotas ? String(room.quotas[key] ?? 'null') : '',
    placeholder: 'global',
  })))
  const error = el('p', { class: 'error room-error', role: 'alert' })
  const saved = el('p', { class: 'ok room-saved', hidden: true, textContent: '已保存并生效 Saved and applied.' })
  const save = el('button', { class: 'save', type: 'button', textContent: '保存 Save', disabled: !writable })
  const card = el('div', { class: 'room', dataset: { roomId: room.room_id } },
    el('h3', {}, room.topic, el('span', { class: 'muted' }, `  ${room.room_id}`)),
    el('label', {}, allowed, ' 在本群开通小爱 (allowed)'), el('div', { class: 'intents' }, '功能 intents: ', ...boxes),
    el('div', {}, '人设 persona', persona), el('div', { class: 'quotas' }, '额度 quotas (空 = 全局): ', ...quotas),
    save, error, saved)
  save.addEventListener('click', async () => {
    error.textContent = ''
    saved.hidden = true
    const on = [...card.querySelectorAll('input.intent')].filter(b => b.checked).map(b => b.value)
    const body = {
      room_id: room.room_id, topic: room.topic, allowed: allowed.checked,
      intents: on.length === intents.length ? null : on, persona: persona.value,
      quotas: Object.fromEntries([...card.querySelectorAll('input.quota')].map(i => [i.name, i.value])),
    }
    try {
      await api('/rooms', { method: 'POST', body })
      saved.hidden = false
    } catch (e) {
      error.textContent = `没有保存 Not saved: ${e.message}`
    }
  })
  return card
}

async function loadGroups () {
  const data = await api('/rooms').catch(() => null)
  if (!data) return
  $('#groups-readonly').hidden = data.writable
  $('#rooms').replaceChildren(...data.rooms.map(r => roomCard(r, data.intents, data.quota_keys, data.writable)))
}

// -- settings ------------------------------------------------------------------------------------
function settingInput (field) {
  const value = field.value ?? ''
  if (field.kind === 'choice') {
    return el('select', { dataset: { path: field.path } },
      ...field.choices.map(choice => el('option', { value: choice, textContent: choice, selected: choice === value })))
  }
  if (field.kind === 'yaml' || field.kind === 'list') {
    return el('textarea', { dataset: { path: field.path }, value, rows: field.kind === 'yaml' ? 6 : 3 })
  }
  return el('input', { type: 'text', dataset: { path: field.path }, value })
}

async function loadSettings () {
  const data = await api('/settings').catch(() => null)
  if (!data) return
  const form = $('#settings')
  const save = el('button', { class: 'save', type: 'submit', textContent: '保存 Save', disabled: !data.writable })
  form.replaceChildren(...data.fields.map(field => el('label', {}, `${field.label} `,
    el('code', {}, field.path), el('br'), settingInput(field), field.hint ? el('span', { class: 'hint' }, ` ${field.hint}`) : '')), save)
  form.dataset.original = JSON.stringify(Object.fromEntries(data.fields.map(f => [f.path, f.value ?? ''])))
  $('#secrets').replaceChildren(...data.secrets.map(s => el('li', {}, el('code', {}, s.env),
    ` — ${s.what}: `, el('b', { class: s.set ? 'ok' : 'muted' }, s.set ? 'set' : 'not set'))))
}

$('#settings').addEventListener('submit', async event => {
  event.preventDefault()
  const form = $('#settings')
  const original = JSON.parse(form.dataset.original || '{}')
  const values = {}
  for (const input of form.querySelectorAll('[data-path]')) { // only what was changed is written
    if (input.value !== original[input.dataset.path]) values[input.dataset.path] = input.value
  }
  $('#settings-error').textContent = ''
  $('#settings-saved').hidden = true
  try {
    await api('/settings', { method: 'POST', body: { values } })
    $('#settings-saved').hidden = false
    loadSettings()
  } catch (e) {
    $('#settings-error').textContent = `没有保存 Not saved: ${e.message}`
  }
})

// -- start ---------------------------------------------------------------------------------------
async function start () {
  const info = await api('/session')
  $('#bot-name').textContent = info.bot
  $('#open-note').hidden = info.password_required
  if (info.authenticated) {
    csrf = info.csrf
    showApp()
  } else {
    showLogin()
  }
}
start()
