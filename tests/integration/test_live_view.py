"""The live view (the page at / and /api/v1/*): its numbers against a real Prometheus scraping
the same exporter, its security (escaping, basic auth, CSP), and the page itself in headless
Chromium against the example FastAPI app under known traffic."""

import base64
import html.parser
import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse

import pytest

from exporter import (BIN, Exporter, Prometheus, descendants, example_app_config, http_get,
                      kill_tree, read_proc_rss, start_example_app, wait_until)
from test_web_security import PASSWORD, bcrypt

SERVICE = "fastapi-backend"
BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]  # the default ones


def app_config(tmp_path, log, app, extra=""):
    return example_app_config(tmp_path, app, log, service=SERVICE, extra=extra)


def api(exporter, path, **params):
    status, headers, body = http_get(exporter.url + path + "?" + urllib.parse.urlencode(params))
    assert status == 200, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def send(url, method, path, times):
    for _ in range(times):
        status, _, _ = http_get(url + path, method=method)
        assert status in (200, 201, 404, 500), (path, status)


def metrics_total(exporter):
    samples = exporter.scrape()
    return sum(v for (name, labels), v in samples.items()
               if name == "fastapi_requests_total" and ("service", SERVICE) in labels)


def sampled_after(exporter, moment):
    """Whether the live view took a sample after `moment` (Unix seconds)."""
    services = api(exporter, "/api/v1/services")["services"]
    return services and services[0]["newest"] is not None and services[0]["newest"] > moment


@pytest.fixture
def app(tmp_path):
    log = tmp_path / "access.log"
    process, url = start_example_app(log, service=SERVICE)
    yield process, url, log
    kill_tree(process)


# ---------------------------------------------------------------------------------------------
# Agreement with a real Prometheus

def test_api_values_equal_prometheus(tmp_path, app):
    process, url, log = app
    exporter = Exporter(tmp_path, app_config(tmp_path, log, process),
                        ["--web.live-interval=1"]).start()
    prometheus = None
    try:
        prometheus = Prometheus(tmp_path, exporter.port)
        # Warm-up: every series exists, each with at least as many requests as the burst
        # adds to it, so that no series' rate() stops extrapolating where it would reach zero
        # (Prometheus extrapolates each series apart, the history their sum).
        send(url, "GET", "/api/users/1", 150)
        send(url, "GET", "/api/users/5000", 10)
        send(url, "GET", "/api/error", 20)
        send(url, "GET", "/api/slow?ms=100", 20)
        warm = 200

        def prometheus_total():
            result = prometheus.query(f'sum(fastapi_requests_total{{service="{SERVICE}"}})')
            return result and result[0][1]

        wait_until(lambda: prometheus_total() == warm, timeout=30, what="warm-up scraped")
        time.sleep(3)  # quiet before the burst: both windows start on flat counters
        burst_start = time.time()
        send(url, "GET", "/api/users/3", 150)
        send(url, "GET", "/api/users/9999", 10)
        send(url, "GET", "/api/error", 20)
        send(url, "GET", "/api/slow?ms=100", 20)
        total = warm + 200
        wait_until(lambda: metrics_total(exporter) == total, timeout=30, what="burst counted")
        counted = time.time()
        wait_until(lambda: prometheus_total() == total, timeout=30, what="burst scraped")
        wait_until(lambda: sampled_after(exporter, counted), timeout=30, what="burst sampled")
        # Quiet after it, for a window of 20 s that starts 2 s before the burst: each side
        # samples every second on its own phase, and rate() extrapolates each to the window's
        # edges from samples spanning between 19 and 20 s (below).
        time.sleep(max(0.0, burst_start + 18.5 - time.time()))
        at = api(exporter, "/api/v1/services")["services"][0]["newest"]
        window = math.ceil(at - burst_start + 2)

        ours = api(exporter, "/api/v1/series", service=SERVICE, range=300, window=window,
                   at=at)["current"]
        assert ours["t"] == pytest.approx(at)

        def promql(expr):
            (_, value), = prometheus.query(expr.replace("W", f"{window}s"), at)
            return value

        selector = f'service="{SERVICE}"'
        theirs = {
            "requests_per_second": promql(f"sum(rate(fastapi_requests_total{{{selector}}}[W]))"),
            "errors_4xx_per_second": promql(
                f'sum(rate(fastapi_requests_total{{{selector},status_code=~"4.."}}[W]))'),
            "errors_5xx_per_second": promql(
                f'sum(rate(fastapi_requests_total{{{selector},status_code=~"5.."}}[W]))'),
            "average_duration_seconds": promql(
                f"sum(rate(fastapi_request_duration_seconds_sum{{{selector}}}[W])) / "
                f"sum(rate(fastapi_request_duration_seconds_count{{{selector}}}[W]))"),
            "p60_seconds": promql(
                "histogram_quantile(0.60, sum by (le) (rate("
                f"fastapi_request_duration_seconds_bucket{{{selector}}}[W])))"),
            "p95_seconds": promql(
                "histogram_quantile(0.95, sum by (le) (rate("
                f"fastapi_request_duration_seconds_bucket{{{selector}}}[W])))"),
            "cpu_percent": promql(f"sum(rate(process_cpu_seconds_total{{{selector}}}[W])) * 100"),
            "resident_bytes": promql(f"sum(process_resident_memory_bytes{{{selector}}})"),
        }
        # The burst lies inside both windows, with flat counters at both edges, and each side's
        # first and last samples are less than 1.1 intervals from the edges: rate() extends
        # the increase from the span of its samples (between W - 1 and W seconds) to W, so
        # both equal increase / span, between increase / W and increase / (W - 1).
        sent = {"requests_per_second": 200, "errors_4xx_per_second": 10,
                "errors_5xx_per_second": 20}
        for key, increase in sent.items():
            for side in (ours, theirs):
                assert increase / window * 0.999 <= side[key] <= increase / (window - 1) * 1.001
            assert ours[key] == pytest.approx(theirs[key], rel=1 / (window - 1)), key
        # Ratios of rates of one sample set do not depend on the extrapolation: they agree to
        # float precision (the history keeps increases as floats: 7 digits).
        for key in ("average_duration_seconds", "p60_seconds", "p95_seconds"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-4), key
        # CPU and memory are read from /proc at moments up to a second apart (the sampler's
        # and the scrape's): the app's CPU time moves while it serves, its memory barely.
        assert ours["cpu_percent"] == pytest.approx(theirs["cpu_percent"], rel=0.15, abs=1.0)
        assert ours["resident_bytes"] == pytest.approx(theirs["resident_bytes"], rel=0.02)
        # The status breakdown, class by class, as sum(rate(...{status_code=~"2.."})).
        for name in ("2xx", "4xx", "5xx"):
            theirs_class = promql(f'sum(rate(fastapi_requests_total{{{selector},'
                                  f'status_code=~"{name[0]}.."}}[W]))')
            assert ours["status_classes_per_second"][name] == pytest.approx(
                theirs_class, rel=1 / (window - 1)), name
        assert ours["status_classes_per_second"]["2xx"] >= 170 / window * 0.999
        # All services together (here the one there is): the same sums.
        together = api(exporter, "/api/v1/series", range=300, window=window, at=at)["current"]
        for key in ("requests_per_second", "average_duration_seconds", "p60_seconds"):
            assert together[key] == pytest.approx(ours[key], rel=1e-6), key
    finally:
        if prometheus:
            prometheus.stop()
        exporter.stop()


# ---------------------------------------------------------------------------------------------
# Security

XSS = "/<script>alert(1)</script>"
XSS_QUOTED = "/%3Cscript%3Ealert(1)%3C/script%3E"


def test_page_and_api_need_the_password_and_send_a_csp(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  viewer: '{bcrypt(PASSWORD)}'\n")
    config = f"positions_file: {tmp_path}/positions.yaml\nservices: []\n"
    with Exporter(tmp_path, config, [f"--web.config.file={web}"]) as exporter:
        def get(path, password):
            token = base64.b64encode(f"viewer:{password}".encode()).decode()
            return http_get(exporter.url + path, {"Authorization": f"Basic {token}"})

        for path in ("/", "/api/v1/services", "/api/v1/series?range=300", "/api/v1/logs",
                     "/static/app.js", "/metrics"):
            status, headers, _ = get(path, "wrong")
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Basic")
            assert http_get(exporter.url + path)[0] == 401, path
            status, headers, _ = get(path, PASSWORD)
            assert status == 200, path
            if path != "/metrics":
                csp = headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "default-src 'none'" in csp, path
                assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
                assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, body = get("/", PASSWORD)
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        # No inline script: every <script> element has a src from here.
        scripts = ScriptFinder.scripts(body.decode())
        assert scripts == ["/static/dygraph.min.js", "/static/app.js"]
        assert get("/api/v1/nothing", PASSWORD)[0] == 404
        assert get("/static/../etc/passwd", PASSWORD)[0] == 404
        assert http_get(exporter.url + "/healthz")[0] == 200  # probes need no password


class ScriptFinder(html.parser.HTMLParser):
    """The src of every <script> element (None for inline ones) and other element names."""

    def __init__(self):
        super().__init__()
        self.found = []
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append(tag)
        if tag == "script":
            self.found.append(dict(attrs).get("src"))

    @classmethod
    def scripts(cls, text):
        finder = cls()
        finder.feed(text)
        return finder.found


def test_logs_api_escapes_paths_and_drops_queries_and_can_be_off(tmp_path, app):
    process, url, log = app
    second_log = tmp_path / "secret.log"
    second_log.write_text("")
    extra = f"""  - name: secrets
    access_logs:
      - path: {second_log}
        format: json
        start_at: beginning
    recent_lines: false
"""
    with Exporter(tmp_path, app_config(tmp_path, log, process, extra)) as exporter:
        send(url, "GET", XSS_QUOTED, 1)
        send(url, "GET", "/api/users/4?token=hunter2", 1)
        with open(second_log, "a") as f:
            f.write(json.dumps({"endpoint": "/reset/s3cr3t-token", "method": "GET",
                                "status_code": 200, "duration_ms": 1}) + "\n")
        wait_until(lambda: metrics_total(exporter) == 2, timeout=15, what="requests counted")
        wait_until(lambda: 'service="secrets"' in exporter.scrape_text(), timeout=15,
                   what="the second service's line counted")
        status, _, raw = http_get(exporter.url + "/api/v1/logs?limit=10")
        assert status == 200
        # The JSON carries no markup: < and > are \u003c and \u003e.
        assert b"<" not in raw and b">" not in raw and b"\\u003cscript\\u003e" in raw
        lines = json.loads(raw)["lines"]
        # Two uvicorn workers each write their line after answering: the file's order, and so
        # the order read, is not always the order sent.
        assert sorted(line["path"] for line in lines) == sorted(["/api/users/4", XSS])
        by_path = {line["path"]: line for line in lines}
        assert by_path[XSS]["status"] == 404 and by_path[XSS]["level"] == "WARNING"
        assert by_path["/api/users/4"]["method"] == "GET"
        assert by_path["/api/users/4"]["duration_seconds"] > 0
        assert b"hunter2" not in raw and b"s3cr3t" not in raw
        services = {s["name"]: s for s in api(exporter, "/api/v1/services")["services"]}
        assert services[SERVICE]["recent_lines"] is True
        assert services["secrets"]["recent_lines"] is False
        assert api(exporter, "/api/v1/logs", service="secrets")["lines"] == []
        filtered = api(exporter, "/api/v1/logs", filter="SCRIPT")["lines"]
        assert [line["path"] for line in filtered] == [XSS]


# ---------------------------------------------------------------------------------------------
# The page in a browser

CHROMIUM = shutil.which("chromium")


def chromium(*args):
    assert CHROMIUM, "chromium is missing: packaging/install-deps.sh --with-tests installs it"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", "--window-size=1400,1800",
                           "--virtual-time-budget=8000", *args],
                          capture_output=True, timeout=120)


class PageReader(html.parser.HTMLParser):
    """From a dumped DOM: each panel's value element (data-value and text), each panel's
    table rows (the Logger Stream's are `rows`), each chart's point count and whether
    dygraphs drew a canvas in it, and every element name."""

    def __init__(self):
        super().__init__()
        self.panel = None
        self.values = {}
        self.texts = {}
        self.tables = {}
        self.graphs = {}  # panel: [points, canvases]
        self.elements = []
        self.in_value = None
        self.in_table = None
        self.in_graph = None
        self.cell = None

    @property
    def rows(self):
        return self.tables.get("panel-logs", [])

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append(tag)
        classes = (attrs.get("class") or "").split()
        if tag == "section":
            self.panel = attrs.get("id")
        if "value" in classes and self.panel:
            self.values[self.panel] = attrs.get("data-value")
            self.in_value = self.panel
            self.texts[self.panel] = ""
        if "graph" in classes and self.panel:
            self.in_graph = self.panel
            self.graphs[self.panel] = [int(attrs.get("data-points") or 0), 0]
        if tag == "canvas" and self.in_graph:
            self.graphs[self.in_graph][1] += 1
        if tag == "tbody" and self.panel:
            self.in_table = self.panel
            self.tables[self.panel] = []
        if self.in_table and tag == "tr":
            self.tables[self.in_table].append([])
        if self.in_table and tag == "td":
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "div":
            self.in_value = None
        if tag == "section":
            self.in_graph = None
        if tag == "tbody":
            self.in_table = None
        if tag == "td" and self.cell is not None:
            self.tables[self.panel][-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.in_value:
            self.texts[self.in_value] += data
        if self.cell is not None:
            self.cell += data


def read_page(url, out_dir, name, screenshot=False):
    result = chromium("--dump-dom", url)
    dom = result.stdout.decode()
    (out_dir / f"{name}.html").write_text(dom)
    assert "<main>" in dom, result.stderr.decode()[-2000:]
    if screenshot:
        shot = out_dir / f"{name}.png"
        chromium(f"--screenshot={shot}", url)
        assert shot.stat().st_size > 10000
        print(f"screenshot of the page: {shot}")  # shown with -s, and beside a failure
    page = PageReader()
    page.feed(dom)
    return page


def prometheus_quantile(q, durations, bounds):
    """histogram_quantile of `durations` put in buckets of `bounds`, written out apart from
    the exporter's (collectors/history/prom_math.cpp)."""
    cumulative = [sum(1 for d in durations if d <= b) for b in bounds] + [len(durations)]
    rank = q * len(durations)
    for i, count in enumerate(cumulative):
        if count >= rank:
            if i == len(bounds):
                return bounds[-1]
            start = bounds[i - 1] if i else 0.0
            below = cumulative[i - 1] if i else 0
            return start + (bounds[i] - start) * (rank - below) / (count - below)
    raise AssertionError("unreachable")


def test_page_shows_the_eight_panels_of_known_traffic(tmp_path, app):
    process, url, log = app
    out = tmp_path / "browser"
    out.mkdir()
    with Exporter(tmp_path, app_config(tmp_path, log, process),
                  ["--web.live-interval=1"]) as exporter:
        # Known traffic: 80 successes, 10 404s, 5 500s, 5 slow ones, then a marked path.
        sent = ([("GET", "/api/users/3")] * 80 + [("GET", "/api/users/9999")] * 10
                + [("GET", "/api/error")] * 5 + [("GET", "/api/slow?ms=200")] * 5)
        for method, path in sent:
            send(url, method, path, 1)
        # Each of the two workers logs after answering: the marked request is sent once the
        # others are counted, so that it is the newest line whichever worker answers it.
        wait_until(lambda: metrics_total(exporter) == len(sent), timeout=30,
                   what="traffic counted")
        send(url, "GET", XSS_QUOTED, 1)
        total = len(sent) + 1
        wait_until(lambda: metrics_total(exporter) == total, timeout=30, what="traffic counted")
        counted = time.time()
        wait_until(lambda: sampled_after(exporter, counted), timeout=30, what="traffic sampled")
        time.sleep(1)
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        durations = [e["duration_ms"] / 1000 for e in entries if e["endpoint"] != "/health"]
        assert len(durations) == total
        app_rss = sum(read_proc_rss(pid) for pid in descendants(process.pid))

        page = read_page(exporter.url + "/#range=300", out, "live-view", screenshot=True)
        values = {panel: float(v) if v else None for panel, v in page.values.items()}
        for panel in ("panel-total-requests", "panel-rpm", "panel-errors", "panel-average",
                      "panel-p60", "panel-cpu", "panel-memory", "panel-logs"):
            assert values.get(panel) is not None, f"{panel} is empty: {page.texts.get(panel)}"
            assert page.texts[panel].strip() not in ("", "–"), panel
        # The stat panels show the last minute. The history is younger than that, and began
        # before the first request with the counter at zero: rate() extrapolates no further
        # than zero at the start and to the minute's end, i.e. 101 requests over 60 s (within
        # the second between the last sample and the end of the window: 2%).
        assert values["panel-total-requests"] == pytest.approx(total / 60, rel=0.02)
        assert values["panel-rpm"] == pytest.approx(total, rel=0.02)
        assert values["panel-errors"] == pytest.approx((10 + 1 + 5) / 60, rel=0.02)
        # Averages and quantiles do not depend on the window: the mean and the interpolated
        # 60th percentile of the durations logged.
        assert values["panel-average"] == pytest.approx(sum(durations) / total, rel=1e-4)
        assert values["panel-p60"] == pytest.approx(
            prometheus_quantile(0.6, durations, BUCKETS), rel=1e-4)
        cores = os.cpu_count()
        assert 0 < values["panel-cpu"] <= 100 * cores
        assert values["panel-memory"] == pytest.approx(app_rss, rel=0.1)
        # Each chart was drawn by dygraphs (its canvases) from points of the history.
        for panel in ("panel-rpm", "panel-average", "panel-p60", "panel-resources"):
            points, canvases = page.graphs.get(panel, (0, 0))
            assert points > 0 and canvases > 0, (panel, points, canvases)
        # Requests by status class over the minute: 85 2xx, 11 4xx, 5 5xx.
        classes = {row[0]: float(row[1]) for row in page.tables["panel-status-codes"]}
        assert classes.keys() == {"2xx", "4xx", "5xx"}
        for name, count in (("2xx", 85), ("4xx", 11), ("5xx", 5)):
            assert classes[name] == pytest.approx(count / 60, rel=0.02, abs=0.001), name
        # Requests per minute by method and route, over the page's 5 minutes: the history is
        # younger, so each route's count over 300 s, as rate(...[5m]) would say. The marked
        # path has no route: it is its own path.
        by_route = {row[0]: float(row[1]) for row in page.tables["panel-top-rate"]}
        assert by_route == pytest.approx({"GET /api/users/{user_id}": 90 / 5,
                                          "GET /api/error": 5 / 5, "GET /api/slow": 5 / 5,
                                          f"GET {XSS}": 1 / 5}, abs=0.05)
        assert page.tables["panel-top-p95"][0][0] == "GET /api/slow"

        # The Logger Stream: newest first, the marked path on top, as text.
        assert values["panel-logs"] == total == len(page.rows)
        newest = page.rows[0]
        assert newest[4] == XSS and newest[5] == "404" and newest[2] == "WARNING"
        shown = sorted((row[3], row[4]) for row in page.rows[1:])
        expected = sorted((m, urllib.parse.urlsplit(p).path) for m, p in sent)
        assert shown == expected
        # The script tag in the path stayed text: the page's only scripts are its own two.
        assert page.elements.count("script") == 2

        # The filter, given in the address as the page keeps it.
        filtered = read_page(exporter.url + "/#range=300&filter=%2Fapi%2Fslow", out, "filtered")
        assert len(filtered.rows) == 5
        assert all(row[4] == "/api/slow" for row in filtered.rows)
        assert filtered.values["panel-logs"] == "5"


# ---------------------------------------------------------------------------------------------
# make run

def test_make_run_fills_every_panel_and_ctrl_c_stops_it_all(tmp_path):
    """examples/fastapi-app/run.sh, what `make run` starts after building: the app, its
    traffic and the exporter; every panel has a value within a minute; SIGINT to the process
    group (Ctrl-C) stops all of it."""
    from exporter import free_port, SOURCE
    import signal
    listen = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, WORK=str(tmp_path / "run"), APP_PORT=str(free_port()), LISTEN=listen)
    output = open(tmp_path / "run.log", "wb")
    run = subprocess.Popen(["bash", os.path.join(SOURCE, "examples/fastapi-app/run.sh"), BIN],
                           env=env, stdout=output, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        def filled():
            assert run.poll() is None, (tmp_path / "run.log").read_text()
            try:
                status, _, body = http_get(f"http://{listen}/api/v1/series?range=300")
                _, _, logs = http_get(f"http://{listen}/api/v1/logs?limit=5")
            except OSError:
                return False
            current = json.loads(body)["current"]
            keys = ("requests_per_second", "errors_4xx_per_second", "errors_5xx_per_second",
                    "average_duration_seconds", "p60_seconds", "cpu_percent", "resident_bytes")
            return (status == 200 and all(current[k] for k in keys)
                    and len(json.loads(logs)["lines"]) == 5)

        wait_until(filled, timeout=60, interval=1, what="every panel filled by make run")
        assert f"http://{listen}/" in (tmp_path / "run.log").read_text()
        members = [pid for pid in descendants(run.pid) if pid != run.pid]
        assert len(members) >= 4  # uvicorn (master and 2 workers), traffic, exporter
        os.killpg(run.pid, signal.SIGINT)
        assert run.wait(timeout=20) is not None

        def all_gone():
            alive = []
            for pid in members:
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        if stat.read().split(") ")[1][0] != "Z":
                            alive.append(pid)
                except OSError:
                    pass
            return not alive
        wait_until(all_gone, timeout=15, what="every process of make run stopped")
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        output.close()


def test_make_run_builds_without_the_test_packages(tmp_path):
    """`make run` on a fresh machine installs only the build and run packages: what `make
    build` configures must need none of the test-only ones (googletest, Google Benchmark).
    CMake is told to find neither, as on a machine without them; configuring is enough."""
    from exporter import SOURCE
    plan = subprocess.run(["make", "-n", "-C", SOURCE, "build", f"BUILD={tmp_path / 'b'}"],
                          capture_output=True, text=True, check=True).stdout
    plan = plan.replace("\\\n", " ")  # a recipe line continued with a backslash
    configure = [line for line in plan.splitlines() if line.strip().startswith("cmake -S")]
    assert len(configure) == 1, plan
    result = subprocess.run(
        configure[0] + " -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON"
        " -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON",
        shell=True, cwd=SOURCE, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "b" / "tests").exists()
