#!/usr/bin/env node
// Interop: WebTorrent's tracker client (npm bittorrent-tracker 11.2.3) against the tracker.
//
//   node tests/interop/webtorrent_client.mjs --transport http|udp
//
// Needs `npm install --no-audit --no-fund` in tests/interop/npm first. The tracker is started
// by tests/interop/tracker_launcher.py (INTEROP_TRACKER=synapse, the default, runs
// synapse-tracker through tests/lib/synapse_proc.py; INTEROP_TRACKER=opentracker runs Debian's
// opentracker). INTEROP_PYTHON picks the Python (default python3).
//
// Steps: a seeder Client (left=0) and a leecher Client (left>0), different peer ids, same
// info_hash, announce `started`; the leecher must learn the seeder's address from the tracker
// (a 'peer' event); a scrape must show complete=1, incomplete=1; both announce `stopped`; a
// final scrape must show an empty swarm (BEP 3/15/48: `stopped` removes the peer at once).
// Exit 0 on success, 1 with a message on failure.

import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const OVERALL_TIMEOUT_MS = 60000
const STEP_TIMEOUT_MS = 15000
const TRACKER_KIND = (process.env.INTEROP_TRACKER || 'synapse').trim().toLowerCase()

function parseArgs (argv) {
  let transport = null
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--transport') transport = argv[++i]
    else if (argv[i].startsWith('--transport=')) transport = argv[i].slice(12)
    else throw new Error(`unknown argument ${argv[i]}`)
  }
  if (transport !== 'http' && transport !== 'udp') {
    throw new Error('usage: webtorrent_client.mjs --transport http|udp')
  }
  return { transport }
}

const log = (...a) => console.error('[webtorrent]', ...a)

class Failure extends Error {}

// ---- tracker process (via the Python launcher, which shares trackers.py with the other tests)

function startTracker (infoHashHex) {
  const py = process.env.INTEROP_PYTHON || 'python3'
  const launcher = path.join(HERE, 'tracker_launcher.py')
  const child = spawn(py, [launcher, '--info-hash', infoHashHex, '--max-seconds', '120'], {
    stdio: ['pipe', 'pipe', 'inherit']
  })
  const ready = new Promise((resolve, reject) => {
    let buf = ''
    const timer = setTimeout(() => {
      reject(new Failure('tracker did not print its ready line within 40 s'))
    }, 40000)
    child.stdout.on('data', chunk => {
      buf += chunk.toString()
      for (const line of buf.split('\n')) {
        const m = /^ready kind=(\S+) http=(\d+) udp=(\d+)/.exec(line)
        if (m) {
          clearTimeout(timer)
          resolve({ kind: m[1], http: Number(m[2]), udp: Number(m[3]) })
        }
      }
    })
    child.on('error', err => { clearTimeout(timer); reject(new Failure(`cannot run ${py}: ${err.message}`)) })
    child.on('exit', (code, sig) => {
      clearTimeout(timer)
      reject(new Failure(`tracker launcher exited before ready (code ${code}, signal ${sig})`))
    })
  })
  const stop = () => new Promise(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const killer = setTimeout(() => { child.kill('SIGKILL') }, 20000)
    child.once('exit', () => { clearTimeout(killer); resolve() })
    child.stdin.end() // EOF tells the launcher to stop the tracker and exit
  })
  return { child, ready, stop }
}

// ---- waiting for client events, bounded

// Resolves with the first `event` payload that satisfies `pred`. Any 'warning' or 'error'
// from the client fails the step (announce/scrape failures arrive as warnings), unless
// `onWarning` returns a value to resolve with instead.
function waitClient (client, event, what, { pred = () => true, onWarning = null, ms = STEP_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const done = (fn, v) => {
      clearTimeout(timer)
      client.removeListener(event, onEvent)
      client.removeListener('warning', onWarn)
      client.removeListener('error', onErr)
      fn(v)
    }
    const onEvent = data => { if (pred(data)) done(resolve, data) }
    const onWarn = err => {
      if (onWarning) {
        const v = onWarning(err)
        if (v !== undefined) return done(resolve, v)
      }
      done(reject, new Failure(`${what}: tracker client warning: ${err && err.message}`))
    }
    const onErr = err => done(reject, new Failure(`${what}: tracker client error: ${err && err.message}`))
    const timer = setTimeout(() => done(reject, new Failure(`${what}: no '${event}' within ${ms / 1000} s`)), ms)
    client.on(event, onEvent)
    client.on('warning', onWarn)
    client.on('error', onErr)
  })
}

function destroyClient (client) {
  return new Promise(resolve => {
    const t = setTimeout(resolve, 5000)
    client.destroy(() => { clearTimeout(t); resolve() })
  })
}

function peerIdFor (tag) {
  // Azureus-style id, 20 bytes, passed as a Buffer (facts.md: pass Buffers, not hex)
  return Buffer.concat([Buffer.from(`-WW${tag}-`), randomBytes(20 - 3 - tag.length - 1)])
}

// ---- the test

async function run (transport) {
  const npmDir = path.join(HERE, 'npm')
  const clientJs = path.join(npmDir, 'node_modules', 'bittorrent-tracker', 'client.js')
  if (!existsSync(clientJs)) {
    throw new Failure(`bittorrent-tracker not installed: run \`npm install --no-audit --no-fund\` in ${npmDir}`)
  }
  const { default: Client } = await import(pathToFileURL(clientJs).href)
  const pkg = JSON.parse(readFileSync(path.join(npmDir, 'node_modules', 'bittorrent-tracker', 'package.json'), 'utf8'))
  log(`bittorrent-tracker ${pkg.version}, tracker ${TRACKER_KIND}, transport ${transport}`)

  const infoHash = randomBytes(20)
  const tracker = startTracker(infoHash.toString('hex'))
  const clients = []
  try {
    const ports = await tracker.ready
    const announce = transport === 'http'
      ? `http://127.0.0.1:${ports.http}/announce`
      : `udp://127.0.0.1:${ports.udp}/announce`
    log(`tracker ${ports.kind} ready: ${announce}, info_hash ${infoHash.toString('hex')}`)

    // distinct announced ports: some trackers (opentracker) key peers by ip:port
    const seedPort = 20000 + Math.floor(Math.random() * 20000)
    const leechPort = seedPort + 1
    const SIZE = 4 * 1024 * 1024
    const seeder = new Client({
      infoHash, peerId: peerIdFor('0001'), announce: [announce], port: seedPort,
      getAnnounceOpts: () => ({ uploaded: 0, downloaded: SIZE, left: 0 })
    })
    const leecher = new Client({
      infoHash, peerId: peerIdFor('0002'), announce: [announce], port: leechPort,
      getAnnounceOpts: () => ({ uploaded: 0, downloaded: 0, left: SIZE })
    })
    clients.push(seeder, leecher)

    // 1. seeder announces `started` (left=0)
    const seedUpdate = waitClient(seeder, 'update', 'seeder announce (started)')
    seeder.start()
    const su = await seedUpdate
    log(`seeder announced: complete=${su.complete} incomplete=${su.incomplete}`)

    // 2. leecher announces `started` and must discover the seeder through a 'peer' event
    const seedAddr = `127.0.0.1:${seedPort}`
    const leechPeers = []
    leecher.on('peer', addr => leechPeers.push(addr))
    const leechUpdate = waitClient(leecher, 'update', 'leecher announce (started)')
    const leechFound = waitClient(leecher, 'peer', `leecher discovering the seeder ${seedAddr}`,
      { pred: addr => addr === seedAddr })
    leecher.start()
    const lu = await leechUpdate
    log(`leecher announced: complete=${lu.complete} incomplete=${lu.incomplete}`)
    await leechFound
    log(`leecher got peer ${seedAddr} from the tracker (all peers in reply: ${leechPeers.join(', ')})`)
    if (lu.complete !== undefined && lu.complete < 1) {
      throw new Failure(`leecher's announce reply says complete=${lu.complete}, but a seeder is in the swarm`)
    }

    // bittorrent-tracker 11.2.3 quirk: over HTTP its bencode decoder turns a non-UTF-8 key of
    // `files` into 40 hex characters, which the client then hex-encodes again, so the
    // 'scrape' event's infoHash is hex(ascii(hex(info_hash))). Accept either spelling.
    const ihHex = infoHash.toString('hex')
    const ihNames = new Set([ihHex, Buffer.from(ihHex).toString('hex')])
    const isOurs = d => ihNames.has(d.infoHash)

    // 3. scrape (from both clients): one seeder, one leecher
    for (const [name, c] of [['seeder', seeder], ['leecher', leecher]]) {
      const p = waitClient(c, 'scrape', `${name} scrape while both are active`,
        { pred: isOurs })
      c.scrape()
      const s = await p
      log(`scrape via ${name}: complete=${s.complete} incomplete=${s.incomplete} downloaded=${s.downloaded}`)
      if (s.complete !== 1 || s.incomplete !== 1) {
        throw new Failure(`scrape via ${name} shows complete=${s.complete} incomplete=${s.incomplete}; ` +
          'expected complete=1 (seeder, left=0) and incomplete=1 (leecher, left>0)')
      }
    }

    // 4. both announce `stopped`; wait for the tracker's answers
    for (const [name, c] of [['seeder', seeder], ['leecher', leecher]]) {
      const p = waitClient(c, 'update', `${name} announce (stopped)`)
      c.stop()
      await p
      log(`${name} stopped`)
    }

    // 5. final scrape: the swarm must be empty. BEP 3/15/48: `stopped` removes the peer at
    // once. Over HTTP a tracker may drop the torrent from `files` altogether; the client
    // reports that as the warning 'invalid scrape response', which also means "empty".
    // (opentracker removes stopped peers immediately and keeps a 0/0 entry; no exception
    // is needed for it.)
    const p = waitClient(leecher, 'scrape', 'final scrape after both stopped', {
      pred: isOurs,
      onWarning: err => (transport === 'http' && /invalid scrape response/.test(err && err.message))
        ? { complete: 0, incomplete: 0, downloaded: null, absent: true }
        : undefined
    })
    leecher.scrape()
    const fin = await p
    log(`final scrape: ${fin.absent ? 'torrent absent from files' : `complete=${fin.complete} incomplete=${fin.incomplete} downloaded=${fin.downloaded}`}`)
    if (fin.complete !== 0 || fin.incomplete !== 0) {
      throw new Failure(`after both clients stopped, scrape shows complete=${fin.complete} ` +
        `incomplete=${fin.incomplete}; expected an empty swarm (stopped must remove the peer)`)
    }
  } finally {
    await Promise.all(clients.map(destroyClient))
    await tracker.stop()
  }
}

async function main () {
  let transport
  try {
    ({ transport } = parseArgs(process.argv.slice(2)))
  } catch (e) {
    console.error(e.message)
    return 2
  }
  const t0 = Date.now()
  const overall = setTimeout(() => {
    console.error(`FAIL webtorrent_client[${transport}, ${TRACKER_KIND}]: overall timeout ${OVERALL_TIMEOUT_MS / 1000} s`)
    process.exit(1)
  }, OVERALL_TIMEOUT_MS)
  try {
    await run(transport)
    console.log(`PASS webtorrent_client[${transport}, ${TRACKER_KIND}]: bittorrent-tracker client announced, ` +
      `discovered the other peer, scraped 1/1, stopped and scraped an empty swarm (${((Date.now() - t0) / 1000).toFixed(1)}s)`)
    return 0
  } catch (e) {
    console.error(`FAIL webtorrent_client[${transport}, ${TRACKER_KIND}]: ${e instanceof Failure ? e.message : (e && e.stack) || e}`)
    return 1
  } finally {
    clearTimeout(overall)
  }
}

process.exit(await main())
