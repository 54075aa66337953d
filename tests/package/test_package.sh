#!/usr/bin/env bash
# The Debian package, end to end: built by CPack, checked by lintian and systemd-analyze,
# installed with dpkg, the installed binary started the way its unit starts it and scraped,
# then purged without a trace. Installs into the machine: runs as root only, and not where
# fastapi-exporter is already installed.
#   test_package.sh BUILD_DIR SOURCE_DIR VERSION
set -euo pipefail
build=$1 source=$2 version=$3
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || skip "installing a package needs root"
if dpkg-query -W -f='${Status}' fastapi-exporter 2>/dev/null | grep -q installed; then
  skip "fastapi-exporter is installed on this machine; not touching it"
fi

work=$(mktemp -d)
app_pid="" exporter_pid=""
cleanup() {
  set +e
  [[ -n $exporter_pid ]] && kill "$exporter_pid" 2>/dev/null
  if [[ -n $app_pid ]]; then
    pkill -KILL -P "$app_pid" 2>/dev/null
    kill -KILL "$app_pid" 2>/dev/null
  fi
  dpkg --purge fastapi-exporter >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # URL: until it answers 200, or fail after 20 s
  for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  fail "$1 did not answer"
}

echo "--- cpack"
(cd "$build" && cpack -G DEB >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack"; }
deb="$build/fastapi-exporter_${version}_$(dpkg --print-architecture).deb"
[[ -f $deb ]] || fail "expected $deb"

echo "--- lintian"
lintian --fail-on error,warning "$deb" || fail "lintian reports errors or warnings"

echo "--- dpkg -i"
dpkg -i "$deb"
getent passwd fastapi-exporter >/dev/null || fail "no fastapi-exporter user"
id -nG fastapi-exporter | grep -qw adm || fail "fastapi-exporter is not in adm"
id -nG fastapi-exporter | grep -qw systemd-journal || fail "fastapi-exporter is not in systemd-journal"
[[ $(stat -c %U "/var/lib/fastapi-exporter") == fastapi-exporter ]] || fail "state folder owner"
conffiles=$(dpkg-query -W -f='${Conffiles}' fastapi-exporter)
for conf in /etc/fastapi-exporter/config.yaml /etc/default/fastapi-exporter; do
  grep -q "$conf" <<<"$conffiles" || fail "$conf is not a conffile"
done

echo "--- systemd-analyze"
unit=/lib/systemd/system/fastapi-exporter.service
systemd-analyze verify "$unit"
security=$(systemd-analyze security --offline=true "$unit" | tail -1)
echo "$security"
grep -Eq "level for fastapi-exporter.service: [0-9.]+ (OK|SAFE|PERFECT)" <<<"$security" ||
  fail "systemd-analyze security rates the unit worse than OK"
# Not worse than the 1.9 it had before the journal source asked for systemd-journal.
score=$(grep -Eo "[0-9]+\.[0-9]+" <<<"$security" | tail -1)
awk -v s="$score" 'BEGIN { exit !(s <= 1.9) }' || fail "security exposure $score is worse than 1.9"
grep -Eq "^SupplementaryGroups=.*\bsystemd-journal\b" "$unit" ||
  fail "the unit does not run in group systemd-journal"

echo "--- fastapi-exporter-routes"
routes=$(fastapi-exporter-routes --app-dir "$source/examples/fastapi-app" app:app)
grep -qF "      - '/files/{file_path:path}'" <<<"$routes" || fail "route dump: $routes"

echo "--- check-config"
fastapi-exporter --check-config /etc/fastapi-exporter/config.yaml

echo "--- the system journal: readable through group systemd-journal only"
if [[ -x /lib/systemd/systemd-journal-remote ]]; then
  chmod 0711 "$work"
  install -d -m 2750 -o root -g systemd-journal "$work/journal"
  for i in 1 2 3; do
    printf '__REALTIME_TIMESTAMP=170000000%d000000\n_SYSTEMD_UNIT=fastapi.service\n' "$i"
    printf 'MESSAGE=INFO:     127.0.0.1:1 - "GET /items/%d HTTP/1.1" 200 OK\n\n' "$i"
  done >"$work/export.txt"
  /lib/systemd/systemd-journal-remote --output="$work/journal/system.journal" "$work/export.txt" \
    2>/dev/null
  chgrp systemd-journal "$work/journal/system.journal"
  chmod 0640 "$work/journal/system.journal"
  printf '%s\n' "positions_file: $work/positions.yaml" "services:" "  - name: api" \
    "    access_logs:" "      - journal: {unit: fastapi.service, path: $work/journal}" \
    "        format: uvicorn" >"$work/journal.yaml"
  chmod 0644 "$work/journal.yaml"
  read_journal=$(setpriv --reuid=fastapi-exporter --regid=fastapi-exporter --init-groups \
    fastapi-exporter --config.file="$work/journal.yaml" --oneshot 2>&1)
  grep -q '^fastapi_exporter_log_requests_total{service="api",.*} 3$' <<<"$read_journal" ||
    fail "the installed user does not read the journal: $read_journal"
else
  echo "SKIP: systemd-journal-remote is not installed"
fi

echo "--- the unit's ExecStart, as its user, with ARGS from /etc/default"
# A FastAPI app for the default config (every uvicorn process) to find.
app_port=$(free_port)
(cd "$source/examples/fastapi-app" &&
  exec env ACCESS_LOG="$work/access.log" /usr/bin/python3 -m uvicorn app:app \
    --host 127.0.0.1 --port "$app_port" >/dev/null 2>&1) &
app_pid=$!
wait_for "http://127.0.0.1:$app_port/health"

port=$(free_port)
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[[ $exec_start == '/usr/bin/fastapi-exporter $ARGS' ]] || fail "unexpected ExecStart: $exec_start"
# shellcheck disable=SC1091
. /etc/default/fastapi-exporter
ARGS="$ARGS --web.listen-address=127.0.0.1:$port"
# systemd splits an unquoted $VAR on whitespace, as the shell does here.
# shellcheck disable=SC2086
setpriv --reuid=fastapi-exporter --regid=fastapi-exporter --init-groups \
  ${exec_start%% *} $ARGS >"$work/exporter.log" 2>&1 &
exporter_pid=$!
wait_for "http://127.0.0.1:$port/healthz"
metrics=$(curl -sf "http://127.0.0.1:$port/metrics")
grep -q "^fastapi_exporter_build_info{.*version=\"$version\"" <<<"$metrics" ||
  fail "no build_info for $version"
processes=$(sed -n 's/^process_processes{service="fastapi"} //p' <<<"$metrics")
[[ -n $processes && $processes -ge 1 ]] || { echo "$metrics" | grep '^process_' | head; fail "the default config does not find the uvicorn app"; }
kill -TERM "$exporter_pid"
wait "$exporter_pid" || fail "the exporter did not exit 0 on SIGTERM: $(cat "$work/exporter.log")"
exporter_pid=""
grep -q "stopped" "$work/exporter.log" || fail "no clean stop in the log"

echo "--- dpkg --purge"
dpkg --purge fastapi-exporter
for gone in /usr/bin/fastapi-exporter /etc/fastapi-exporter /etc/default/fastapi-exporter \
            /var/lib/fastapi-exporter "$unit" /usr/lib/sysusers.d/fastapi-exporter.conf; do
  [[ ! -e $gone ]] || fail "$gone is left after purge"
done
! getent passwd fastapi-exporter >/dev/null || fail "the user is left after purge"
! getent group fastapi-exporter >/dev/null || fail "the group is left after purge"
! dpkg-query -W fastapi-exporter >/dev/null 2>&1 || fail "dpkg still knows the package"
echo "OK"
