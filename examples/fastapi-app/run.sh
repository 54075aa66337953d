#!/usr/bin/env bash
# `make run`: the example FastAPI app under uvicorn (2 workers) writing its JSON access log,
# a steady traffic mix against it, and the exporter watching it; prints the page's URL.
# Ctrl-C stops all of it. Usage: run.sh path/to/fastapi-exporter
set -euo pipefail
exporter=$1
here=$(cd "$(dirname "$0")" && pwd)
# fastapi-exporter.yaml's folder; WORK=elsewhere runs a copy of it pointed there.
work=${WORK:-/tmp/fastapi-example}
mkdir -p "$work"
rm -f "$work/access.log" "$work/positions.yaml"
sed "s|/tmp/fastapi-example|$work|g" "$here/fastapi-exporter.yaml" > "$work/fastapi-exporter.yaml"
app_port=${APP_PORT:-8000}

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

(cd "$here" && ACCESS_LOG="$work/access.log" exec /usr/bin/python3 -m uvicorn app:app \
   --host 127.0.0.1 --port "$app_port" --workers 2 --no-access-log --log-level warning \
   2>"$work/uvicorn.log") &
pids+=($!)
echo $! > "$work/uvicorn.pid"
/usr/bin/python3 - "$app_port" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)
        break
    except OSError:
        time.sleep(0.2)
PY
/usr/bin/python3 "$here/traffic.py" "http://127.0.0.1:$app_port" 5 &
pids+=($!)
listen=${LISTEN:-127.0.0.1:9869}
"$exporter" --config.file="$work/fastapi-exporter.yaml" --web.listen-address="$listen" &
pids+=($!)
sleep 1
echo
echo "  The example app:   http://127.0.0.1:$app_port  (access log: $work/access.log, errors: $work/uvicorn.log)"
echo "  The live view:     http://$listen/   (Prometheus metrics: /metrics)"
echo "  Ctrl-C stops the app, the traffic and the exporter."
echo
wait -n "${pids[@]}"
