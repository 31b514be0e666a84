-- wrk: POST 1000 readings per request (10 keys x 100 timestamps), never the same twice.
local counter = 0
local thread_id = 0
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
  local parts = {}
  -- every request gets its own 100-second window: unique (sensor, ts) across the run
  local t0 = base + ((tid * 10000000) + counter) * 100
  for i = 0, 99 do
    local ts = t0 + i
    parts[#parts + 1] = string.format(
      '{"ts":%d,"values":{"k0":%d,"k1":1.5,"k2":2.5,"k3":3.5,"k4":4.5,"k5":5.5,"k6":6.5,"k7":7.5,"k8":8.5,"k9":9.5}}',
      ts, i)
  end
  local body = "[" .. table.concat(parts, ",") .. "]"
  return wrk.format("POST", "/api/v1/readings",
    {["Content-Type"] = "application/json", ["X-API-Key"] = key}, body)
end
