-- wrk: POST one reading per request, a fresh timestamp every time (the typical device).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  key = os.getenv("TELEMETRA_KEY")
  base = tonumber(os.getenv("BENCH_BASE") or "1700000000")
end

request = function()
  counter = counter + 1
  local ts = base * 1000 + tid * 100000000 + counter
  local body = string.format('{"ts":%d,"values":{"temperature":21.5}}', ts)
  return wrk.format("POST", os.getenv("BENCH_PATH") or "/api/v1/readings",
    {["Content-Type"] = "application/json", ["X-API-Key"] = key}, body)
end
