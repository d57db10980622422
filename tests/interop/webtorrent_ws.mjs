#!/usr/bin/env node
// WebTorrent signaling through a WebSocket tracker: npm bittorrent-tracker 11.2.3's Client,
// as browsers run it, over ws:// or wss://.
//
//   node tests/interop/webtorrent_ws.mjs --urls ws://127.0.0.1:P1/announce[,ws://127.0.0.1:P2/announce]
//                                        [--info-hash HEX40] [--expect-interval S] [--hold]
//                                        [--step-timeout S]
//   node tests/interop/webtorrent_ws.mjs --reference [--tls-cert FILE --tls-key FILE]
//
// Client A (a seeder, left=0) announces on the first URL, client B (a leecher) on the second
// (or the first if there is one). Each client runs in a worker thread of its own, as two
// browsers would: bittorrent-tracker shares one WebSocket among the clients of a process
// that name the same URL, and the tracker must see two sockets. WebRTC is the signaling-only
// fake of npm/webrtc-stub (offers and answers are opaque strings, nothing ever connects).
//
// Steps, each bounded by --step-timeout (default 15 s), the whole run by 60 s:
//  1. A starts; its 'update' must show complete=1 incomplete=0 (and the interval, if told).
//  2. B starts; its 'update' must show complete=1 incomplete=1. The tracker must deliver
//     one of B's offers to A (a 'peer' event on A with B's peer id, the offer B made) and
//     A's answer to B (a 'peer' event on B with A's id; B's connection then holds the very
//     answer A made, which names B's offer).
//  3. A scrape from each client must show complete=1 incomplete=1; A got exactly one offer.
//  4. Without --hold: B's client is destroyed (its socket closes) and A's scrapes must see
//     the swarm drop to complete=1 incomplete=0. With --hold: the summary is printed and
//     both clients stay in the swarm until stdin closes or SIGTERM (tests that kill a
//     router underneath them).
//
// stdout gets one line of JSON (the summary; "ok": false with "error" on failure), stderr
// the log. Exit 0 on success, 1 on failure, 2 on bad arguments.
// wss:// trusts what NODE_EXTRA_CA_CERTS names (Node reads it at start-up).
// --reference runs bittorrent-tracker's own Server in-process (on 127.0.0.1, a free port,
// wss:// with --tls-cert/--tls-key) and both clients against it: the driver checked against
// the protocol's reference implementation.

import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const NPM_DIR = path.join(HERE, 'npm')
const TRACKER_PKG = path.join(NPM_DIR, 'node_modules', 'bittorrent-tracker')
const OVERALL_TIMEOUT_MS = 60000
const SIZE = 4 * 1024 * 1024

class Failure extends Error {}

// ======================================================================================
// worker: one Client, driven by messages from the main thread

async function workerMain () {
  const { url, infoHashHex, peerIdHex, port, left } = workerData
  const { default: Client } = await import(pathToFileURL(path.join(TRACKER_PKG, 'client.js')).href)
  const post = m => parentPort.postMessage(m)
  const client = new Client({
    infoHash: Buffer.from(infoHashHex, 'hex'),
    peerId: Buffer.from(peerIdHex, 'hex'),
    announce: [url],
    port,
    getAnnounceOpts: () => ({ uploaded: 0, downloaded: left === 0 ? SIZE : 0, left })
  })
  client.on('update', d => post({
    ev: 'update',
    complete: d.complete,
    incomplete: d.incomplete,
    interval: d.interval,
    infoHash: d.infoHash
  }))
  client.on('scrape', d => post({
    ev: 'scrape', infoHash: d.infoHash, complete: d.complete, incomplete: d.incomplete, downloaded: d.downloaded
  }))
  client.on('warning', e => post({ ev: 'warning', message: String((e && e.message) || e) }))
  client.on('error', e => post({ ev: 'error', message: String((e && e.message) || e) }))
  client.on('peer', peer => {
    // A peer from an offer (we answer it) or from the answer to one of our offers.
    if (!peer.initiator) {
      // ('peer' comes before the client hands the offer to the connection)
      post({ ev: 'peer', kind: 'offer', from: peer.id })
      peer.once('signal', answer => post({
        ev: 'answered', from: peer.id, offerSdp: peer._pc.remoteDescription.sdp, answerSdp: answer.sdp
      }))
    } else {
      const offerSdp = peer._pc && peer._pc.localDescription && peer._pc.localDescription.sdp
      post({ ev: 'peer', kind: 'answer', from: peer.id, offerSdp })
      peer.once('negotiated', () => post({
        ev: 'negotiated', from: peer.id, offerSdp, answerSdp: peer._pc.remoteDescription.sdp
      }))
    }
    peer.on('error', e => post({ ev: 'peer-error', from: peer.id, message: String((e && e.message) || e) }))
  })
  parentPort.on('message', m => {
    if (m.cmd === 'start') client.start()
    else if (m.cmd === 'scrape') client.scrape()
    else if (m.cmd === 'destroy') {
      const t = setTimeout(() => post({ ev: 'destroyed' }), 5000)
      client.destroy(() => { clearTimeout(t); post({ ev: 'destroyed' }) })
    }
  })
  post({ ev: 'ready' })
}

// ======================================================================================
// main thread

const log = (...a) => console.error('[webtorrent-ws]', ...a)

function parseArgs (argv) {
  const o = { urls: null, infoHash: null, expectInterval: null, hold: false, stepMs: 15000,
              reference: false, tlsCert: null, tlsKey: null }
  const val = (i, name) => {
    if (i >= argv.length) throw new Error(`${name} needs a value`)
    return argv[i]
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--urls') o.urls = val(++i, a).split(',').map(s => s.trim()).filter(Boolean)
    else if (a === '--info-hash') o.infoHash = val(++i, a).toLowerCase()
    else if (a === '--expect-interval') o.expectInterval = Number(val(++i, a))
    else if (a === '--step-timeout') o.stepMs = Number(val(++i, a)) * 1000
    else if (a === '--hold') o.hold = true
    else if (a === '--reference') o.reference = true
    else if (a === '--tls-cert') o.tlsCert = val(++i, a)
    else if (a === '--tls-key') o.tlsKey = val(++i, a)
    else throw new Error(`unknown argument ${a}`)
  }
  if (!o.reference && (!o.urls || o.urls.length < 1 || o.urls.length > 2)) {
    throw new Error('usage: webtorrent_ws.mjs --urls URL_A[,URL_B] [--info-hash HEX] ' +
      '[--expect-interval S] [--hold] [--step-timeout S] | --reference [--tls-cert F --tls-key F]')
  }
  if (o.reference && o.urls) throw new Error('--reference starts its own server: no --urls')
  if (!!o.tlsCert !== !!o.tlsKey) throw new Error('--tls-cert and --tls-key go together')
  if (o.infoHash && !/^[0-9a-f]{40}$/.test(o.infoHash)) throw new Error('--info-hash: 40 hex digits')
  for (const u of o.urls || []) {
    if (!/^wss?:\/\//.test(u)) throw new Error(`not a ws:// or wss:// URL: ${u}`)
  }
  if (!(o.stepMs > 0)) throw new Error('--step-timeout: seconds > 0')
  return o
}

// bittorrent-tracker's own Server (the protocol's reference), in-process.
async function startReference (tlsCert, tlsKey) {
  const { Server } = await import(pathToFileURL(path.join(TRACKER_PKG, 'index.js')).href)
  const tracker = new Server({ http: false, udp: false, stats: false, ws: { noServer: true } })
  tracker.on('warning', e => log(`reference server warning: ${e && e.message}`))
  tracker.on('error', e => log(`reference server error: ${e && e.message}`))
  const srv = tlsCert
    ? https.createServer({ cert: readFileSync(tlsCert), key: readFileSync(tlsKey) })
    : http.createServer()
  srv.on('request', (req, res) => { res.statusCode = 404; res.end() })
  srv.on('upgrade', (req, socket, head) => {
    tracker.ws.handleUpgrade(req, socket, head, ws => tracker.ws.emit('connection', ws, req))
  })
  await new Promise((resolve, reject) => {
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', resolve)
  })
  const url = `${tlsCert ? 'wss' : 'ws'}://127.0.0.1:${srv.address().port}/announce`
  const close = () => new Promise(resolve => {
    tracker.close(() => {})
    srv.closeAllConnections && srv.closeAllConnections()
    srv.close(() => resolve())
    setTimeout(resolve, 2000).unref()
  })
  return { url, close }
}

// One client in its worker; events are kept (so that none is missed between steps) and
// waited for with deadlines.
class ClientWorker {
  constructor (name, opts, stepMs) {
    this.name = name
    this.stepMs = stepMs
    this.events = []
    this.waiters = []
    this.problems = [] // warnings and errors: none is expected
    this.worker = new Worker(fileURLToPath(import.meta.url), { workerData: opts })
    this.worker.on('message', m => this._on(m))
    this.worker.on('error', e => this._on({ ev: 'error', message: `worker: ${(e && e.stack) || e}` }))
    this.worker.on('exit', code => this._on({ ev: 'exit', code }))
  }

  _on (m) {
    this.events.push(m)
    if (m.ev === 'warning' || m.ev === 'error' || m.ev === 'peer-error' ||
        (m.ev === 'exit' && !this.exiting)) {
      this.problems.push(m)
      log(`${this.name}: ${m.ev}: ${m.message || `exit code ${m.code}`}`)
    }
    for (const w of this.waiters.slice()) w(m)
  }

  // The first event (from `from` on: an index into this.events) that satisfies pred.
  wait (what, pred, from = 0) {
    return new Promise((resolve, reject) => {
      const check = m => {
        if (m.ev === 'warning' || m.ev === 'error' || m.ev === 'peer-error' ||
            (m.ev === 'exit' && !this.exiting)) {
          done(reject, new Failure(`${this.name}: ${what}: ${m.ev}: ${m.message || `exit code ${m.code}`}`))
          return true
        }
        if (pred(m)) { done(resolve, m); return true }
        return false
      }
      const waiter = m => { check(m) }
      const done = (fn, v) => {
        clearTimeout(timer)
        this.waiters = this.waiters.filter(w => w !== waiter)
        fn(v)
      }
      const timer = setTimeout(() => done(reject, new Failure(
        `${this.name}: ${what}: nothing within ${this.stepMs / 1000} s ` +
        `(events so far: ${JSON.stringify(this.events.map(e => e.ev))})`)), this.stepMs)
      this.waiters.push(waiter)
      for (const m of this.events.slice(from)) if (check(m)) return
    })
  }

  send (cmd) { this.worker.postMessage({ cmd }) }

  async destroy () {
    if (this.gone) return
    this.gone = true
    const from = this.events.length
    this.send('destroy')
    try {
      await this.wait('destroy', m => m.ev === 'destroyed', from)
    } catch (e) {
      log(`${this.name}: ${e.message}`)
    }
    this.exiting = true
    await this.worker.terminate()
  }
}

function peerIdFor (tag) {
  // 8-byte Azureus-style prefix + 12 random bytes: bytes >= 0x80 in the binary strings
  return Buffer.concat([Buffer.from(`-WW${tag}-`), randomBytes(12)])
}

async function scrapeUntil (cw, ihHex, pred, what, deadlineMs) {
  // Scrapes (one at a time) until pred(reply) holds; the last reply goes in the failure.
  const t0 = Date.now()
  let last = null
  while (true) {
    const from = cw.events.length
    cw.send('scrape')
    last = await cw.wait(`${what}: scrape`, m => m.ev === 'scrape' && m.infoHash === ihHex, from)
    if (pred(last)) return { reply: last, ms: Date.now() - t0 }
    if (Date.now() - t0 > deadlineMs) {
      throw new Failure(`${cw.name}: ${what}: not within ${deadlineMs / 1000} s; last scrape ` +
        `complete=${last.complete} incomplete=${last.incomplete}`)
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
}

async function run (o, summary) {
  if (!existsSync(path.join(TRACKER_PKG, 'client.js'))) {
    throw new Failure(`bittorrent-tracker not installed: run \`npm install --no-audit --no-fund\` in ${NPM_DIR}`)
  }
  const pkg = JSON.parse(readFileSync(path.join(TRACKER_PKG, 'package.json'), 'utf8'))
  summary.bittorrent_tracker = pkg.version
  let reference = null
  const workers = []
  try {
    if (o.reference) {
      reference = await startReference(o.tlsCert, o.tlsKey)
      o.urls = [reference.url]
      log(`reference Server (bittorrent-tracker ${pkg.version}) at ${reference.url}`)
    }
    const [urlA, urlB = urlA] = o.urls
    const ihHex = o.infoHash || randomBytes(20).toString('hex')
    const idA = peerIdFor('0001').toString('hex')
    const idB = peerIdFor('0002').toString('hex')
    Object.assign(summary, { tracker: o.reference ? 'reference' : 'external', urls: [urlA, urlB],
      info_hash: ihHex, a_peer_id: idA, b_peer_id: idB })
    log(`A ${idA} on ${urlA}, B ${idB} on ${urlB}, info_hash ${ihHex}`)

    const portA = 20000 + Math.floor(Math.random() * 20000)
    const A = new ClientWorker('A (seeder)', { url: urlA, infoHashHex: ihHex, peerIdHex: idA, port: portA, left: 0 }, o.stepMs)
    const B = new ClientWorker('B (leecher)', { url: urlB, infoHashHex: ihHex, peerIdHex: idB, port: portA + 1, left: SIZE }, o.stepMs)
    workers.push(A, B)
    await Promise.all([A.wait('start-up', m => m.ev === 'ready'), B.wait('start-up', m => m.ev === 'ready')])

    // 1. A announces `started`
    const t1 = Date.now()
    A.send('start')
    const ua = await A.wait('announce (started)', m => m.ev === 'update')
    summary.a_update = { complete: ua.complete, incomplete: ua.incomplete, interval: ua.interval, ms: Date.now() - t1 }
    log(`A announced: complete=${ua.complete} incomplete=${ua.incomplete} interval=${ua.interval}`)
    if (ua.infoHash !== ihHex) throw new Failure(`A's announce reply names info_hash ${ua.infoHash}, not ${ihHex}`)
    if (ua.complete !== 1 || ua.incomplete !== 0) {
      throw new Failure(`A's announce reply shows complete=${ua.complete} incomplete=${ua.incomplete}; ` +
        'expected complete=1 incomplete=0 (A alone, a seeder)')
    }
    if (o.expectInterval !== null && ua.interval !== o.expectInterval) {
      throw new Failure(`A's announce reply has interval=${ua.interval}, expected ${o.expectInterval}`)
    }

    // 2. B announces `started`: its offers go to A, A's answer comes back
    const aMark = A.events.length
    const t2 = Date.now()
    B.send('start')
    const ub = await B.wait('announce (started)', m => m.ev === 'update')
    summary.b_update = { complete: ub.complete, incomplete: ub.incomplete, interval: ub.interval, ms: Date.now() - t2 }
    log(`B announced: complete=${ub.complete} incomplete=${ub.incomplete} interval=${ub.interval}`)
    if (ub.complete !== 1 || ub.incomplete !== 1) {
      throw new Failure(`B's announce reply shows complete=${ub.complete} incomplete=${ub.incomplete}; ` +
        'expected complete=1 (A) incomplete=1 (B)')
    }
    const offer = await A.wait(`an offer from B (${idB}) delivered by the tracker`,
      m => m.ev === 'peer' && m.kind === 'offer', aMark)
    if (offer.from !== idB) throw new Failure(`A got an offer from peer ${offer.from}, expected B ${idB}`)
    summary.offer_ms = Date.now() - t2
    const answered = await A.wait('A answering B\'s offer', m => m.ev === 'answered', aMark)
    log(`A got B's offer "${answered.offerSdp}" and answered "${answered.answerSdp}"`)
    const neg = await B.wait(`A's answer (from ${idA}) delivered by the tracker`, m => m.ev === 'negotiated')
    summary.answer_ms = Date.now() - t2
    if (neg.from !== idA) throw new Failure(`B got an answer from peer ${neg.from}, expected A ${idA}`)
    if (neg.answerSdp !== answered.answerSdp) {
      throw new Failure(`B's connection holds answer "${neg.answerSdp}", A made "${answered.answerSdp}"`)
    }
    if (neg.offerSdp !== answered.offerSdp) {
      throw new Failure(`the answer B got is for its offer "${neg.offerSdp}", but A answered "${answered.offerSdp}"`)
    }
    const tok = /^synapse-stub offer (\S+)$/.exec(neg.offerSdp || '')
    if (!tok || !neg.answerSdp.endsWith(` to ${tok[1]}`)) {
      throw new Failure(`answer "${neg.answerSdp}" does not name B's offer "${neg.offerSdp}" (is npm/webrtc-stub installed?)`)
    }
    log(`B got A's answer: offer ${summary.offer_ms} ms, answer ${summary.answer_ms} ms after B's start`)

    // 3. scrapes through both sockets
    for (const [key, c] of [['scrape_a', A], ['scrape_b', B]]) {
      const from = c.events.length
      c.send('scrape')
      const s = await c.wait('scrape while both are in the swarm', m => m.ev === 'scrape' && m.infoHash === ihHex, from)
      summary[key] = { complete: s.complete, incomplete: s.incomplete, downloaded: s.downloaded }
      log(`scrape via ${c.name}: complete=${s.complete} incomplete=${s.incomplete} downloaded=${s.downloaded}`)
      if (s.complete !== 1 || s.incomplete !== 1) {
        throw new Failure(`scrape via ${c.name} shows complete=${s.complete} incomplete=${s.incomplete}; expected 1 and 1`)
      }
    }
    const offers = A.events.filter(m => m.ev === 'peer' && m.kind === 'offer')
    summary.offers_to_a = offers.length
    if (offers.length !== 1) {
      throw new Failure(`A got ${offers.length} offers from one announce of B's; each offer must go to ` +
        'a different peer, and A is the only other one')
    }
    const offersToB = B.events.filter(m => m.ev === 'peer' && m.kind === 'offer')
    if (offersToB.length) throw new Failure(`B got ${offersToB.length} offers, but nobody announced after B`)

    const early = [...A.problems, ...B.problems]
    if (early.length) throw new Failure(`client warnings: ${JSON.stringify(early)}`)

    if (o.hold) {
      clearTimeout(o.overallTimer) // held as long as the caller wants
      summary.ok = true
      summary.holding = true
      console.log(JSON.stringify(summary))
      log('holding: both clients stay in the swarm until stdin closes or SIGTERM')
      await new Promise(resolve => {
        process.stdin.on('end', resolve)
        process.stdin.on('error', resolve)
        process.stdin.resume()
        process.once('SIGTERM', resolve)
      })
      summary.held = true
      return
    }

    // 4. B leaves (its socket closes): the tracker must drop it from the swarm
    await B.destroy()
    const drop = await scrapeUntil(A, ihHex, s => s.complete === 1 && s.incomplete === 0,
      'swarm after B\'s socket closed (expected complete=1 incomplete=0)', o.stepMs)
    summary.b_close_drop_ms = drop.ms
    log(`after B's socket closed A's scrape shows complete=1 incomplete=0 (${drop.ms} ms)`)
    const problems = [...A.problems, ...B.problems]
    if (problems.length) throw new Failure(`client warnings: ${JSON.stringify(problems)}`)
  } finally {
    await Promise.all(workers.map(w => w.destroy()))
    if (reference) await reference.close()
  }
}

async function main () {
  let o
  try {
    o = parseArgs(process.argv.slice(2))
  } catch (e) {
    console.error(e.message)
    return 2
  }
  const summary = { ok: false }
  const t0 = Date.now()
  const overall = setTimeout(() => {
    summary.error = `overall timeout ${OVERALL_TIMEOUT_MS / 1000} s`
    console.log(JSON.stringify(summary))
    console.error(`FAIL webtorrent_ws: ${summary.error}`)
    process.exit(1)
  }, OVERALL_TIMEOUT_MS)
  o.overallTimer = overall
  try {
    await run(o, summary)
    clearTimeout(overall)
    summary.ok = true
    summary.seconds = (Date.now() - t0) / 1000
    if (!summary.held) console.log(JSON.stringify(summary))
    console.error(`PASS webtorrent_ws[${summary.tracker}]: offer and answer delivered, ` +
      `scraped 1/1${summary.held ? '' : ', closed socket dropped'} (${summary.seconds.toFixed(1)}s)`)
    return 0
  } catch (e) {
    clearTimeout(overall)
    summary.ok = false
    summary.error = e instanceof Failure ? e.message : String((e && e.stack) || e)
    console.log(JSON.stringify(summary))
    console.error(`FAIL webtorrent_ws: ${summary.error}`)
    return 1
  }
}

if (isMainThread) {
  process.exit(await main())
} else {
  workerMain().catch(e => parentPort.postMessage({ ev: 'error', message: `worker: ${(e && e.stack) || e}` }))
}
