"""The wire source against real uvicorn (two workers, --no-access-log): requests read off
loopback into the same request metrics as logs, with exact counts per (method, route,
status), durations that match the app's known delays, and `ports: auto` finding uvicorn's
port by itself. And, as an unprivileged user, the clear error and a running exporter."""

import collections
import http.client
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from exporter import BIN, SOURCE as SOURCE_DIR, Exporter, free_port, http_get, kill_tree, \
    parse_samples, start_example_app, wait_until

SERVICE = "api"

# (method, target, status, times, route, known delay in seconds)
TRAFFIC = [
    ("GET", "/api/users/{}", 200, 12, "/api/users/{user_id}", 0.0),
    ("GET", "/api/users/{}", 404, 4, "/api/users/{user_id}", 0.0),
    ("POST", "/api/items", 201, 6, "/api/items", 0.0),
    ("GET", "/api/slow?ms=60", 200, 5, "/api/slow", 0.060),
    ("GET", "/api/error", 500, 3, "/api/error", 0.0),
    ("HEAD", "/health", 405, 2, None, None),  # excluded (and GET-only: 405)
]


def user_id(status, i):
    # The example app answers 404 for ids over 1000.
    return str(i + 1) if status == 200 else str(5000 + i)


def requests_in_order():
    out = []
    for method, target, status, times, route, delay in TRAFFIC:
        for i in range(times):
            out.append((method, target.format(user_id(status, i)), status, route))
    return out


def send(connection, method, target):
    body = b"{}" if method == "POST" else None
    headers = {"content-type": "application/json"} if body else {}
    connection.request(method, target, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def has_net_raw():
    """Whether this process holds CAP_NET_RAW (bit 13 of CapEff): root in a container may not."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 13 & 1)
    return False


@pytest.fixture
def uvicorn_app(tmp_path):
    app, url = start_example_app(tmp_path / "access.log", service=SERVICE)
    try:
        yield app, url, tmp_path / "access.log"
    finally:
        kill_tree(app)


@pytest.mark.skipif(not has_net_raw(), reason="capturing packets needs CAP_NET_RAW (root)")
def test_requests_on_the_wire_count_exactly_with_their_durations(tmp_path, uvicorn_app):
    app, url, log = uvicorn_app
    port = int(url.rsplit(":", 1)[1])
    config = f"""
services:
  - name: {SERVICE}
    process:
      cmdline: "uvicorn app:app --host 127.0.0.1 --port {port} "
    # Both sources: the wire feeds the request metrics, the log is not counted.
    access_logs:
      - path: {log}
        format: json
    wire:
      ports: auto
    routes_from:
      openapi_url: {url}/openapi.json
    exclude_paths: [/health]
"""
    with Exporter(tmp_path, config) as exporter:
        wait_until(lambda: exporter.value("fastapi_exporter_wire_ports", service=SERVICE) == 1,
                   timeout=20, what="ports: auto finding uvicorn's port")
        assert exporter.value("fastapi_exporter_wire_capture_up", service=SERVICE) == 1

        sent = requests_in_order()
        client_seconds = collections.Counter()  # per (method, target's route, status)
        # Half over one keep-alive connection, half on a fresh connection each (and every
        # 500: uvicorn closes the connection after an unhandled exception).
        keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i, (method, target, status, route) in enumerate(sent):
            if i % 2 == 0 and status != 500:
                connection = keep_alive
            else:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.connect()
            start = time.perf_counter()
            assert send(connection, method, target) == status, (method, target)
            client_seconds[(method, route, str(status))] += time.perf_counter() - start
            if connection is not keep_alive:
                connection.close()
        keep_alive.close()

        counted = sum(t[3] for t in TRAFFIC if t[4] is not None)
        wait_until(lambda: exporter.value("fastapi_exporter_wire_requests_total",
                                          service=SERVICE) == counted,
                   timeout=20, what=f"{counted} requests read off the wire")
        # The excluded /health requests come last: their responses may still be on the way.
        wait_until(lambda: exporter.value("fastapi_exporter_wire_excluded_total",
                                          service=SERVICE) >= 2,
                   timeout=20, what="the two /health requests read off the wire")
        samples = exporter.scrape()

        # The live view's Logger Stream lists each request read off the wire (query strings
        # not kept), with the duration the wire measured.
        status, _, raw = http_get(exporter.url + f"/api/v1/logs?service={SERVICE}&limit=1000")
        assert status == 200, raw
        lines = json.loads(raw)["lines"]
        assert collections.Counter((line["method"], line["path"], line["status"])
                                   for line in lines) == \
            collections.Counter((method, target.split("?")[0], status)
                                for method, target, status, route in sent if route)
        assert all(line["duration_seconds"] > 0 for line in lines)

        # A reload with the same file keeps the wire's counters and goes on counting.
        stamp = exporter.value("fastapi_exporter_config_last_reload_success_timestamp_seconds")
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: exporter.value(
            "fastapi_exporter_config_last_reload_success_timestamp_seconds") != stamp,
            what="the reload")
        wait_until(lambda: exporter.value("fastapi_exporter_wire_ports", service=SERVICE) == 1,
                   what="the port after the reload")
        fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        assert send(fresh, "POST", "/api/items") == 201
        fresh.close()
        wait_until(lambda: exporter.value("fastapi_exporter_wire_requests_total",
                                          service=SERVICE) == counted + 1,
                   what="the request after the reload")
        assert exporter.value("fastapi_requests_total", service=SERVICE, method="POST",
                              path="/api/items", status_code="201") == 7

    expected = collections.Counter()
    for method, _, status, times, route, _ in TRAFFIC:
        if route:
            expected[(method, route, str(status))] += times
    got = {}
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if name == "fastapi_requests_total" and labels.get("service") == SERVICE:
            got[(labels["method"], labels["path"], labels["status_code"])] = value
    assert got == dict(expected)

    # Each route's mean duration is what the client saw, within 5 ms, and never less than
    # the app's known delay. (What the client sees is not only the app's delay: uvicorn with
    # h11 writes a response's head and body apart, and on a keep-alive connection the body
    # waits for the client's delayed ACK, ~40 ms on loopback; the wire sees exactly that.)
    for method, _, status, times, route, delay in TRAFFIC:
        if route is None:
            continue
        labels = {"service": SERVICE, "method": method, "path": route,
                  "status_code": str(status)}
        key = lambda name: (name, frozenset(labels.items()))
        count = samples[key("fastapi_request_duration_seconds_count")]
        total = samples[key("fastapi_request_duration_seconds_sum")]
        assert count == expected[(method, route, str(status))]
        client = client_seconds[(method, route, str(status))] / count
        assert abs(total / count - client) < 0.005, (route, status, total / count, client)
        assert total / count >= delay, (route, status, total / count, delay)

    # Nothing lost or doubled: the access log was not counted, no stream was unreadable.
    assert not any(name == "fastapi_exporter_log_requests_total" for name, _ in samples)
    assert samples[("fastapi_exporter_wire_excluded_total",
                    frozenset({"service": SERVICE}.items()))] >= 2
    for (name, labels), value in samples.items():
        if name in ("fastapi_exporter_wire_unparsable_streams_total",
                    "fastapi_exporter_wire_kernel_drops_total",
                    "fastapi_exporter_wire_connections_untracked_total"):
            assert value == 0, (name, labels)
        if name == "fastapi_exporter_wire_resyncs_total" and dict(labels)["reason"] != \
                "mid_stream":
            assert value == 0, (name, labels)


def test_without_cap_net_raw_the_error_says_so_and_the_exporter_runs():
    if os.geteuid() != 0:
        pytest.skip("needs root to start the daemon as another user (setpriv)")
    # Everything the unprivileged user needs, in a directory it can read.
    directory = tempfile.mkdtemp(prefix="wire-nocap-")
    try:
        os.chmod(directory, 0o755)
        binary = os.path.join(directory, "fastapi-exporter")
        shutil.copy(BIN, binary)
        os.chmod(binary, 0o755)
        config = os.path.join(directory, "config.yaml")
        with open(config, "w") as f:
            f.write(f"""
services:
  - name: {SERVICE}
    wire:
      ports: [{free_port()}]
""")
        os.chmod(config, 0o644)
        port = free_port()
        log_path = os.path.join(directory, "exporter.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "--inh-caps=-all", binary, f"--config.file={config}",
                 f"--web.listen-address=127.0.0.1:{port}"],
                stdout=log, stderr=subprocess.STDOUT)
            try:
                def served():
                    assert process.poll() is None, open(log_path).read()
                    try:
                        return http_get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                    except OSError:
                        return None
                status, _, body = wait_until(served, timeout=20, what="/metrics")
                assert status == 200
                samples = parse_samples(body.decode())
                assert samples[("fastapi_exporter_wire_capture_up",
                                frozenset({"service": SERVICE}.items()))] == 0
                assert ("fastapi_exporter_build_info" in {name for name, _ in samples}) or \
                    any(name.startswith("process_") or name.startswith("fastapi_exporter_")
                        for name, _ in samples)
            finally:
                process.terminate()
                process.wait(timeout=10)
        text = open(log_path).read()
        assert "needs CAP_NET_RAW" in text, text
        assert f"service {SERVICE}: wire:" in text, text
        assert process.returncode == 0, text
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def security_lines(root):
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}",
                          "--no-pager", "fastapi-exporter.service"],
                         capture_output=True, text=True).stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines()
            if line[:1] in ("✓", "✗")}


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_the_capture_drop_in_adds_cap_net_raw_and_af_packet_and_nothing_else(tmp_path):
    units = tmp_path / "etc" / "systemd" / "system"
    (units / "fastapi-exporter.service.d").mkdir(parents=True)
    shutil.copy(os.path.join(SOURCE_DIR, "systemd", "fastapi-exporter.service"), units)
    without = security_lines(tmp_path)
    shutil.copy(os.path.join(SOURCE_DIR, "systemd", "wire-capture.conf"),
                units / "fastapi-exporter.service.d")
    with_drop_in = security_lines(tmp_path)
    assert without and without.keys() == with_drop_in.keys()
    changed = {key for key in without if without[key] != with_drop_in[key]}
    assert changed == {"CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
                       "RestrictAddressFamilies=~AF_PACKET"}
    assert all(with_drop_in[key] == "✗" for key in changed)


def test_wire_families_are_named_well_and_counters_start_at_zero(tmp_path):
    import re
    from test_metric_names import families_of, samples_of, values
    config = f"""
services:
  - name: {SERVICE}
    wire:
      ports: [{free_port()}]
"""
    with Exporter(tmp_path, config) as exporter:
        text = exporter.scrape_text()
    names = set()
    for path in ("wire_collector.cpp",):
        source = open(os.path.join(SOURCE_DIR, "collectors", "wire", path)).read()
        names |= set(re.findall(r'"(fastapi_exporter_wire_[a-z_]+)"', source))
    assert names and names <= families_of(text), sorted(names - families_of(text))
    first = samples_of(text)
    service = {"service": SERVICE}
    assert sorted(l["reason"] for l, v in values(first, "fastapi_exporter_wire_resyncs_total")
                  if v == 0) == sorted(["mid_stream", "gap", "unparsable", "snap_length",
                                        "request_timeout"])
    assert sorted(l["reason"] for l, v in values(
        first, "fastapi_exporter_wire_requests_unanswered_total") if v == 0) == sorted(
        ["closed", "desync", "timeout", "idle"])
    assert sorted(l["direction"] for l, v in values(
        first, "fastapi_exporter_wire_unparsable_streams_total") if v == 0) == [
        "request", "response"]
    for name in ("fastapi_exporter_wire_requests_total", "fastapi_exporter_wire_kernel_drops_total",
                 "fastapi_exporter_wire_connections_untracked_total"):
        assert values(first, name) == [(service, 0)], name
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
