#!/usr/bin/env node
// A headless browser for test_status_page.py: Debian's chromium driven through its DevTools
// protocol by puppeteer-core (installed in tests/interop/npm by scripts/setup.sh; it downloads
// no browser). The Python test decides and asserts; this only does what it is told.
//
// Protocol: one JSON command a line on stdin, one JSON reply a line on stdout, in order.
// Every reply carries `errors`: each JavaScript console error, uncaught page error and failed
// request seen so far on any page, so the test can fail on the first one.
//   {"cmd":"open","url":..,"width":..,"height":..,"javascript":true,"mobile":false} -> {}
//   {"cmd":"wait","js":"<expression>","timeout_ms":..}  -> {"value":..,"elapsed_ms":..}
//        polls the expression in the page (every 50 ms) until it is truthy; an error after
//        the timeout, with the expression's last value.
//   {"cmd":"eval","js":"<expression>"} -> {"value":..}
//   {"cmd":"keys","keys":["Tab","Enter"],"text":".."} -> {}   (keys pressed, then text typed)
//   {"cmd":"screenshot","path":..,"full_page":true} -> {}
//   {"cmd":"close"} -> {} and exit
// A reply to a command that failed is {"error": "..."}.
//
// Env: CHROMIUM (default /usr/bin/chromium).

import { createRequire } from 'node:module'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const NPM_DIR = path.join(HERE, '..', 'interop', 'npm')
const require = createRequire(path.join(NPM_DIR, 'package.json'))
const puppeteer = require('puppeteer-core')

const errors = []
let browser = null
let page = null

function watch (p, label) {
  p.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${label} console.error: ${msg.text()} (${msg.location().url || ''})`)
  })
  p.on('pageerror', (err) => errors.push(`${label} page error: ${err.message || err}`))
  p.on('requestfailed', (req) => errors.push(`${label} request failed: ${req.url()} ${req.failure()?.errorText || ''}`))
  p.on('response', (res) => {
    if (res.status() >= 400) errors.push(`${label} HTTP ${res.status()} for ${res.url()}`)
  })
}

async function open (c) {
  if (!browser) {
    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      // Root in a container: no sandbox; no GPU; nothing but loopback is ever asked for.
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--disable-default-apps', '--disable-extensions', '--metrics-recording-only',
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']
    })
  }
  if (page) await page.close()
  page = await browser.newPage()
  watch(page, c.javascript === false ? 'page (no JS)' : 'page')
  await page.setJavaScriptEnabled(c.javascript !== false)
  await page.setViewport({ width: c.width || 1200, height: c.height || 900, deviceScaleFactor: 1,
    isMobile: !!c.mobile, hasTouch: !!c.mobile })
  const origin = new URL(c.url).origin
  await browser.defaultBrowserContext().overridePermissions(origin, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write'])
  await page.goto(c.url, { waitUntil: 'load', timeout: 15000 })
  return {}
}

async function wait (c) {
  const t0 = Date.now()
  try {
    const h = await page.waitForFunction(c.js, { polling: 50, timeout: c.timeout_ms })
    return { value: await h.jsonValue(), elapsed_ms: Date.now() - t0 }
  } catch (e) {
    let last
    try { last = await page.evaluate(c.js) } catch (e2) { last = `(${e2.message})` }
    return { error: `not within ${c.timeout_ms} ms: ${c.js} (last: ${JSON.stringify(last)})` }
  }
}

async function run (c) {
  switch (c.cmd) {
    case 'open': return open(c)
    case 'wait': return wait(c)
    case 'eval': return { value: await page.evaluate(c.js) }
    case 'keys':
      for (const k of c.keys || []) await page.keyboard.press(k)
      if (c.text) await page.keyboard.type(c.text)
      return {}
    case 'screenshot':
      await page.screenshot({ path: c.path, fullPage: c.full_page !== false })
      return {}
    case 'close':
      if (browser) await browser.close()
      browser = null
      return {}
    default: throw new Error(`unknown command ${c.cmd}`)
  }
}

const lines = readline.createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  let reply
  try {
    reply = await run(JSON.parse(line))
  } catch (e) {
    reply = { error: String(e && e.message ? e.message : e) }
  }
  reply.errors = errors.slice()
  process.stdout.write(JSON.stringify(reply) + '\n')
  if (JSON.parse(line).cmd === 'close') break
}
if (browser) await browser.close()
lines.close()
process.exit(0)
