"""Route templates from the service itself (issue #14): the real example app under uvicorn
with two workers, no `routes:` configured, and the exporter reading its /openapi.json."""

import os
import subprocess
import uuid

from exporter import (BIN, EXAMPLE_APP, PYTHON, Exporter, free_port, http_get, kill_tree,
                      parse_samples, wait_serving, wait_until)

ROUTES_TOOL = os.path.join(os.path.dirname(EXAMPLE_APP), "..", "tools", "fastapi-exporter-routes")

# The example app with one more route: the service's route table changing between two runs.
APP_V2 = """
import sys
sys.path.insert(0, {app_dir!r})
import app as example
inner = example.app.app if hasattr(example.app, "app") else example.app

@inner.get("/api/v2/reports/{{report_id}}")
async def report(report_id: int):
    return {{"report": report_id}}

app = example.app
"""


def start_app(tmp_path, port, access_log, module="app"):
    env = dict(os.environ, ACCESS_LOG=str(access_log))
    app_dir = EXAMPLE_APP
    if module == "app_v2":
        app_dir = str(tmp_path)
        (tmp_path / "app_v2.py").write_text(APP_V2.format(app_dir=EXAMPLE_APP))
    process = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", f"{module}:app", "--app-dir", app_dir, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_serving(f"http://127.0.0.1:{port}")
    return process


def get(port, path, method="GET"):
    return http_get(f"http://127.0.0.1:{port}{path}", method=method)[0]


def series(exporter):
    return {(dict(l)["method"], dict(l)["path"], dict(l)["status_code"]): v
            for (name, l), v in exporter.scrape().items() if name == "fastapi_requests_total"}


def test_every_series_is_labelled_with_fastapis_template(tmp_path):
    port = free_port()
    access_log = tmp_path / "access.log"
    app = start_app(tmp_path, port, access_log)
    config = f"""
positions_file: {tmp_path}/positions.yaml
services:
  - name: api
    access_logs:
      - {{path: '{access_log}', format: json, start_at: beginning}}
    routes_from:
      openapi_url: http://127.0.0.1:{port}/openapi.json
      refresh: 1s
    exclude_paths: [/health]
"""
    try:
        with Exporter(tmp_path, config) as exporter:
            wait_until(lambda: exporter.value("fastapi_exporter_routes_discovered",
                                              service="api") == 10, what="routes discovered")
            session = uuid.uuid4()
            traffic = [("GET", "/api/users/5", 200)] * 3 + [
                ("GET", "/api/users/99999", 404), ("GET", "/api/users/abc", 422),
                ("POST", "/api/items", 201), ("GET", "/api/items/3/reviews/good", 200),
                ("GET", "/api/orders/12", 200), ("GET", "/api/orders/13", 200),
                ("GET", "/api/orders/12/lines/3", 200), ("GET", f"/api/sessions/{session}", 200),
                ("GET", "/api/sessions/not-a-uuid", 422), ("GET", "/api/error", 500),
                ("GET", "/admin/stats", 200)]
            for method, path, status in traffic:
                assert get(port, path, method) == status, path
            expected = {
                ("GET", "/api/users/{user_id}", "200"): 3,
                ("GET", "/api/users/{user_id}", "404"): 1,
                ("GET", "/api/users/{user_id}", "422"): 1,
                ("POST", "/api/items", "201"): 1,
                ("GET", "/api/items/{item_id}/reviews/{review_id}", "200"): 1,
                ("GET", "/api/orders/{order_id}", "200"): 2,
                ("GET", "/api/orders/{order_id}/lines/{line_no}", "200"): 1,
                ("GET", "/api/sessions/{session_id}", "200"): 1,
                ("GET", "/api/sessions/{session_id}", "422"): 1,
                ("GET", "/api/error", "500"): 1,
                ("GET", "/admin/stats", "200"): 1,  # mounted: not in OpenAPI, same words
            }
            # The exporter's own /openapi.json fetches are not the service's traffic.
            wait_until(lambda: series(exporter) == expected, timeout=15, what="exact series")

            # The app stops: the last good table stays, and the failures are counted.
            kill_tree(app)
            wait_until(lambda: exporter.value("fastapi_exporter_routes_refresh_errors_total",
                                              service="api", reason="fetch") >= 1,
                       what="a failed refresh counted")
            assert exporter.value("fastapi_exporter_routes_discovered", service="api") == 10
            # Back on the same port with a new route: the new table is applied, counts go on.
            app = start_app(tmp_path, port, access_log, module="app_v2")
            wait_until(lambda: exporter.value("fastapi_exporter_routes_discovered",
                                              service="api") == 11, what="new table")
            for path in ("/api/users/5", "/api/v2/reports/77", "/api/v2/reports/78"):
                assert get(port, path) == 200
            expected[("GET", "/api/users/{user_id}", "200")] = 4
            expected[("GET", "/api/v2/reports/{report_id}", "200")] = 2
            wait_until(lambda: series(exporter) == expected, timeout=15,
                       what="counts after the restart")
    finally:
        kill_tree(app)


def test_route_dump_fed_back_as_routes_gives_the_same_labels(tmp_path):
    dump = subprocess.run([PYTHON, ROUTES_TOOL, "--app-dir", EXAMPLE_APP, "app:app"],
                          capture_output=True, text=True, check=True).stdout
    assert "      - '/files/{file_path:path}'\n" in dump
    assert "      - '/admin/stats'\n" in dump
    log = tmp_path / "access.log"
    lines = []
    for path, status in [("/api/users/7", 200), ("/api/users/abc", 422), ("/files/a/b/c.txt", 200),
                         ("/files/x", 200), ("/admin/stats", 200),
                         ("/api/orders/4/lines/9", 200), ("/api/items", 201)]:
        lines.append(f'{{"method":"GET","endpoint":"{path}","status_code":{status},'
                     f'"duration_ms":1}}\n')
    log.write_text("".join(lines))
    (tmp_path / "config.yaml").write_text(f"""
positions_file: {tmp_path}/positions.yaml
services:
  - name: api
    access_logs: [{{path: '{log}', format: json}}]
{dump}""")
    result = subprocess.run([BIN, f"--config.file={tmp_path}/config.yaml", "--oneshot"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    paths = {}
    for (name, labels), value in parse_samples(result.stdout).items():
        if name == "fastapi_requests_total":
            path = dict(labels)["path"]
            paths[path] = paths.get(path, 0) + value
    assert paths == {"/api/users/{user_id}": 2, "/files/{file_path:path}": 2,
                     "/admin/stats": 1, "/api/orders/{order_id}/lines/{line_no}": 1,
                     "/api/items": 1}
