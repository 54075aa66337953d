"""A real FastAPI app under real uvicorn with two workers, its JSON access log tailed by the
real daemon: exact request counts per (method, route, status), and histogram sums equal to
what the log itself says."""

import collections
import json
import re
import urllib.request

import pytest

from exporter import (Exporter, example_app_config, kill_tree, start_example_app,
                      wait_until)

# (method, url, expected status, times); the route templates the exporter must report.
TRAFFIC = [
    ("GET", "/api/users/{}", 200, 30, "/api/users/{user_id}"),
    ("GET", "/api/users/{}", 404, 5, "/api/users/{user_id}"),
    ("GET", "/api/users/abc{}", 422, 2, "/api/users/{user_id}"),
    ("POST", "/api/items", 201, 10, "/api/items"),
    ("GET", "/api/items/{}/reviews/r-{}", 200, 3, "/api/items/{item_id}/reviews/{review_id}"),
    ("GET", "/api/slow?ms=100", 200, 4, "/api/slow"),
    ("GET", "/api/error", 500, 6, "/api/error"),
    ("GET", "/health", 200, 5, None),  # excluded
]


@pytest.fixture
def uvicorn_app(tmp_path):
    log = tmp_path / "access.log"
    app, url = start_example_app(log)
    try:
        yield app, url, log
    finally:
        kill_tree(app)


def send(url, method, path):
    request = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_request_metrics_match_the_traffic_sent(tmp_path, uvicorn_app):
    app, url, log = uvicorn_app
    config = example_app_config(
        tmp_path, app, log,
        routes=("/api/users/{user_id}", "/api/items", "/api/items/{item_id}/reviews/{review_id}"))
    with Exporter(tmp_path, config) as exporter:
        expected = collections.Counter()
        for method, path, status, times, route in TRAFFIC:
            for i in range(times):
                user = 2000 + i if status == 404 else i + 1
                got = send(url, method, path.format(user, i))
                assert got == status, (method, path, got)
            if route:
                expected[(method, route, str(status))] += times
        counted = sum(expected.values())

        source = frozenset({("service", "fastapi-backend"), ("source", str(log))})

        def all_lines_handled():
            samples = exporter.scrape()
            health_lines = log.read_text().count('"endpoint":"/health"')
            counted_now = samples.get(("fastapi_exporter_log_requests_total", source), 0)
            excluded_now = samples.get(("fastapi_exporter_log_excluded_total", source), 0)
            return counted_now == counted and excluded_now == health_lines and samples
        samples = wait_until(all_lines_handled, timeout=20, what="every log line handled")

    def series(name, method, route, status):
        return samples.get((name, frozenset({("service", "fastapi-backend"), ("method", method),
                                             ("path", route), ("status_code", status)})))

    # The app's own log is the independent record of each request's duration; its raw paths
    # are mapped to routes here with regexes of the test's own.
    routes = [(re.compile(r"^/api/users/[^/]+$"), "/api/users/{user_id}"),
              (re.compile(r"^/api/items/[^/]+/reviews/[^/]+$"),
               "/api/items/{item_id}/reviews/{review_id}")]

    def route_of(endpoint):
        return next((route for regex, route in routes if regex.match(endpoint)), endpoint)
    durations = collections.defaultdict(float)
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        key = (entry["method"], route_of(entry["endpoint"]), str(entry["status_code"]))
        durations[key] += entry["duration_ms"] / 1000.0

    total_series = {labels for (name, labels) in samples if name == "fastapi_requests_total"}
    assert len(total_series) == len(expected)
    for (method, route, status), count in expected.items():
        assert series("fastapi_requests_total", method, route, status) == count
        assert series("fastapi_request_duration_seconds_count", method, route, status) == count
        assert series("fastapi_request_duration_seconds_sum", method, route, status) == \
            pytest.approx(durations[(method, route, status)], abs=1e-6)
    assert series("fastapi_request_duration_seconds_sum", "GET", "/api/slow", "200") >= 0.4
    # Every raw id was folded into its route: no numeric path label at all.
    assert not any(any(ch.isdigit() for ch in dict(labels)["path"]) for labels in total_series)
    # Readiness probes and the five /health requests: excluded, not counted.
    assert samples[("fastapi_exporter_log_excluded_total", source)] >= 5
    # The uvicorn master and its two workers (and multiprocessing's helper) are one group.
    assert samples[("process_processes", frozenset({("service", "fastapi-backend")}))] >= 3
