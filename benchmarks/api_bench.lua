-- wrk script of benchmarks/api.sh: cycle over the request paths in $WRK_PATHS (one a line), thread k of n from
-- k/n of the way through the list (so that on a list longer than a server's cache no thread re-asks what another
-- just asked); send $WRK_API_KEY as X-API-Key when set; at the end print one JSON line with the totals and the
-- latency percentiles (labels from $WRK_TARGET and $WRK_SERVER) for api_bench.py to tabulate.
local paths = {}
local i = 0
local key = os.getenv("WRK_API_KEY")
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(os.getenv("WRK_PATHS")) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  local n = tonumber(os.getenv("WRK_THREADS") or "1")
  i = math.floor((id or 0) * #paths / n) % #paths
  if key and #key > 0 then wrk.headers["X-API-Key"] = key end
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"target": "%s", "server": "%s", "requests": %d, "duration_s": %.6f, "bytes": %d, ' ..
    '"errors": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    os.getenv("WRK_TARGET") or "?", os.getenv("WRK_SERVER") or "?", summary.requests, summary.duration / 1e6,
    summary.bytes, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
