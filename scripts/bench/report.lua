-- wrk script for the benchmark: POST a fixed body, time every response, write the figures as JSON.
--
--   WRK_BODY=body.json WRK_OUT=out.json [WRK_CLOSE=1] wrk -t N -c N -s report.lua URL
--
-- Run with as many threads as connections (-t N -c N): each thread then has one connection, so
-- the time from request() to response() is that request's latency. wrk's own latency figures are
-- not used: wrk 4 adds synthetic samples for "coordinated omission" (stats_correct), which turns
-- every closed-loop hiccup into dozens of fake slow requests and its percentiles into fiction.
-- The clock is CLOCK_MONOTONIC through LuaJIT's FFI. Settings come from environment variables
-- because done() runs in wrk's main Lua state, which never sees init()'s arguments.
-- WRK_CLOSE=1 sends "Connection: close" (one request per connection); WRK_HEADERS names a file of
-- extra "Name: value" lines to send with every request.

local ffi = require("ffi")
ffi.cdef [[
  struct bench_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clock_id, struct bench_timespec *tp);
]]
local clock = ffi.new("struct bench_timespec")
local CLOCK_MONOTONIC = 1

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + math.floor(tonumber(clock.tv_nsec) / 1000)
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local request_bytes
local started = 0
samples = {}  -- global, so that done() can read it with thread:get

function init(args)
  local file = assert(io.open(os.getenv("WRK_BODY"), "rb"))
  local body = file:read("*a")
  file:close()
  local headers = { ["Content-Type"] = "application/json" }
  if os.getenv("WRK_CLOSE") == "1" then
    headers["Connection"] = "close"
  end
  local extra = os.getenv("WRK_HEADERS")  -- a file of "Name: value" lines (a peer's routing headers)
  if extra and extra ~= "" then
    for line in io.lines(extra) do
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then
        headers[name] = value
      end
    end
  end
  request_bytes = wrk.format("POST", nil, headers, body)
end

function request()
  started = now_us()
  return request_bytes
end

function response(status, headers, body)
  samples[#samples + 1] = now_us() - started
end

function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    local mine = thread:get("samples")
    for i = 1, #mine do
      all[#all + 1] = mine[i]
    end
  end
  table.sort(all)
  local n = #all
  local function pct(p)
    if n == 0 then return 0 end
    local rank = math.ceil(p / 100 * n)
    if rank < 1 then rank = 1 end
    return all[rank]
  end
  local sum = 0
  for i = 1, n do sum = sum + all[i] end
  local e = summary.errors
  local out = assert(io.open(os.getenv("WRK_OUT"), "w"))
  out:write(string.format(
    '{"requests": %d, "timed": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}}\n',
    summary.requests, n, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    n > 0 and all[1] or 0, n > 0 and sum / n or 0, pct(50), pct(90), pct(99), pct(99.9),
    n > 0 and all[n] or 0))
  out:close()
end
