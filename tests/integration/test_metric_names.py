"""Issue #16: every metric family the exporter can serve, brought out at once and checked by
`promtool check metrics`; counters whose label values are known in advance are there at 0
from the first scrape, so that rate() and increase() see their first increment."""

import json
import pathlib
import re
import subprocess

from exporter import SOURCE, Exporter, wait_until

# Every kind and reason the daemon knows in advance (the enums of procfs, request.cpp and
# openapi_routes.cpp), written out so that a renamed or dropped one shows here.
READ_ERROR_KINDS = {"pidfile", "cgroup", "stat", "status", "io", "fd", "limits"}
PARSE_ERROR_REASONS = {"invalid_json", "missing_field", "invalid_status", "invalid_request_line",
                       "no_match", "invalid_envelope", "invalid_path", "line_too_long",
                       "not_access_line", "binary_message"}
ROUTES_REFRESH_REASONS = {"fetch", "http_status", "too_large", "invalid_json", "invalid_openapi",
                          "too_many_paths"}
PER_SOURCE_COUNTERS = ["fastapi_exporter_log_lines_total", "fastapi_exporter_log_requests_total",
                       "fastapi_exporter_log_excluded_total",
                       "fastapi_exporter_log_read_bytes_total",
                       "fastapi_exporter_log_rotations_total",
                       "fastapi_exporter_log_truncations_total",
                       "fastapi_exporter_log_open_errors_total",
                       "fastapi_exporter_log_invalid_durations_total",
                       "fastapi_exporter_log_files_abandoned_total"]


def source_metric_names():
    """Every metric name the C++ sources spell out, and the two request families (whose names
    are built from metric_prefix)."""
    names = {"fastapi_requests_total", "fastapi_request_duration_seconds"}
    for path in [*pathlib.Path(SOURCE, "collectors").rglob("*.cpp"),
                 *pathlib.Path(SOURCE, "daemon").glob("*.cpp")]:
        names |= set(re.findall(r'"((?:fastapi_exporter|process)_[a-z_]+)"', path.read_text()))
    # The wire source's families need a service with `wire:`, whose requests then are not
    # read from this test's log: test_wire.py brings them out and checks them the same way.
    return {name for name in names if not name.startswith("fastapi_exporter_wire_")}


def samples_of(text):
    """[(name, {labels}, value)] of the text exposition, names as written (with _total)."""
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert match, line
        labels = dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        out.append((match.group(1), labels, float(match.group(3))))
    return out


def values(text_samples, name, service="api"):
    """Samples of one service (and those without a service label)."""
    return [(labels, value) for n, labels, value in text_samples
            if n == name and labels.get("service", service) == service]


def families_of(text):
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def test_every_family_is_named_well_and_counters_start_at_zero(tmp_path):
    openapi = tmp_path / "openapi.json"
    openapi.write_text(json.dumps({"openapi": "3.0.2", "info": {"title": "t", "version": "1"},
                                   "paths": {"/api/users/{user_id}": {"get": {}}}}))
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    config = f"""
positions_file: {tmp_path}/positions.yaml
services:
  - name: api
    process:
      pid: self
    access_logs:
      - path: {log}
        start_at: beginning
    routes_from:
      openapi_file: {openapi}
    exclude_paths: [/health]
    max_paths: 1
  - name: journal
    access_logs:
      - journal: {{unit: api.service, path: {tmp_path}/no-journal-yet}}
"""
    with Exporter(tmp_path, config) as exporter:
        first = samples_of(exporter.scrape_text())
        service, source = {"service": "api"}, {"service": "api", "source": str(log)}

        # Present at 0 before anything happened, with every label value known in advance.
        assert values(first, "fastapi_exporter_read_errors_total") == [
            (dict(service, kind=kind), 0) for kind in sorted(READ_ERROR_KINDS)]
        parse_errors = values(first, "fastapi_exporter_log_parse_errors_total")
        assert sorted(labels["reason"] for labels, _ in parse_errors) == sorted(
            PARSE_ERROR_REASONS)
        assert all(value == 0 and labels == dict(source, reason=labels["reason"])
                   for labels, value in parse_errors)
        refresh_errors = values(first, "fastapi_exporter_routes_refresh_errors_total")
        assert sorted(labels["reason"] for labels, _ in refresh_errors) == sorted(
            ROUTES_REFRESH_REASONS)
        assert all(value == 0 for _, value in refresh_errors)
        for name in PER_SOURCE_COUNTERS:
            assert values(first, name) == [(source, 0)], name
        assert values(first, "fastapi_exporter_paths_overflow_total") == [(service, 0)]
        assert values(first, "fastapi_exporter_log_positions_save_errors_total") == [({}, 0)]
        journal = {"service": "journal", "source": "journal:_SYSTEMD_UNIT=api.service "
                   f"{tmp_path}/no-journal-yet"}
        for name in ["fastapi_exporter_log_journal_lag_seconds",
                     "fastapi_exporter_log_journal_cursor_lost_total"]:
            assert values(first, name, "journal") == [(journal, 0)], name

        # Requests, an excluded path, a path over max_paths (which counts paths not from the
        # OpenAPI document) with a duration that is none, and a line of JSON cut short.
        lines = [
            {"endpoint": "/api/users/1", "method": "GET", "status_code": 200, "duration_ms": 12},
            {"endpoint": "/api/users/2", "method": "GET", "status_code": 500, "duration_ms": 30},
            {"endpoint": "/health", "method": "GET", "status_code": 200, "duration_ms": 1},
            {"endpoint": "/other", "method": "GET", "status_code": 200, "duration_ms": 3},
            {"endpoint": "/else", "method": "GET", "status_code": 200, "duration_ms": -5},
        ]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        data += b'{"endpoint": "/cut short\n'
        with open(log, "ab") as f:
            f.write(data)
        wait_until(lambda: exporter.value("fastapi_exporter_log_lines_total", **source) == 6,
                   what="the lines read")
        text = exporter.scrape_text()

    after = samples_of(text)
    assert values(after, "fastapi_exporter_log_requests_total") == [(source, 4)]
    assert values(after, "fastapi_exporter_log_read_bytes_total") == [(source, len(data))]
    assert values(after, "fastapi_exporter_log_excluded_total") == [(source, 1)]
    assert values(after, "fastapi_exporter_log_invalid_durations_total") == [(source, 1)]
    assert values(after, "fastapi_exporter_paths_overflow_total") == [(service, 1)]
    assert (dict(source, reason="invalid_json"), 1) in values(
        after, "fastapi_exporter_log_parse_errors_total")
    assert sorted(labels["path"] for labels, _ in values(after, "fastapi_requests_total")) == [
        "/api/users/{user_id}", "/api/users/{user_id}", "/other", "__other__"]

    # Every family the sources name is in this one exposition, and nothing else.
    missing = source_metric_names() - families_of(text)
    assert not missing, f"families this test's config does not bring out: {sorted(missing)}"
    assert families_of(text) == source_metric_names()

    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
