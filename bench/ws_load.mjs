#!/usr/bin/env node
// WebTorrent tracker load over WebSocket: announces with offers, as browsers send them.
//
//   node bench/ws_load.mjs --url ws://127.0.0.1:PORT/announce [--sockets 64] [--swarms 16]
//        [--offers 2] [--window 4] [--duration 8] [--warmup 2] [--start-at EPOCH_MS]
//        [--seed 1] [--sdp-bytes 200] [--tag 0]
//
// Each of --sockets WebSockets has a peer id of its own and announces (left > 0, numwant =
// --offers, the first announce per swarm with event "started") round-robin over --swarms
// info_hashes, each announce carrying --offers fake SDP offers of about --sdp-bytes with
// fresh offer ids, keeping --window announces in flight: a reply (or a failure reason)
// sends the next one. The tracker hands each offer to another peer of the swarm, so every
// socket also receives offers; every message a socket is sent is read and classified
// (announce reply, offer, failure, other), and one message in --check-every is parsed in
// full and checked (binary strings of 20 chars, the info_hash one of the swarms, an
// offer not from the receiver itself, its SDP intact).
//
// The info_hashes come from --seed only, so several processes given the same seed (and
// different --tag) load the same swarms: that is how more than one generator process
// shares one load. Peer ids are random.
//
// Timing: load starts once the sockets are open; counts are taken from --start-at (epoch
// ms; default: --warmup seconds after the last socket opened) for --duration seconds,
// then sending stops, the sockets close (the tracker drops their peers) and one line of
// JSON goes to stdout: announces sent, replies, offers received, failures per second in
// that window, the generator's own CPU (% of one core: it is one thread), and the mean
// latency from Little's law (sockets x window / reply rate). Progress goes to stderr.
//
// Bounds: loopback URLs only; at most 1024 sockets, window 256, 64 offers, 120 s of
// measuring; the process exits by itself warmup + duration + 30 s after it started,
// whatever the tracker does. Exit 0 when the run measured something, 1 otherwise
// (sockets that would not open, closed by the server, nothing answered), 2 on bad args.

import { createHash, randomBytes } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const WS_PKG = path.join(HERE, '..', 'tests', 'interop', 'npm', 'node_modules', 'ws')
const { default: WebSocket } = await import(pathToFileURL(path.join(WS_PKG, 'wrapper.mjs')).href)

// ---- arguments ----

const DEFAULTS = {
  url: '', sockets: 64, swarms: 16, offers: 2, window: 4, duration: 8, warmup: 2,
  'start-at': 0, seed: 1, 'sdp-bytes': 200, tag: 0, 'check-every': 64, 'connect-timeout': 10
}
const LIMITS = {
  sockets: [1, 1024], swarms: [1, 64], offers: [0, 64], window: [1, 256], duration: [0.5, 120],
  warmup: [0, 60], 'sdp-bytes': [16, 60000], 'check-every': [1, 1e9], 'connect-timeout': [1, 60],
  seed: [0, 1e12], tag: [0, 1e6], 'start-at': [0, 1e15]
}

function usage (msg) {
  if (msg) process.stderr.write(`ws_load: ${msg}\n`)
  process.stderr.write('usage: node bench/ws_load.mjs --url ws://127.0.0.1:PORT/announce [--sockets N] ' +
    '[--swarms K] [--offers M] [--window W] [--duration S] [--warmup S] [--start-at EPOCH_MS] ' +
    '[--seed N] [--sdp-bytes B] [--tag N] [--check-every N] [--connect-timeout S]\n')
  process.exit(2)
}

const opt = { ...DEFAULTS }
{
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') usage()
    if (!a.startsWith('--') || !(a.slice(2) in DEFAULTS)) usage(`unknown argument ${a}`)
    const k = a.slice(2)
    const v = argv[++i]
    if (v === undefined) usage(`${a} needs a value`)
    if (k === 'url') { opt.url = v; continue }
    const n = Number(v)
    if (!Number.isFinite(n) || n < LIMITS[k][0] || n > LIMITS[k][1]) {
      usage(`${a} must be a number in ${LIMITS[k][0]}..${LIMITS[k][1]}, got ${v}`)
    }
    opt[k] = n
  }
  for (const k of ['sockets', 'swarms', 'offers', 'window', 'sdp-bytes', 'tag', 'check-every']) {
    if (!Number.isInteger(opt[k])) usage(`--${k} must be an integer`)
  }
  let u
  try { u = new URL(opt.url) } catch { usage('--url ws://127.0.0.1:PORT/announce is required') }
  if (u.protocol !== 'ws:') usage('--url must be ws://')
  const host = u.hostname.replace(/^\[|\]$/g, '')
  if (!(host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host))) {
    usage(`--url must name a loopback address, got ${host}`)
  }
}

const T_START = Date.now()
// Whatever happens, the process ends.
const HARD_STOP_MS = (opt.warmup + opt.duration + opt['connect-timeout'] + 30) * 1000 +
  Math.max(0, opt['start-at'] - T_START)
const hardStop = setTimeout(() => {
  process.stderr.write('ws_load: hard time limit reached, exiting\n')
  finish(true)
}, HARD_STOP_MS)

// ---- messages ----

const binstr = b => b.toString('latin1') // bytes -> JS string of those char codes
const swarms = []
for (let j = 0; j < opt.swarms; j++) {
  swarms.push(binstr(createHash('sha1').update(`ws-load-${opt.seed}-${j}`).digest()))
}
const swarmSet = new Set(swarms)

function fakeSdp (n) {
  const lines = ['v=0', `o=- ${n} 2 IN IP4 127.0.0.1`, 's=-', 't=0 0', 'a=group:BUNDLE 0',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'c=IN IP4 0.0.0.0',
    `a=ice-ufrag:${randomBytes(3).toString('hex')}`, `a=ice-pwd:${randomBytes(12).toString('hex')}`,
    'a=setup:actpass', 'a=mid:0', 'a=sctp-port:5000']
  let s = lines.join('\r\n') + '\r\n'
  while (s.length < opt['sdp-bytes']) s += `a=x-pad:${randomBytes(16).toString('hex')}\r\n`
  return s
}

// One socket's announce for swarm j: a fixed prefix per (socket, swarm) and per offer;
// only the offer ids' last 8 chars (a counter, ASCII hex) change from one to the next.
function makeTemplates (peerId, sockIndex) {
  const q = s => JSON.stringify(s)
  const open = s => q(s).slice(0, -1) // a JSON string without its closing quote
  const offerParts = []
  for (let k = 0; k < opt.offers; k++) {
    const sdp = { type: 'offer', sdp: fakeSdp(sockIndex * 100 + k) }
    offerParts.push([`{"offer":${q(sdp)},"offer_id":${open(binstr(randomBytes(12)))}`, '"}'])
  }
  return swarms.map(ih => {
    const head = `{"action":"announce","info_hash":${q(ih)},"peer_id":${q(peerId)},` +
      `"left":1048576,"uploaded":0,"downloaded":0,"numwant":${opt.offers}`
    return { first: head + ',"event":"started","offers":[', next: head + ',"offers":[' }
  }).map(t => ({ ...t, offerParts }))
}

// ---- figures ----

const C = { sent: 0, replies: 0, offers: 0, failures: 0, answers: 0, other: 0, bad: 0 }
let snapStart = null
let snapEnd = null
let measuring = false
let stopped = false
const failureReasons = new Map()
const badExamples = []
const closedByServer = new Map() // close code -> sockets
let errors = 0
let firstError = ''

function snapshot () {
  return { t: performance.now(), cpu: process.cpuUsage(), c: { ...C }, per: sockets.map(s => s.replies) }
}

function noteBad (why, text) {
  C.bad++
  if (badExamples.length < 3) badExamples.push(`${why}: ${text.slice(0, 200)}`)
}

// ---- sockets ----

const sockets = []
let opened = 0
let settled = 0

const B_FAILURE = Buffer.from('"failure reason"')
const B_OFFER_ID = Buffer.from('"offer_id"')
const B_ANSWER = Buffer.from('"answer"')
const B_INTERVAL = Buffer.from('"interval"')

function check (s, data, kind) {
  let m
  const text = data.toString('utf8')
  try { m = JSON.parse(text) } catch { return noteBad('not JSON', text) }
  const is20 = v => typeof v === 'string' && v.length === 20 && !/[^\x00-\xff]/.test(v)
  if (m.action !== 'announce') return noteBad('action', text)
  if (!is20(m.info_hash) || !swarmSet.has(m.info_hash)) return noteBad('info_hash', text)
  if (kind === 'reply') {
    if (!Number.isInteger(m.interval) || !Number.isInteger(m.complete) ||
        !Number.isInteger(m.incomplete)) return noteBad('reply figures', text)
  } else if (kind === 'offer') {
    if (!is20(m.peer_id) || m.peer_id === s.peerId) return noteBad('offer peer_id', text)
    if (!is20(m.offer_id)) return noteBad('offer_id', text)
    if (!m.offer || m.offer.type !== 'offer' || typeof m.offer.sdp !== 'string' ||
        !m.offer.sdp.startsWith('v=0\r\n') || m.offer.sdp.length < opt['sdp-bytes']) {
      return noteBad('offer body', text)
    }
  }
}

function sendNext (s) {
  const j = s.next
  s.next = (j + 1) % opt.swarms
  const t = s.tpl[j]
  let msg = s.started[j] ? t.next : t.first
  s.started[j] = true
  for (let k = 0; k < t.offerParts.length; k++) {
    const ctr = (s.counter++ >>> 0).toString(16).padStart(8, '0')
    msg += (k ? ',' : '') + t.offerParts[k][0] + ctr + t.offerParts[k][1]
  }
  msg += ']}'
  s.inflight++
  C.sent++
  s.ws.send(msg)
}

function onMessage (s, data) {
  let kind
  if (data.indexOf(B_FAILURE) >= 0) {
    kind = 'failure'
    C.failures++
    if (failureReasons.size < 20) {
      let why = '?'
      try { why = JSON.parse(data.toString('utf8'))['failure reason'] } catch {}
      failureReasons.set(why, (failureReasons.get(why) || 0) + 1)
    }
  } else if (data.indexOf(B_OFFER_ID) >= 0) {
    if (data.indexOf(B_ANSWER) >= 0) { kind = 'answer'; C.answers++ } else { kind = 'offer'; C.offers++ }
    s.offers++
  } else if (data.indexOf(B_INTERVAL) >= 0) {
    kind = 'reply'
    C.replies++
    s.replies++
  } else {
    C.other++
    noteBad('unclassified', data.toString('utf8'))
    return
  }
  if (++s.seen % opt['check-every'] === 0) check(s, data, kind)
  // A reply or a failure answers one announce in flight.
  if (kind === 'reply' || kind === 'failure') {
    if (s.inflight > 0) s.inflight--
    if (!stopped && s.ws.readyState === WebSocket.OPEN) sendNext(s)
  }
}

function openSocket (i) {
  const peerId = binstr(Buffer.concat([Buffer.from('-WL0001-'), randomBytes(12)]))
  const ws = new WebSocket(opt.url, { perMessageDeflate: false, skipUTF8Validation: true,
    handshakeTimeout: opt['connect-timeout'] * 1000 })
  const s = { i, ws, peerId, tpl: makeTemplates(peerId, opt.tag * 10000 + i),
    started: new Array(opt.swarms).fill(false), next: i % opt.swarms, counter: 0,
    inflight: 0, replies: 0, offers: 0, seen: 0, open: false, closed: false }
  sockets.push(s)
  ws.on('open', () => {
    s.open = true
    opened++
    for (let w = 0; w < opt.window; w++) sendNext(s)
    if (++settled === opt.sockets) allSettled()
  })
  ws.on('message', (data, isBinary) => {
    if (isBinary) { C.other++; return }
    onMessage(s, data)
  })
  ws.on('error', e => {
    errors++
    if (!firstError) firstError = String(e.message || e)
  })
  ws.on('close', (code) => {
    const wasOpen = s.open
    s.closed = true
    if (!stopped && wasOpen) closedByServer.set(code, (closedByServer.get(code) || 0) + 1)
    if (!wasOpen && ++settled === opt.sockets) allSettled()
    if (stopped && sockets.every(x => x.closed)) finish(false)
  })
}

let startTimer = null
function allSettled () {
  const t = Date.now()
  process.stderr.write(`ws_load: ${opened}/${opt.sockets} sockets open after ${t - T_START} ms\n`)
  if (opened === 0) return finish(true)
  const at = opt['start-at'] || t + opt.warmup * 1000
  if (opt['start-at'] && at < t) process.stderr.write('ws_load: sockets opened after --start-at; measuring from now\n')
  startTimer = setTimeout(() => {
    snapStart = snapshot()
    measuring = true
    setTimeout(endMeasure, opt.duration * 1000)
  }, Math.max(0, at - t))
}

function endMeasure () {
  snapEnd = snapshot()
  measuring = false
  stopped = true
  for (const s of sockets) {
    if (s.closed) continue
    try { s.ws.close(1000) } catch { s.closed = true }
  }
  if (sockets.every(x => x.closed)) return finish(false)
  setTimeout(() => { // a socket that does not close in 3 s is torn down
    for (const s of sockets) if (!s.closed) s.ws.terminate()
    setTimeout(() => finish(false), 200)
  }, 3000)
}

let finished = false
function finish (failed) {
  if (finished) return
  finished = true
  clearTimeout(hardStop)
  if (startTimer) clearTimeout(startTimer)
  const out = { ok: false, url: opt.url, tag: opt.tag, sockets: opt.sockets, opened, swarms: opt.swarms,
    offers_per_announce: opt.offers, window: opt.window, sdp_bytes: opt['sdp-bytes'] }
  if (snapStart && snapEnd) {
    const secs = (snapEnd.t - snapStart.t) / 1000
    const d = k => snapEnd.c[k] - snapStart.c[k]
    const cpuUs = (snapEnd.cpu.user - snapStart.cpu.user) + (snapEnd.cpu.system - snapStart.cpu.system)
    const per = snapEnd.per.map((v, i) => v - (snapStart.per[i] || 0)).filter((_, i) => sockets[i].open)
    const replies = d('replies')
    Object.assign(out, {
      ok: replies > 0 && closedByServer.size === 0,
      seconds: +secs.toFixed(3),
      announces_sent: d('sent'),
      replies,
      offers_received: d('offers'),
      failures: d('failures'),
      replies_per_s: Math.round(replies / secs),
      offers_per_s: Math.round(d('offers') / secs),
      sent_per_s: Math.round(d('sent') / secs),
      offers_per_reply: replies ? +(d('offers') / replies).toFixed(3) : null,
      mean_latency_ms: replies ? +(opened * opt.window / (replies / secs) * 1000).toFixed(2) : null,
      replies_per_socket_min: per.length ? Math.min(...per) : 0,
      replies_per_socket_max: per.length ? Math.max(...per) : 0,
      gen_cpu_pct: +(cpuUs / 1e4 / secs).toFixed(1)
    })
  }
  Object.assign(out, {
    answers: C.answers, other: C.other, bad: C.bad, bad_examples: badExamples,
    failure_reasons: Object.fromEntries(failureReasons),
    closed_by_server: Object.fromEntries(closedByServer), socket_errors: errors,
    first_error: firstError,
    in_flight_at_end: sockets.reduce((a, s) => a + s.inflight, 0)
  })
  if (C.bad || C.other) out.ok = false
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(failed || !out.ok ? 1 : 0)
}

for (let i = 0; i < opt.sockets; i++) openSocket(i)
