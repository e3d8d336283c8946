// 小爱 admin console: a small page over /admin/api. Every change sends the session's CSRF token in a
// header; all data is put in the page as text (textContent), never as HTML. Chinese by default; the
// header's switch stores English in the xiaoai_lang cookie, which the server reads too.
'use strict'

const API = '/admin/api'
const POLL_MS = 1000
let csrf = null
let tab = 'status'
let timer = null
let bannerTimer = null
let lastQr = null
let logAfter = 0

const LANG = (document.cookie.match(/(?:^|; )xiaoai_lang=(\w+)/) || [])[1] === 'en' ? 'en' : 'zh'
const WORDS = { // key: [中文, English]
  console: ['管理台', 'console'],
  tab_status: ['状态', 'Status'], tab_queue: ['队列', 'Queue'], tab_groups: ['群', 'Groups'],
  tab_settings: ['设置', 'Settings'], tab_keys: ['密钥', 'Keys'], tab_logs: ['日志', 'Log'],
  logout: ['退出', 'Log out'], other_lang: ['English', '中文'],
  open_note: ['没有设置管理密码：这个管理台不用登录，所以只有这台机器能打开。要从别的设备打开，请设置环境变量 XIAOAI_ADMIN_PASSWORD。',
    'No XIAOAI_ADMIN_PASSWORD is set: this console has no login, so it only listens on this machine.'],
  scan_banner: ['微信还没有登录。', 'WeChat is not logged in.'], scan_go: ['去扫码登录', 'Scan the QR code'],
  password: ['管理密码', 'Password'], login: ['登录', 'Log in'], wrong_password: ['密码不对', 'Wrong password'],
  wechat: ['微信', 'WeChat'], since: ['自', 'since'], qr_note: ['用微信扫码登录', 'Scan with WeChat to log the bot in'],
  qr_again: ['已退出登录，请重新扫码', 'Logged out: scan again with WeChat'],
  reconnect: ['重新连接微信', 'Reconnect WeChat'], reload: ['重新加载配置', 'Reload the config'],
  checks: ['检查', 'Checks'], pending: ['排队和生成中', 'Pending and running'],
  col_kind: ['类型', 'kind'], col_who: ['谁', 'who'], col_room: ['群', 'room'], col_state: ['状态', 'state'],
  col_progress: ['进度', 'progress'], col_waiting: ['等了', 'waiting'], col_finished: ['完成于', 'finished'],
  col_took: ['用时', 'took'], col_error: ['出错原因', 'error'],
  queue_empty: ['队列是空的。', 'The queue is empty.'], finished: ['最近一天完成的', 'Finished in the last day'],
  rooms: ['群', 'Rooms'], readonly: ['没有配置文件：小爱用的是内置默认设置，这里改了也存不下来。请用 --config config.yaml 启动。',
    'No config file: the bot runs on its built-in defaults, so nothing can be saved.'],
  saved: ['已保存，马上生效。', 'Saved and applied.'], not_saved: ['没有保存：', 'Not saved: '],
  save: ['保存', 'Save'], cancel: ['取消', 'Cancel'], private_chat: ['私聊', 'private'],
  keys_title: ['密钥和服务地址', 'Keys and endpoints'],
  keys_note: ['保存在数据目录的 secrets.json（只有运行小爱的用户能读），不写进 config.yaml，保存后马上生效，不用重启。环境变量设置的优先，这里改不了。',
    'Kept in secrets.json in the data folder (readable by the bot\'s user only), never in config.yaml; applied at once. Environment variables win.'],
  key_set: ['已设置', 'set'], key_unset: ['未设置', 'not set'], key_env: ['（由环境变量设置，这里改不了）', ' (set by an environment variable, which wins)'],
  key_new: ['填新的值（留空 = 不改）', 'new value (empty = unchanged)'], key_clear: ['清除', 'clear'],
  test: ['测试一下', 'Test'], testing: ['正在测试…', 'testing…'],
  log_level: ['显示级别', 'Level'], level_debug: ['调试', 'debug'], level_info: ['信息', 'info'],
  level_warning: ['警告', 'warning'], level_error: ['错误', 'error'],
  log_note: ['最近的日志，每秒更新；密钥和口令都已遮住。', 'The latest lines, live; secrets are masked.'],
  allowed: [' 在本群开通小爱', ' serve this room'], features: ['功能：', 'features: '], persona: ['人设', 'persona'],
  persona_hint: ['空 = 用全局人设', 'empty = the global persona'], quotas: ['额度（空 = 用全局的）：', 'quotas (empty = global): '],
  global: ['全局', 'global'], config_file: ['配置文件：', 'config: '], reloads: ['（已热更新 {n} 次）', ' (hot-reloaded {n} times)'],
  no_file: ['配置：内置默认设置（没有文件）', 'config: built-in defaults (no file)'], fix: ['怎么办：', 'fix: '],
  seconds: ['{n} 秒', '{n} s'], minutes: ['{n} 分钟', '{n} min'],
}
const t = (key, values = {}) => (WORDS[key] ? WORDS[key][LANG === 'en' ? 1 : 0] : key)
  .replace(/\{(\w+)\}/g, (_, name) => values[name])

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
const when = ts => (ts ? new Date(ts * 1000).toLocaleString(LANG === 'en' ? 'en-GB' : 'zh-CN', { hour12: false }) : '')
const seconds = s => (s == null ? '' : s < 90 ? t('seconds', { n: Math.round(s) }) : t('minutes', { n: Math.round(s / 60) }))

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
  clearInterval(bannerTimer)
  $('#app').hidden = true
  $('#tabs').hidden = true
  $('#login').hidden = false
}

function showApp () {
  $('#login').hidden = true
  $('#app').hidden = false
  $('#tabs').hidden = false
  selectTab(tab)
  clearInterval(bannerTimer)
  bannerTimer = setInterval(loadBanner, 2 * POLL_MS)
  loadBanner()
}

// -- on every page: while WeChat waits for a scan, a banner leads to the QR code ---------------------
async function loadBanner () {
  const data = await api('/status').catch(() => null)
  const phase = data ? data.connection.phase : null
  $('#scan-banner').hidden = !(phase === 'waiting_for_scan' || phase === 'logged_out') || tab === 'status'
}
$('#scan-banner-go').addEventListener('click', () => selectTab('status'))
$('#lang-switch').addEventListener('click', () => {
  document.cookie = `xiaoai_lang=${LANG === 'en' ? 'zh' : 'en'}; path=/admin; SameSite=Strict`
  location.reload()
})

$('#login-form').addEventListener('submit', async event => {
  event.preventDefault()
  $('#login-error').textContent = ''
  try {
    const data = await api('/login', { method: 'POST', body: { password: $('#password').value } })
    csrf = data.csrf
    $('#password').value = ''
    showApp()
  } catch (e) {
    $('#login-error').textContent = e.status === 401 ? t('wrong_password') : e.message
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
  const load = { status: loadStatus, queue: loadQueue, groups: loadGroups, settings: loadSettings, keys: loadKeys, logs: loadLogs }[name]
  if (name === 'logs') { logAfter = 0; $('#log-lines').replaceChildren() }
  load()
  if (['status', 'queue', 'logs'].includes(name)) timer = setInterval(load, POLL_MS) // live: QR, progress, log
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
    ? t('qr_again') : t('qr_note')
  $('#checks').replaceChildren(...data.checks.map(check => el('li', { class: check.ok ? 'ok' : 'bad', dataset: { key: check.key } },
    el('b', {}, check.name), `：${check.detail}`, ...(check.fix ? [el('span', { class: 'fix' }, `→ ${check.fix}`)] : []))))
  const cfg = data.config
  $('#config-line').textContent = cfg.path
    ? t('config_file') + cfg.path + t('reloads', { n: cfg.reloads }) : t('no_file')
}

// -- queue ---------------------------------------------------------------------------------------
const roomCell = job => el('td', { title: job.room }, job.is_room ? (job.room_topic || job.room) : `${t('private_chat')} ${job.asker}`)
async function loadQueue () {
  const data = await api('/jobs').catch(e => { $('#queue-error').textContent = e.message; return null })
  if (!data) return
  const now = Date.now() / 1000
  $('#pending tbody').replaceChildren(...data.pending.map(job => {
    const bar = job.steps ? el('progress', { max: job.steps, value: job.step }) : ''
    const cancel = el('button', { class: 'cancel', type: 'button', textContent: t('cancel') })
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
function roomCard (room, intents, quotaKeys, writable, labels) {
  const allowed = el('input', { type: 'checkbox', class: 'allowed', checked: room.allowed })
  const boxes = intents.map(name => el('label', {}, el('input', {
    type: 'checkbox', class: 'intent', value: name, checked: room.intents === null || room.intents.includes(name),
  }), ` ${labels.intents[name] || name}`))
  const persona = el('textarea', { class: 'persona', placeholder: t('persona_hint'), value: room.persona })
  const quotas = quotaKeys.map(key => el('label', {}, `${labels.quotas[key] || key} `, el('input', {
    type: 'text', class: 'quota', name: key, size: 5, value: key in room.quotas ? String(room.quotas[key] ?? 'null') : '',
    placeholder: t('global'),
  })))
  const error = el('p', { class: 'error room-error', role: 'alert' })
  const saved = el('p', { class: 'ok room-saved', hidden: true, textContent: t('saved') })
  const save = el('button', { class: 'save', type: 'button', textContent: t('save'), disabled: !writable })
  const card = el('div', { class: 'room', dataset: { roomId: room.room_id } },
    el('h3', {}, room.topic, el('span', { class: 'muted' }, `  ${room.room_id}`)),
    el('label', {}, allowed, t('allowed')), el('div', { class: 'intents' }, t('features'), ...boxes),
    el('div', {}, t('persona'), persona), el('div', { class: 'quotas' }, t('quotas'), ...quotas),
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
      error.textContent = t('not_saved') + e.message
    }
  })
  return card
}

async function loadGroups () {
  const data = await api('/rooms').catch(() => null)
  if (!data) return
  $('#groups-readonly').hidden = data.writable
  const labels = { intents: data.intent_labels || {}, quotas: data.quota_labels || {} }
  $('#rooms').replaceChildren(...data.rooms.map(r => roomCard(r, data.intents, data.quota_keys, data.writable, labels)))
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
  const save = el('button', { class: 'save', type: 'submit', textContent: t('save'), disabled: !data.writable })
  form.replaceChildren(...data.fields.map(field => el('label', {}, `${field.label} `,
    el('code', {}, field.path), el('br'), settingInput(field), field.hint ? el('span', { class: 'hint' }, ` ${field.hint}`) : '')), save)
  form.dataset.original = JSON.stringify(Object.fromEntries(data.fields.map(f => [f.path, f.value ?? ''])))
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
    $('#settings-error').textContent = t('not_saved') + e.message
  }
})

// -- status buttons ----------------------------------------------------------------------------------
for (const [id, path] of [['#reconnect', '/reconnect'], ['#reload', '/reload']]) {
  $(id).addEventListener('click', async () => {
    const button = $(id)
    button.disabled = true
    try {
      const data = await api(path, { method: 'POST' })
      $('#action-result').textContent = data.text
      $('#action-result').className = data.applied === false ? 'error' : 'ok'
    } catch (e) {
      $('#action-result').textContent = e.message
      $('#action-result').className = 'error'
    }
    button.disabled = false
    loadStatus()
  })
}

// -- keys --------------------------------------------------------------------------------------------
function keyRow (key, writable) {
  const state = el('b', { class: key.set ? 'ok' : 'muted' }, key.set ? (key.shown || t('key_set')) : t('key_unset'))
  const input = el('input', { type: key.name.endsWith('_URL') ? 'text' : 'password', class: 'key-input', autocomplete: 'off',
    dataset: { name: key.name }, placeholder: t('key_new'), disabled: key.from_env || !writable })
  const clear = el('button', { type: 'button', class: 'key-clear', textContent: t('key_clear'), disabled: key.from_env || !key.set || !writable })
  clear.addEventListener('click', () => saveKeys({ [key.name]: null }))
  return el('div', { class: 'key', dataset: { name: key.name, provider: key.provider } },
    el('label', {}, el('span', { class: 'what' }, key.what), ' ', el('code', {}, key.name), ' ', state,
      key.from_env ? el('span', { class: 'muted' }, t('key_env')) : ''), el('br'), input, ' ', clear)
}

async function loadKeys () {
  const data = await api('/keys').catch(() => null)
  if (!data) return
  const groups = {}
  for (const key of data.keys) (groups[key.provider] = groups[key.provider] || []).push(key)
  const blocks = Object.entries(groups).map(([provider, keys]) => {
    const result = el('span', { class: 'test-result', role: 'status' })
    const test = data.testable.includes(provider)
      ? el('button', { type: 'button', class: 'test', textContent: t('test'), dataset: { provider } }) : ''
    if (test) {
      test.addEventListener('click', async () => {
        result.textContent = t('testing')
        result.className = 'test-result'
        try {
          const answer = await api(`/keys/test/${provider}`, { method: 'POST' })
          result.textContent = answer.text
          result.className = `test-result ${answer.ok ? 'ok' : 'error'}`
        } catch (e) {
          result.textContent = e.message
          result.className = 'test-result error'
        }
      })
    }
    return el('fieldset', { dataset: { provider } }, ...keys.map(k => keyRow(k, data.writable)), el('p', {}, test, ' ', result))
  })
  const save = el('button', { class: 'save', type: 'submit', textContent: t('save'), disabled: !data.writable })
  $('#keys').replaceChildren(...blocks, save)
}

async function saveKeys (values) {
  $('#keys-error').textContent = ''
  $('#keys-saved').hidden = true
  try {
    await api('/keys', { method: 'POST', body: { values } })
    $('#keys-saved').hidden = false
    loadKeys()
  } catch (e) {
    $('#keys-error').textContent = t('not_saved') + e.message
  }
}

$('#keys').addEventListener('submit', event => {
  event.preventDefault()
  const values = {}
  for (const input of $('#keys').querySelectorAll('input.key-input')) {
    if (input.value.trim()) values[input.dataset.name] = input.value.trim()
  }
  saveKeys(values)
})

// -- log -----------------------------------------------------------------------------------------------
async function loadLogs () {
  const level = $('#log-level').value
  const data = await api(`/logs?after=${logAfter}&level=${level}`).catch(() => null)
  if (!data || !data.lines.length) return
  const box = $('#log-lines')
  const follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 20
  box.append(...data.lines.map(line => el('div', { class: `log ${line.level.toLowerCase()}`, dataset: { seq: line.seq } }, line.text)))
  while (box.childElementCount > 1000) box.firstElementChild.remove()
  logAfter = data.lines[data.lines.length - 1].seq
  if (follow) box.scrollTop = box.scrollHeight
}
$('#log-level').addEventListener('change', () => { logAfter = 0; $('#log-lines').replaceChildren(); loadLogs() })

// -- start ---------------------------------------------------------------------------------------
async function start () {
  for (const node of document.querySelectorAll('[data-t]')) node.textContent = t(node.dataset.t)
  document.documentElement.lang = LANG === 'en' ? 'en' : 'zh-CN'
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
