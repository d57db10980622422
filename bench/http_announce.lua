-- wrk script: HTTP keep-alive announces with a varying info_hash.
--
--   wrk -t1 -c64 -d10s -s bench/http_announce.lua http://127.0.0.1:PORT/announce \
--       -- [HASH_FILE [POOL_SIZE [SEED [PARETO_SHAPE]]]]
--
-- HASH_FILE: 40-hex info_hashes, one per line (udp_load --dump-hashes writes
--   it; the same file is opentracker's whitelist). The first POOL_SIZE lines
--   (default 10000) form the pool. Without a file (or "-"), POOL_SIZE random
--   hashes are made from SEED.
-- Each request: info_hash from the pool (truncated-Pareto popularity, as
--   udp_load; shape 0 = uniform), random peer_id and port, compact=1,
--   numwant=30, left=0 for 75% of requests (seeders).
-- Replies are checked (status 200, a bencoded dict with "peers", no
--   "failure reason") unless HTTP_ANNOUNCE_CHECK=0 is set in the environment,
--   which saves wrk some CPU.
-- done() prints: RESULT http_announce rps=... p50_us=... p99_us=... errors=...
-- (errors = connect+write+timeout; read_closed = wrk "read" errors, which
-- include every connection the server closes: Debian's opentracker closes
-- after each reply, so it never keeps a connection alive).

local check = os.getenv("HTTP_ANNOUNCE_CHECK") ~= "0"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads) -- global in the thread's own Lua state
end

local pool = {}
local npool = 0
local shape = 1.0
local prefix, suffix
-- per-thread counters: globals, so that done() can read them with thread:get()
bad_status, failures, malformed = 0, 0, 0

local function encode_raw(bytes)
  return (bytes:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

local function encode_hex(hex)
  local raw = hex:gsub("%x%x", function(xx) return string.char(tonumber(xx, 16)) end)
  return encode_raw(raw)
end

function init(args)
  local file = args[1]
  local size = tonumber(args[2] or "") or 10000
  local seed = tonumber(args[3] or "") or 1
  shape = tonumber(args[4] or "") or 1.0
  math.randomseed(seed * 7919 + 17) -- same pool in every thread

  if file and file ~= "-" then
    local f = assert(io.open(file, "r"), "http_announce.lua: cannot open " .. file)
    for line in f:lines() do
      local hex = line:match("^%s*(%x+)%s*$")
      if hex and #hex == 40 then
        npool = npool + 1
        pool[npool] = encode_hex(hex)
        if npool >= size then break end
      end
    end
    f:close()
    assert(npool > 0, "http_announce.lua: no 40-hex lines in " .. file)
  else
    -- no hash file: a random pool (a whitelisting tracker will refuse these)
    local rnd = {}
    for i = 1, size do
      for k = 1, 20 do rnd[k] = string.char(math.random(0, 255)) end
      pool[i] = encode_raw(table.concat(rnd))
    end
    npool = size
  end
  -- the next requests of this thread are seeded per thread
  math.randomseed(seed * 31337 + (thread_no or 0) * 65537)

  local path = wrk.path
  if path == nil or path == "" then path = "/announce" end
  local sep = path:find("?", 1, true) and "&" or "?"
  local host = wrk.headers["Host"] or wrk.host
  prefix = "GET " .. path .. sep .. "info_hash="
  suffix = "&compact=1&numwant=30 HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n"
end

local floor, random, pow = math.floor, math.random, math.pow or function(a, b) return a ^ b end

local function pick()
  if shape <= 0 then return random(1, npool) end
  while true do
    local x = pow(1.0 - random(), -1.0 / shape) -- 1 - random() is in (0, 1]
    local f = (x - 1.0) / 100.0
    if f < 1.0 then return floor(f * npool) + 1 end
  end
end

function request()
  local left = 0
  if random() >= 0.75 then left = random(1, 1073741823) end
  return prefix .. pool[pick()]
    .. "&peer_id=-WK0001-" .. string.format("%06d%06d", random(0, 999999), random(0, 999999))
    .. "&port=" .. random(1024, 65535)
    .. "&uploaded=0&downloaded=0&left=" .. left
    .. suffix
end

if check then
  function response(status, headers, body)
    if status ~= 200 then
      bad_status = bad_status + 1
    elseif body:find("failure reason", 1, true) then
      failures = failures + 1
    elseif body:sub(1, 1) ~= "d" or not body:find("5:peers", 1, true) then
      malformed = malformed + 1
    end
  end
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  -- wrk counts a connection the server closed as a "read" error; Debian's
  -- opentracker closes after every reply (no keep-alive), so those are kept
  -- apart from the real errors (connect, write, timeout).
  local sock_errors = e.connect + e.write + e.timeout
  local st, fl, mf = 0, 0, 0
  for _, t in ipairs(threads) do
    st = st + (tonumber(t:get("bad_status")) or 0)
    fl = fl + (tonumber(t:get("failures")) or 0)
    mf = mf + (tonumber(t:get("malformed")) or 0)
  end
  if not check then st = e.status end
  local rps = secs > 0 and summary.requests / secs or 0
  io.write(string.format(
    "http_announce: %d responses in %.2f s, %.0f/s; latency p50 %.0f us, p99 %.0f us, max %.0f us; " ..
    "socket errors %d (connect %d, write %d, timeout %d); closed by server or read errors %d; " ..
    "non-200 %d; failure replies %d; malformed %d%s\n",
    summary.requests, secs, rps, latency:percentile(50), latency:percentile(99), latency.max,
    sock_errors, e.connect, e.write, e.timeout, e.read, st, fl, mf,
    check and "" or " (replies not checked)"))
  io.write(string.format(
    "RESULT http_announce rps=%.0f p50_us=%.0f p99_us=%.0f errors=%d read_closed=%d non200=%d failures=%d malformed=%d requests=%d seconds=%.2f checked=%d\n",
    rps, latency:percentile(50), latency:percentile(99), sock_errors, e.read, st, fl, mf,
    summary.requests, secs, check and 1 or 0))
end
