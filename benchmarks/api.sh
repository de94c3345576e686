#!/usr/bin/env bash
# HTTP benchmark of `cim serve` (issue 7), run by hand, never by the tests:
#
#   bash benchmarks/api.sh            # env: DURATION=15 RUNS=3 WORKERS=2 CONNECTIONS=64 THREADS=2 DEMO=<dir>
#
# wrk on loopback, 64 connections, 2 threads, DURATION seconds per target, RUNS runs interleaved, medians:
#   static   3D Tiles content (.glb of the Delft demo's tilesets): cim serve vs nginx serving the same files
#   raster   XYZ PNG tiles of the design storm's max-depth COG: cim serve vs TiTiler (uvicorn, same COG, same
#            tiles, same number of workers); 48 tiles z 13-18, which our tile cache holds after the warm-up
#   raster-cold  the same on 27,570 tiles z 20-23, more than our cache keeps: every tile of ours is rendered
#   features OGC API Features items (bbox + limit) on the Delft buildings: cim serve alone
# Installs what is missing (apt-get: wrk nginx; pip: titiler.application into its own venv under the cache dir,
# so .venv's pins stay as they are), builds the demo once (`cim demo`) into the cache dir, starts every server on
# a free loopback port and stops them on exit. Prints a table of req/s, p50, p99 and the ratios of the goals.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/cim-bench"
DEMO="${DEMO:-$CACHE/demo}"
TVENV="$CACHE/titiler"
DURATION="${DURATION:-15}"
RUNS="${RUNS:-3}"
WORKERS="${WORKERS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
WORK="$(mktemp -d /tmp/cim-api-bench.XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do                 # each server was started in its own process group
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# -- what is needed ------------------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if [ ! -x "$TVENV/bin/uvicorn" ] || ! "$TVENV/bin/python" -c "import titiler.application" 2>/dev/null; then
    mkdir -p "$CACHE"
    python3 -m venv "$TVENV"
    "$TVENV/bin/pip" install -q titiler.application uvicorn
fi
if [ ! -d "$DEMO/delft.cim" ] || [ ! -d "$DEMO/tiles" ]; then
    echo "building the Delft demo into $DEMO (once)"
    "$ROOT/.venv/bin/cim" demo --out "$DEMO" >/dev/null
fi

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_up() {     # URL: until it answers (any status), at most 60 s
    for _ in $(seq 600); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "server at $1 did not come up" >&2
    exit 1
}

check() {       # URL EXPECTED_STATUS
    local got
    got="$(curl -s -o /dev/null -w '%{http_code}' "$1")"
    if [ "$got" != "$2" ]; then echo "$1 answered $got, expected $2" >&2; exit 1; fi
}

"$PY" "$ROOT/benchmarks/api_bench.py" setup "$WORK" "$DEMO" --workers "$WORKERS"

# -- servers -------------------------------------------------------------------------------------------------
P_OURS="$(free_port)"; P_NGINX="$(free_port)"; P_TITILER="$(free_port)"
sed -i "s/__PORT__/$P_NGINX/" "$WORK/nginx.conf"

setsid "$ROOT/.venv/bin/cim" serve "$DEMO/delft.cim" --port "$P_OURS" --anonymous-read --tiles-root "$DEMO/tiles" \
    --workers "$WORKERS" --no-access-log >"$WORK/ours.log" 2>&1 &
PIDS+=($!)
setsid "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/nginx-error.log" >"$WORK/nginx.log" 2>&1 &
PIDS+=($!)
(cd "$WORK" && exec setsid "$TVENV/bin/uvicorn" titiler.application.main:app --host 127.0.0.1 --port "$P_TITILER" \
    --workers "$WORKERS" --no-access-log --log-level warning >"$WORK/titiler.log" 2>&1) &
PIDS+=($!)

declare -A URL=([ours]="http://127.0.0.1:$P_OURS" [nginx]="http://127.0.0.1:$P_NGINX"
                [titiler]="http://127.0.0.1:$P_TITILER")
wait_up "${URL[ours]}/conformance"; wait_up "${URL[nginx]}/"; wait_up "${URL[titiler]}/healthz"
check "${URL[ours]}$(head -n1 "$WORK/static.txt")" 200
check "${URL[nginx]}$(head -n1 "$WORK/static.txt")" 200
check "${URL[ours]}$(head -n1 "$WORK/raster_ours.txt")" 200
check "${URL[titiler]}$(head -n1 "$WORK/raster_titiler.txt")" 200
check "${URL[titiler]}$(head -n1 "$WORK/raster_titiler_28992.txt")" 200
check "${URL[ours]}$(head -n1 "$WORK/raster_cold_ours.txt")" 200
check "${URL[titiler]}$(head -n1 "$WORK/raster_cold_titiler.txt")" 200
check "${URL[ours]}$(head -n1 "$WORK/features.txt")" 200

# target server list
PAIRS=("static ours static.txt" "static nginx static.txt" "raster ours raster_ours.txt"
       "raster titiler raster_titiler.txt" "raster titiler-28992 raster_titiler_28992.txt"
       "raster-cold ours raster_cold_ours.txt" "raster-cold titiler raster_cold_titiler.txt"
       "features ours features.txt")

bench() {       # TARGET SERVER[-VARIANT] LIST SECONDS OUT
    WRK_TARGET="$1" WRK_SERVER="$2" WRK_PATHS="$WORK/$3" WRK_THREADS="$THREADS" \
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "${4}s" --timeout 10s -s "$ROOT/benchmarks/api_bench.lua" \
        "${URL[${2%%-*}]}" >"$WORK/wrk.out" 2>&1
    grep '^{' "$WORK/wrk.out" >>"$5"
    "$PY" "$ROOT/benchmarks/api_bench.py" settle "${PIDS[@]}"   # queued requests worked off before the next run
}

echo "$(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg); workers $WORKERS," \
     "$CONNECTIONS connections, $THREADS wrk threads, ${DURATION} s x $RUNS runs"
for pair in "${PAIRS[@]}"; do           # warm-up (caches, lazy imports): not counted
    read -r target server list <<<"$pair"
    bench "$target" "$server" "$list" 3 "$WORK/warmup.jsonl"
done
for run in $(seq "$RUNS"); do
    for pair in "${PAIRS[@]}"; do
        read -r target server list <<<"$pair"
        bench "$target" "$server" "$list" "$DURATION" "$WORK/results.jsonl"
    done
    echo "run $run done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
"$PY" "$ROOT/benchmarks/api_bench.py" table "$WORK/results.jsonl"
if [ -n "${KEEP_RESULTS:-}" ]; then cp "$WORK/results.jsonl" "$KEEP_RESULTS"; fi
