/**
 * Test scenario for the gateway (test-only; loaded by index.js when
 * WECHATY_PUPPET=wechaty-puppet-mock and XIAOAI_SCENARIO_PORT is set).
 *
 * - ScenarioPuppet: wechaty-puppet-mock whose send methods return the new message id (the stock
 *   mock returns nothing, and python-wechaty's msg.say() then raises), records everything the bot
 *   sends, echoes the bot's own messages back like real puppets do, and serves room aliases.
 * - A fixed cast with stable ids (the same after a gateway restart):
 *     bot   xiaoai  小爱   (a second account the bot may log in as: xiaomei 小美)
 *     alice 妈妈   bob 爸爸   carol 奶奶
 *     family@chatroom 相亲相爱一家人 (bot's room alias 小爱同学), other@chatroom 工作群
 * - A count of the gRPC calls the bot makes, by method (GET /calls), so tests can hold the bot to a budget.
 * - An HTTP control API (JSON) on 127.0.0.1:$XIAOAI_SCENARIO_PORT, see README.md.
 */
import http from 'node:http'

import * as PUPPET from 'wechaty-puppet'
import { FileBox } from 'file-box'
import { PuppetMock, mock } from 'wechaty-puppet-mock'
import { grpc, puppet as grpcPuppet } from 'wechaty-grpc'

export const BOT_ID = 'xiaoai'
export const OTHER_ACCOUNT_ID = 'xiaomei' // POST /login {"as": "xiaomei"}: the family's other phone
export const CONTACTS = [
  { id: BOT_ID, name: '小爱' },
  { id: OTHER_ACCOUNT_ID, name: '小美' },
  { id: 'alice', name: '妈妈' },
  { id: 'bob', name: '爸爸' },
  { id: 'carol', name: '奶奶' },
]
// XIAOAI_SCENARIO_ROOMS=N adds rooms room1@chatroom .. roomN@chatroom (群1 .. 群N), e.g. for a flood bench
const EXTRA_ROOMS = Math.max(0, Number(process.env.XIAOAI_SCENARIO_ROOMS || 0) | 0)
export const ROOMS = [
  { id: 'family@chatroom', topic: '相亲相爱一家人', aliases: { [BOT_ID]: '小爱同学' } },
  { id: 'other@chatroom', topic: '工作群', aliases: {} },
  ...Array.from({ length: EXTRA_ROOMS }, (_, i) => ({ id: `room${i + 1}@chatroom`, topic: `群${i + 1}`, aliases: {} })),
]

export const WAIT_FOR_SCAN = process.env.XIAOAI_SCENARIO_LOGIN === 'scan'

// gRPC calls by method name ("MessagePayload", "RoomMemberPayload", ...) since the last POST /reset. The
// PuppetServer adds its service to a grpc-js Server after the scenario is created: each handler is wrapped.
const grpcCalls = {}
const addService = grpc.Server.prototype.addService
grpc.Server.prototype.addService = function (service, implementation) {
  if (service !== grpcPuppet.PuppetService) return addService.call(this, service, implementation)
  const counted = {}
  for (const [name, handler] of Object.entries(implementation)) {
    const method = name.charAt(0).toUpperCase() + name.slice(1)
    counted[name] = typeof handler !== 'function'
      ? handler
      : function (...args) {
        grpcCalls[method] = (grpcCalls[method] || 0) + 1
        return handler.apply(this, args)
      }
  }
  return addService.call(this, service, counted)
}

// a 1x1 PNG, the default picture for {"type": "image"} messages
const TINY_PNG_BASE64
  = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=='

function contactPayload ({ id, name }) {
  return {
    id,
    name,
    alias: '',
    avatar: '',
    gender: PUPPET.types.ContactGender.Unknown,
    type: PUPPET.types.Contact.Individual,
    friend: true,
    star: false,
    phone: [],
    weixin: id,
    city: '',
    province: '',
    signature: '',
    address: '',
  }
}

class ScenarioPuppet extends PuppetMock {
  constructor (options = {}) {
    super(options)
    this.sent = []
    this.seq = 0
    // message ids are unique across gateway restarts (a reconnecting client may dedup by id)
    this.bootTag = Date.now().toString(36)
  }

  nextId (kind) {
    this.seq += 1
    return `${kind}-${this.bootTag}-${this.seq}`
  }

  async _messageSend (conversationId, something, mentionIdList = []) {
    if (!this.isLoggedIn) throw new Error('not logged in')
    const isRoom = conversationId.includes('@')
    if (isRoom) this.mocker.RoomMock.load(conversationId)
    else this.mocker.ContactMock.load(conversationId)

    const id = this.nextId('sent')
    const record = {
      id,
      room: isRoom ? conversationId : null,
      to: isRoom ? null : conversationId,
      text: null,
      mentionIds: [...(mentionIdList || [])],
      file: null,
      ts: Date.now(),
    }
    const payload = {
      id,
      talkerId: this.currentUserId,
      timestamp: record.ts,
      type: PUPPET.types.Message.Text,
      ...(isRoom
        ? { roomId: conversationId, mentionIdList: record.mentionIds }
        : { listenerId: conversationId }),
    }
    if (FileBox.valid(something)) {
      record.file = await describeFile(something)
      payload.type = fileMessageType(something)
      this.mocker.cacheFileBoxPayload.set(id, something.toJSON())
    } else {
      record.text = String(something)
      payload.text = record.text
    }
    this.sent.push(record)
    // echo the bot's own message back, as wechat4u and other real puppets do
    this.mocker.MessageMock.create(payload)
    this.emit('message', { messageId: id })
    return id
  }

  async messageSendText (conversationId, text, mentionIdList) {
    return this._messageSend(conversationId, text, mentionIdList)
  }

  async messageSendFile (conversationId, file) {
    return this._messageSend(conversationId, file)
  }

  async messageImage (messageId, imageType) {
    if (this.mocker.cacheFileBoxPayload.has(messageId)) return this.messageFile(messageId)
    return super.messageImage(messageId, imageType)
  }

  async contactAlias (contactId, alias) {
    if (typeof alias === 'undefined') return this.mocker.contactPayload(contactId).alias || ''
  }

  async roomTopic (roomId, topic) {
    if (typeof topic === 'undefined') return this.mocker.roomPayload(roomId).topic
    return super.roomTopic(roomId, topic)
  }

  async roomMemberRawPayload (roomId, contactId) {
    const contact = await this.contactPayload(contactId)
    const room = ROOMS.find(r => r.id === roomId)
    return {
      avatar: contact.avatar,
      id: contactId,
      name: contact.name,
      roomAlias: (room && room.aliases[contactId]) || '',
    }
  }
}

function fileMessageType (file) {
  const type = (file.mediaType && file.mediaType !== 'application/octet-stream')
    ? file.mediaType
    : (file.name || '').toLowerCase().replace(/^.*\./, '.')
  if (/^image\/|^\.(png|jpe?g|gif|webp)$/.test(type)) return PUPPET.types.Message.Image
  if (/^video\/|^\.mp4$/.test(type)) return PUPPET.types.Message.Video
  if (/^audio\/|^\.(silk|sil|mp3)$/.test(type)) return PUPPET.types.Message.Audio
  return PUPPET.types.Message.Attachment
}

async function describeFile (file) {
  const info = {
    name: file.name,
    mimeType: file.mediaType || null,
    size: null,
    base64: null,
    url: file.remoteUrl || file.url || null,
  }
  try {
    // base64 boxes (what python-wechaty's FileBox.from_file sends) decode locally; a URL box would
    // be fetched here, which only works for local URLs in the offline test setup
    const buf = await Promise.race([
      file.toBuffer(),
      new Promise((resolve, reject) => setTimeout(() => reject(new Error('timeout reading the file')), 10_000)),
    ])
    info.size = buf.length
    info.base64 = buf.toString('base64')
  } catch (e) {
    info.error = e.message
  }
  return info
}

/**
 * The Mocker "environment": runs when the puppet starts. Idempotent (a second start reuses the cast).
 */
function castEnvironment (puppet) {
  return function start (mocker) {
    for (const c of CONTACTS) {
      if (!mocker.cacheContactPayload.has(c.id)) mocker.ContactMock.create(contactPayload(c))
    }
    const memberIdList = CONTACTS.map(c => c.id)
    for (const r of ROOMS) {
      if (!mocker.cacheRoomPayload.has(r.id)) {
        mocker.RoomMock.create({
          id: r.id,
          topic: r.topic,
          memberIdList: [...memberIdList],
          adminIdList: [],
          ownerId: 'alice',
          avatar: '',
        })
      }
    }
    if (!puppet.isLoggedIn) {
      // exercise the gateway's QR code path, then log in at once (or, with XIAOAI_SCENARIO_LOGIN=scan,
      // wait on the QR code until POST /login, as a real account waits for the phone)
      mocker.scan('https://login.weixin.qq.com/l/xiaoai-mock', PUPPET.types.ScanStatus.Waiting)
      if (!WAIT_FOR_SCAN) setImmediate(() => { if (!puppet.isLoggedIn) puppet.login(BOT_ID) })
    }
    return () => {}
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP control API
// ---------------------------------------------------------------------------------------------
class HttpError extends Error {
  constructor (status, message) {
    super(message)
    this.status = status
  }
}

function readJson (req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    req.on('data', c => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      if (!raw.trim()) return resolve({})
      try {
        resolve(JSON.parse(raw))
      } catch (e) {
        reject(new HttpError(400, `invalid JSON body: ${e.message}`))
      }
    })
    req.on('error', reject)
  })
}

export async function createScenario ({ log, puppetOptions = {} }) {
  const mocker = new mock.Mocker()
  const puppet = new ScenarioPuppet({ ...puppetOptions, mocker })
  mocker.use(castEnvironment(puppet))

  // whether a gRPC client holds the event stream: wechaty-puppet-service's EventStreamManager adds a
  // 'message' listener (an arrow calling grpcEmit) while a stream is open and removes it after
  const streaming = () => puppet.listeners('message').some(fn => String(fn).includes('grpcEmit'))

  function say (body) {
    if (!puppet.isLoggedIn) throw new HttpError(409, 'the bot is not logged in')
    const { from, room = null, text = '', mention = [], id, type = 'text' } = body
    if (!mocker.cacheContactPayload.has(from)) throw new HttpError(400, `unknown contact "from": ${from}`)
    if (room !== null && !mocker.cacheRoomPayload.has(room)) throw new HttpError(400, `unknown room: ${room}`)
    if (!Array.isArray(mention)) throw new HttpError(400, '"mention" must be a list of contact ids')
    for (const m of mention) {
      if (!mocker.cacheContactPayload.has(m)) throw new HttpError(400, `unknown contact in "mention": ${m}`)
    }
    if (!['text', 'image'].includes(type)) throw new HttpError(400, `"type" must be "text" or "image", got ${type}`)

    // an id we have seen before: emit the same message event again (a duplicate delivery)
    if (id !== undefined && id !== null && mocker.cacheMessagePayload.has(String(id))) {
      puppet.emit('message', { messageId: String(id) })
      return { id: String(id), duplicate: true, delivered: streaming() }
    }

    const messageId = id !== undefined && id !== null ? String(id) : puppet.nextId('msg')
    const payload = {
      id: messageId,
      talkerId: from,
      timestamp: Date.now(),
      type: PUPPET.types.Message.Text,
      text,
      ...(room !== null
        ? { roomId: room, mentionIdList: [...mention] }
        : { listenerId: BOT_ID }),
    }
    if (type === 'image') {
      const name = body.name || 'image.png'
      const box = FileBox.fromBase64(body.base64 || TINY_PNG_BASE64, name)
      mocker.cacheFileBoxPayload.set(messageId, box.toJSON())
      payload.type = PUPPET.types.Message.Image
      payload.text = ''
    }
    mocker.MessageMock.create(payload)
    puppet.emit('message', { messageId })
    return { id: messageId, duplicate: false, delivered: streaming() }
  }

  // a member joined or left the room, or it was renamed, as WeChat reports it
  function roomEvent ({ type, room, contact = 'carol', topic }) {
    if (!puppet.isLoggedIn) throw new HttpError(409, 'the bot is not logged in')
    if (!mocker.cacheRoomPayload.has(room)) throw new HttpError(400, `unknown room: ${room}`)
    const timestamp = Date.now()
    if (type === 'join') {
      puppet.emit('room-join', { roomId: room, inviteeIdList: [contact], inviterId: 'alice', timestamp })
    } else if (type === 'leave') {
      puppet.emit('room-leave', { roomId: room, removeeIdList: [contact], removerId: 'alice', timestamp })
    } else if (type === 'topic') {
      const payload = mocker.cacheRoomPayload.get(room)
      const oldTopic = payload.topic
      mocker.cacheRoomPayload.set(room, { ...payload, topic: String(topic) })
      puppet.dirtyPayload(PUPPET.types.Dirty.Room, room) // the puppet's own payload cache reads it again
      puppet.emit('room-topic', { roomId: room, newTopic: String(topic), oldTopic, changerId: 'alice', timestamp })
    } else {
      throw new HttpError(400, `"type" must be "join", "leave" or "topic", got ${type}`)
    }
    return { ok: true }
  }

  function health () {
    return {
      loggedIn: puppet.isLoggedIn,
      botId: puppet.isLoggedIn ? puppet.currentUserId : null,
      streaming: streaming(),
      sent: puppet.sent.length,
      contacts: CONTACTS.map(c => ({ id: c.id, name: c.name })),
      rooms: ROOMS.map(r => ({ id: r.id, topic: r.topic, aliases: r.aliases })),
    }
  }

  async function route (req) {
    const url = new URL(req.url, 'http://localhost')
    const key = `${req.method} ${url.pathname}`
    switch (key) {
      case 'GET /health': return health()
      case 'GET /sent': return puppet.sent
      case 'POST /reset':
        puppet.sent.length = 0
        for (const method of Object.keys(grpcCalls)) delete grpcCalls[method]
        return { ok: true }
      case 'GET /calls': return grpcCalls
      case 'POST /room-event': return roomEvent(await readJson(req))
      case 'POST /say': return say(await readJson(req))
      case 'POST /logout':
        // simulate WeChat dropping the session
        await puppet.logout('scenario /logout')
        return { ok: true, loggedIn: puppet.isLoggedIn }
      case 'POST /scan': {
        // a new login QR code (or a scan status change) while logged out, as the phone app would cause
        if (puppet.isLoggedIn) throw new HttpError(409, 'the bot is logged in; POST /logout first')
        const { qrcode = `https://login.weixin.qq.com/l/xiaoai-mock-${puppet.nextId('qr')}`,
          status = PUPPET.types.ScanStatus.Waiting } = await readJson(req)
        mocker.scan(String(qrcode), Number(status))
        return { ok: true, qrcode, status }
      }
      case 'POST /login': {
        // the phone confirmed a scan: log in as the bot's account, or as another one ({"as": "xiaomei"})
        const { as: account = BOT_ID } = await readJson(req)
        if (!mocker.cacheContactPayload.has(account)) throw new HttpError(400, `unknown contact "as": ${account}`)
        if (puppet.isLoggedIn && puppet.currentUserId !== account) {
          throw new HttpError(409, `logged in as ${puppet.currentUserId}; POST /logout first`)
        }
        if (!puppet.isLoggedIn) await puppet.login(account)
        return { ok: true, loggedIn: puppet.isLoggedIn, botId: puppet.currentUserId }
      }
      default: throw new HttpError(404, `no route ${key}`)
    }
  }

  const server = http.createServer((req, res) => {
    route(req).then(
      result => {
        const body = JSON.stringify(result)
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
        res.end(body)
      },
      err => {
        const status = err.status || 500
        if (status >= 500) log.error(`scenario ${req.method} ${req.url}: ${err.stack || err}`)
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
        res.end(JSON.stringify({ error: err.message }))
      },
    )
  })

  return {
    puppet,
    listen (host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => resolve(server.address().port))
      })
    },
    close () {
      return new Promise(resolve => {
        server.close(() => resolve())
        server.closeAllConnections?.()
      })
    },
  }
}
