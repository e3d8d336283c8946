#!/usr/bin/env node
/**
 * 小爱 gateway: a Wechaty PuppetServer (gRPC, TLS off, 127.0.0.1) in front of one puppet.
 *
 * The Python bot (python-wechaty) connects to it with
 *   WECHATY_PUPPET_SERVICE_ENDPOINT=127.0.0.1:<port>  WECHATY_PUPPET_SERVICE_TOKEN=<token>
 *
 * The gateway, not the gRPC client, owns the puppet's lifecycle: the puppet is started here at boot
 * (so the login QR code shows up without a bot) and the client's Start/Stop RPCs never stop it
 * (wechat4u's stop() logs the web session out). See README.md for the environment variables.
 */
import fs from 'node:fs'
import path from 'node:path'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'

import QRCode from 'qrcode'
import { MemoryCard } from 'memory-card'
import { PuppetServer } from 'wechaty-puppet-service'
import { log as wechatyLog } from 'wechaty-puppet'

const HERE = path.dirname(fileURLToPath(import.meta.url))

// ---------------------------------------------------------------------------------------------
// logging: one timestamped line per event
// ---------------------------------------------------------------------------------------------
function logLine (level, msg) {
  const line = `${new Date().toISOString()} ${level.padEnd(5)} gateway: ${msg}`
  if (level === 'INFO') console.log(line)
  else console.error(line)
}
const log = {
  info: msg => logLine('INFO', msg),
  warn: msg => logLine('WARN', msg),
  error: msg => logLine('ERROR', msg),
}

function fatal (msg, code = 1) {
  logLine('FATAL', msg)
  process.exit(code)
}

// ---------------------------------------------------------------------------------------------
// configuration (environment only)
// ---------------------------------------------------------------------------------------------
function envInt (name, dflt) {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return dflt
  const n = Number(raw)
  if (!Number.isFinite(n) || n < 0) fatal(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`, 2)
  return n
}

const PUPPET_NAME = process.env.WECHATY_PUPPET || 'wechaty-puppet-wechat4u'
const HOST = process.env.WECHATY_GATEWAY_HOST || '127.0.0.1'
const PORT = envInt('WECHATY_GATEWAY_PORT', 8788)
const DATA_DIR = path.resolve(process.env.WECHATY_GATEWAY_DATA_DIR || path.join(HERE, 'data'))
const QR_PNG = path.resolve(process.env.WECHATY_GATEWAY_QR_PNG || path.join(DATA_DIR, 'qrcode.png'))
const START_TIMEOUT_S = envInt('WECHATY_GATEWAY_START_TIMEOUT', 30)
const GRPC_MAX_MB = envInt('WECHATY_GATEWAY_GRPC_MAX_MB', 64)
const QR_TERMINAL = !['0', 'false', 'no'].includes((process.env.WECHATY_GATEWAY_QR_TERMINAL || '').toLowerCase())
const SCENARIO_PORT = process.env.XIAOAI_SCENARIO_PORT ? envInt('XIAOAI_SCENARIO_PORT', 0) : null
const IS_MOCK = PUPPET_NAME === 'wechaty-puppet-mock'

// The Wechaty libraries log at WARN unless WECHATY_LOG says otherwise; their one warning on every start
// ("TLS disabled: INSECURE!") is our deliberate choice on a loopback address and is said once below.
if (!process.env.WECHATY_LOG) wechatyLog.level('warn')
const libraryWarn = wechatyLog.warn.bind(wechatyLog)
wechatyLog.warn = (prefix, ...args) => {
  if (prefix === 'PuppetServer' && /TLS disabled/.test(String(args[0]))) return
  libraryWarn(prefix, ...args)
}

let puppetOptions = {}
if (process.env.WECHATY_PUPPET_OPTIONS) {
  try {
    puppetOptions = JSON.parse(process.env.WECHATY_PUPPET_OPTIONS)
  } catch (e) {
    fatal(`WECHATY_PUPPET_OPTIONS is not valid JSON: ${e.message}`, 2)
  }
}

let TOKEN = process.env.WECHATY_PUPPET_SERVICE_TOKEN
if (!TOKEN) {
  TOKEN = `insecure_${randomUUID()}`
  log.warn(`WECHATY_PUPPET_SERVICE_TOKEN is not set; generated token: ${TOKEN}`)
  log.warn('  give the bot the same value in WECHATY_PUPPET_SERVICE_TOKEN (set it yourself to keep it across restarts)')
}

// ---------------------------------------------------------------------------------------------
// gRPC message size: PuppetServer builds `new grpc.Server(GRPC_OPTIONS)` from a module-level object
// (wechaty-puppet-service/dist/esm/src/config.js) that has no public setter; its defaults leave
// grpc-js at 4 MiB per message, too small for an inline MP4. We add the two channel options to that
// very object before start(). The file is loaded by URL because the package's "exports" map hides it;
// it is the same module instance PuppetServer uses (same resolved URL).
// ---------------------------------------------------------------------------------------------
async function raiseGrpcMessageLimit (megabytes) {
  const modUrl = import.meta.resolve('wechaty-puppet-service')
  const config = await import(new URL('./config.js', modUrl).href)
  if (!config.GRPC_OPTIONS || typeof config.GRPC_OPTIONS !== 'object') {
    throw new Error('wechaty-puppet-service config.js has no GRPC_OPTIONS object (package version changed?)')
  }
  const bytes = megabytes * 1024 * 1024
  config.GRPC_OPTIONS['grpc.max_receive_message_length'] = bytes
  config.GRPC_OPTIONS['grpc.max_send_message_length'] = bytes
  return config.GRPC_OPTIONS
}

// ---------------------------------------------------------------------------------------------
// puppet
// ---------------------------------------------------------------------------------------------
async function loadPuppetClass (name) {
  if (!/^(@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*$/.test(name)) {
    fatal(`WECHATY_PUPPET must be an npm package name, got ${JSON.stringify(name)}`, 2)
  }
  let mod
  try {
    mod = await import(name)
  } catch (e) {
    fatal(`cannot load puppet package "${name}": ${e.message}\n`
      + `  install it first: cd ${HERE} && npm install --save-exact ${name}`, 2)
  }
  const candidates = [mod.default, ...Object.entries(mod).filter(([k]) => /^Puppet/.test(k)).map(([, v]) => v)]
  const Klass = candidates.find(c => typeof c === 'function')
  if (!Klass) fatal(`package "${name}" exports no Puppet class`, 2)
  return Klass
}

function errorText (payload) {
  // puppets emit 'error' with { data: GError.stringify(err) }: JSON, sometimes nested in {"gerror": "<JSON>"}
  if (!payload) return 'unknown error'
  if (payload instanceof Error) return payload.message
  let data = payload.data ?? payload
  if (data && typeof data === 'object' && typeof data.gerror === 'string') data = data.gerror
  for (let depth = 0; depth < 3 && typeof data === 'string'; depth++) {
    try {
      data = JSON.parse(data)
    } catch {
      return data
    }
    if (data && typeof data === 'object') {
      if (typeof data.gerror === 'string') data = data.gerror
      else return String(data.message || data.details || JSON.stringify(data))
    }
  }
  if (typeof data === 'string') return data
  try {
    return JSON.stringify(data)
  } catch {
    return String(data)
  }
}

async function showQrCode (puppet, qrcode, status) {
  log.info(`scan the QR code with WeChat to log in (status=${status}): ${qrcode}`)
  if (QR_TERMINAL) {
    try {
      const art = await QRCode.toString(qrcode, { type: 'terminal', small: true })
      process.stdout.write(art + '\n')
    } catch (e) {
      log.warn(`cannot render the QR code in the terminal: ${e.message}`)
    }
  }
  try {
    fs.mkdirSync(path.dirname(QR_PNG), { recursive: true })
    await QRCode.toFile(QR_PNG, qrcode, { type: 'png', width: 400, margin: 2 })
    if (puppet.isLoggedIn) fs.rmSync(QR_PNG, { force: true }) // logged in while we were writing it
    else log.info(`QR code written to ${QR_PNG}`)
  } catch (e) {
    log.warn(`cannot write the QR code PNG ${QR_PNG}: ${e.message}`)
  }
}

function watchPuppet (puppet) {
  const state = { lastError: null, errorCount: 0, repeat: 0, lastScan: null }
  puppet.on('scan', ({ qrcode, status }) => {
    // ScanStatus: 0 Unknown, 1 Cancel, 2 Waiting, 3 Scanned, 4 Confirmed, 5 Timeout
    state.lastScan = puppet.isLoggedIn ? null : { qrcode, status }
    if (IS_MOCK) return // the mock's "QR code" is a fake: nothing to print (the console shows it)
    if (qrcode && (status === 2 || status === 0)) {
      showQrCode(puppet, qrcode, status).catch(e => log.warn(`QR code: ${e.message}`))
    } else if (status === 3) {
      log.info('QR code scanned; confirm the login on the phone')
    } else {
      log.info(`scan status ${status}`)
    }
  })
  puppet.on('login', async ({ contactId }) => {
    state.lastScan = null
    let name = ''
    try {
      name = (await puppet.contactPayload(contactId)).name
    } catch { /* payload not ready yet */ }
    log.info(`login: ${name ? name + ' ' : ''}(${contactId})`)
    fs.rm(QR_PNG, { force: true }, () => {})
  })
  puppet.on('logout', ({ contactId, data }) => {
    log.warn(`logout: ${contactId}${data ? ' (' + data + ')' : ''}`)
  })
  puppet.on('error', payload => {
    const text = errorText(payload)
    state.errorCount++
    if (text === state.lastError) {
      // the same error in a retry loop: log the 1st, 2nd, 4th, 8th ... occurrence
      state.repeat++
      if ((state.repeat & (state.repeat - 1)) !== 0) return
      log.error(`puppet error (x${state.repeat + 1}): ${text}`)
    } else {
      state.repeat = 0
      log.error(`puppet error: ${text}`)
    }
    state.lastError = text
    puppet.emit('gateway-error', text)
  })
  // A scan event reaches only the clients streaming at that moment; a bot that connects while the puppet
  // waits on a QR code gets the current one as soon as its event stream subscribes to scans.
  puppet.on('newListener', (event, listener) => {
    if (event !== 'scan' || puppet.isLoggedIn || !state.lastScan) return
    if (!String(listener).includes('grpcEmit')) return // only a gRPC stream's listener
    const scan = state.lastScan
    setImmediate(() => listener(scan))
  })
  return state
}

/**
 * Start the puppet and wait until it is usable: logged in, or showing a QR code.
 * Fails after `timeoutS` seconds (e.g. wechat4u with no network never gets a QR code), or sooner
 * when the puppet reports START_MAX_ERRORS errors before its first QR code / login.
 */
const START_MAX_ERRORS = 5
async function startPuppet (puppet, realStart, timeoutS, watcher, { needLogin = false } = {}) {
  let timer
  let onError
  const ready = new Promise(resolve => {
    if (!needLogin) puppet.once('scan', () => resolve('scan'))
    puppet.once('login', () => resolve('login'))
  })
  const failure = new Promise((resolve, reject) => {
    const why = () => (watcher.lastError ? ` Last puppet error: ${watcher.lastError}.` : '')
    timer = setTimeout(() => {
      reject(new Error(`puppet ${PUPPET_NAME} showed no login QR code and did not log in within ${timeoutS} s.${why()}`))
    }, timeoutS * 1000)
    onError = () => {
      if (watcher.errorCount >= START_MAX_ERRORS) {
        reject(new Error(`puppet ${PUPPET_NAME} failed ${watcher.errorCount} times before showing a login QR code.${why()}`))
      }
    }
    puppet.on('gateway-error', onError)
  })
  try {
    await Promise.race([realStart(), failure])
    if (puppet.isLoggedIn) return 'login'
    return await Promise.race([ready, failure])
  } finally {
    clearTimeout(timer)
    puppet.off('gateway-error', onError)
  }
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------
async function main () {
  const t0 = Date.now()
  fs.mkdirSync(DATA_DIR, { recursive: true })

  const grpcOptions = await raiseGrpcMessageLimit(GRPC_MAX_MB)

  // 1. the puppet
  const isMock = IS_MOCK
  let puppet
  let scenario = null
  if (isMock && SCENARIO_PORT !== null) {
    const { createScenario } = await import('./scenario.js')
    scenario = await createScenario({ log, puppetOptions })
    puppet = scenario.puppet
  } else {
    const PuppetClass = await loadPuppetClass(PUPPET_NAME)
    if (isMock) {
      // a demo: random contacts that chat every 5 s
      const mockMod = await import('wechaty-puppet-mock')
      const mocker = new mockMod.mock.Mocker()
      mocker.use(mockMod.mock.SimpleEnvironment())
      puppet = new PuppetClass({ ...puppetOptions, mocker })
    } else {
      puppet = new PuppetClass(puppetOptions)
    }
    // keep the login session on disk (wechat4u stores its cookies here and restarts without a scan)
    const sessionName = path.join(DATA_DIR, `session-${PUPPET_NAME.replace(/[^a-zA-Z0-9._-]/g, '_')}`)
    if (typeof puppet.setMemory === 'function') {
      const memory = new MemoryCard({ name: sessionName })
      await memory.load()
      puppet.setMemory(memory)
      if (!isMock) log.info(`login session file: ${sessionName}.memory-card.json`)
    }
  }
  const watcher = watchPuppet(puppet)

  // The gateway owns the puppet: client Start only waits for it, client Stop leaves it running.
  const realStart = puppet.start.bind(puppet)
  const realStop = puppet.stop.bind(puppet)
  puppet.start = async () => {
    if (puppet.state.inactive()) await realStart()
  }
  puppet.stop = async () => {
    log.info('gRPC client called Stop: its event stream is closed, the puppet keeps running')
  }

  // 2. the gRPC server
  const server = new PuppetServer({
    endpoint: `${HOST}:${PORT}`,
    puppet,
    token: TOKEN,
    tls: { disable: true },
  })
  try {
    await server.start()
  } catch (e) {
    fatal(`cannot listen on ${HOST}:${PORT} (${e.message}); set WECHATY_GATEWAY_PORT to a free port`)
  }
  const loopback = ['127.0.0.1', 'localhost', '::1'].includes(HOST)
  log.info(`gRPC PuppetServer on ${HOST}:${PORT} (TLS off${loopback ? ', loopback only' : ''}, `
    + `max message ${grpcOptions['grpc.max_receive_message_length'] / 1024 / 1024} MiB)`)
  if (!loopback) log.warn(`listening on ${HOST} with TLS off: anyone who can reach it and knows the token can drive WeChat`)

  // 3. shutdown
  let stopping = false
  const shutdown = async (signal) => {
    if (stopping) return
    stopping = true
    log.info(`${signal}: shutting down`)
    const hardExit = setTimeout(() => fatal('shutdown took more than 10 s, exiting anyway'), 10_000)
    hardExit.unref()
    try {
      if (scenario) await scenario.close()
      await server.stop()
      if (PUPPET_NAME === 'wechaty-puppet-wechat4u') {
        // wechat4u's stop() logs the web session out and wipes it from the memory card; save the
        // session instead so that the next start resumes without a QR scan.
        const w = puppet.wechat4u
        if (w && puppet.isLoggedIn && w.botData) {
          await puppet.memory.set('PUPPET-WECHAT4U', w.botData)
          await puppet.memory.save()
          log.info('login session saved')
        }
      } else {
        await Promise.race([realStop(), new Promise(resolve => setTimeout(resolve, 5000))])
      }
    } catch (e) {
      log.error(`error while shutting down: ${e.message}`)
    }
    log.info('bye')
    process.exit(0)
  }
  process.on('SIGTERM', () => { shutdown('SIGTERM') })
  process.on('SIGINT', () => { shutdown('SIGINT') })

  // 4. start the puppet, bounded in time
  log.info(`starting puppet ${PUPPET_NAME} (timeout ${START_TIMEOUT_S} s) ...`)
  try {
    const needLogin = (isMock || !!scenario) && process.env.XIAOAI_SCENARIO_LOGIN !== 'scan'
    const how = await startPuppet(puppet, realStart, START_TIMEOUT_S, watcher, { needLogin })
    log.info(`puppet ${PUPPET_NAME} started (${how === 'login' ? 'logged in' : 'waiting for a QR scan'})`)
  } catch (e) {
    const hint = PUPPET_NAME === 'wechaty-puppet-wechat4u'
      ? ' wechat4u needs HTTPS access to login.weixin.qq.com / wx.qq.com; check the network and proxy.'
      : ''
    fatal(`cannot start the puppet: ${e.message}${hint}`)
  }

  // 5. the test scenario control API
  if (scenario) {
    const port = await scenario.listen(HOST, SCENARIO_PORT)
    log.info(`scenario control API on http://${HOST}:${port}`)
  }
  log.info(`gateway ready in ${Date.now() - t0} ms; endpoint ${HOST}:${PORT}`)
}

// grpc-js warns on every start that server.start() is no longer needed (PuppetServer calls it): drop that one
process.removeAllListeners('warning')
process.on('warning', w => {
  if (w.name === 'DeprecationWarning' && /Calling start\(\) is no longer necessary/.test(w.message)) return
  log.warn(`${w.name}: ${w.message}`)
})
process.on('unhandledRejection', reason => {
  log.error(`unhandled rejection: ${reason && reason.stack ? reason.stack : reason}`)
})

main().catch(e => fatal(e && e.stack ? e.stack : String(e)))
