-- wrk: one reading a request from a fleet: each request for a random device (its own key)
-- and one of its 5 sensors, a fresh timestamp every time. BENCH_KEYS: a file of
-- "device_id key" lines.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  base = tonumber(os.getenv("BENCH_BASE") or "1700000000")
  keys = {}
  for line in io.lines(os.getenv("BENCH_KEYS")) do
    local id, key = line:match("^(%d+) (%S+)$")
    table.insert(keys, key)
  end
  names = {"temperature", "humidity", "pressure", "battery", "rssi"}
  counter = 0
  math.randomseed(os.time() + tid * 7919)
end

request = function()
  counter = counter + 1
  local ts = base * 1000 + tid * 100000000 + counter
  local key = keys[math.random(#keys)]
  local body = string.format('{"ts":%d,"values":{"%s":21.5}}', ts, names[math.random(5)])
  return wrk.format("POST", "/api/v1/readings",
    {["Content-Type"] = "application/json", ["X-API-Key"] = key}, body)
end
