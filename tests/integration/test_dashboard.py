"""The Grafana dashboard and Prometheus rules as shipped: lint, promtool, and every Prometheus
panel query run on a real Prometheus scraping a real exporter that watches a real FastAPI app,
checked against the traffic sent."""

import json
import math
import os
import re
import subprocess
import time

import pytest

from exporter import (SOURCE, Exporter, Prometheus, descendants, example_app_config, http_get,
                      kill_tree, read_proc_rss, start_example_app, wait_until)

GRAFANA = os.path.join(SOURCE, "grafana")
DASHBOARD = os.path.join(GRAFANA, "dashboards", "fastapi-dashboard.json")
SERVICE = "fastapi-backend"
KUBERNETES = os.path.join(GRAFANA, "kubernetes")
# The target labels the Prometheus Operator gives a ServiceMonitor target, `service` being the
# Kubernetes Service's name (a scrape_extra for Prometheus()).
K8S_SERVICE = "fastapi-backend-metrics"
K8S_TARGET_LABELS = f"""    relabel_configs:
      - target_label: service
        replacement: {K8S_SERVICE}
      - target_label: namespace
        replacement: default
"""


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def enclosing_function(expr, position):
    """The name of the function call whose parentheses enclose `position`."""
    depth = 0
    for i in range(position - 1, -1, -1):
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(":
            if depth == 0:
                return re.search(r"(\w*)\s*$", expr[:i]).group(1)
            depth -= 1
    return ""


def query_panels(dashboard):
    return [p for p in dashboard["panels"] if p["type"] != "row"]


# ---------------------------------------------------------------------------------------------
# Lint

def test_dashboard_lint():
    dashboard = load_dashboard()
    assert dashboard["uid"] == "fastapi-exporter" and dashboard["title"]
    assert dashboard["tags"] and dashboard["refresh"] and dashboard["time"]["from"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["loki_datasource"]["query"] == "loki"
    assert "label_values(fastapi_requests_total, service)" in json.dumps(variables["service"])
    assert variables["service"]["multi"] and variables["service"]["includeAll"]
    assert "instance" in variables and variables["search"]["type"] == "textbox"
    text = json.dumps(dashboard)
    assert "${DS_" not in text and "__inputs" not in dashboard  # breaks file provisioning

    titles = [p["title"] for p in query_panels(dashboard)]
    for title in ("Total Requests", "Requests Per Minute", "Errors Per Second",
                  "Average Response Time", "Request Duration P60", "CPU Usage",
                  "Memory Usage", "Logger Stream"):
        assert title in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))

    for panel in query_panels(dashboard):
        uid = panel["datasource"]["uid"]
        assert uid in ("${datasource}", "${loki_datasource}"), panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"].strip(), panel["title"]
        if panel["type"] in ("stat", "gauge", "timeseries", "table"):
            assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        if uid == "${datasource}":
            for target in panel["targets"]:
                expr = target["expr"]
                # No window shorter than $__rate_interval: every range is a variable.
                for window in re.findall(r"\[([^\]]+)\]", expr):
                    assert window in ("$__rate_interval", "$__range"), (panel["title"], expr)
                # Every counter sits inside rate() or increase().
                for match in re.finditer(r"\w+_total\b", expr):
                    assert enclosing_function(expr, match.start()) in ("rate", "increase"), \
                        (panel["title"], expr)
                # Quantiles aggregate buckets by le.
                if "histogram_quantile" in expr:
                    assert re.search(r"sum by \([^)]*\ble\b", expr), (panel["title"], expr)

    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in query_panels(dashboard)
             if "fieldConfig" in p}
    assert units["Memory Usage"] == "bytes"
    assert units["CPU Usage"] == "percent"
    assert units["Request Duration P60"] == "s"


def test_prometheus_rules_pass_promtool():
    rules = os.path.join(GRAFANA, "prometheus", "fastapi-alerts.yml")
    check = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(["promtool", "test", "rules", "fastapi-alerts_test.yml"],
                           cwd=os.path.join(GRAFANA, "prometheus"), capture_output=True,
                           text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    alerts = re.findall(r"alert: (\w+)", open(rules).read())
    tested = set(re.findall(r"alertname: (\w+)", open(os.path.join(
        GRAFANA, "prometheus", "fastapi-alerts_test.yml")).read()))
    assert set(alerts) == tested  # every alert has a test


def test_prometheus_config_passes_promtool(tmp_path):
    for name in ("prometheus.yml", "fastapi-alerts.yml"):
        (tmp_path / name).write_text(open(os.path.join(GRAFANA, "prometheus", name)).read())
    check = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_kubernetes_scrape_configs_honor_the_exporters_labels(tmp_path):
    import yaml  # only here: the rest of the suite needs no YAML reader

    with open(os.path.join(KUBERNETES, "servicemonitor.yaml")) as f:
        service, monitor = yaml.safe_load_all(f)
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1",
                                                         "ServiceMonitor")
    # The monitor selects the Service, by a port the Service has, honoring the labels.
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports and endpoint["honorLabels"] is True

    with open(os.path.join(KUBERNETES, "podmonitor.yaml")) as f:
        (pod_monitor,) = yaml.safe_load_all(f)
    assert (pod_monitor["apiVersion"], pod_monitor["kind"]) == ("monitoring.coreos.com/v1",
                                                                 "PodMonitor")
    # The same pods as the Service's, by the container port the Service targets.
    assert pod_monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert pod_monitor["spec"]["podMetricsEndpoints"]
    for endpoint in pod_monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] == service["spec"]["ports"][0]["targetPort"]
        assert endpoint["honorLabels"] is True

    with open(os.path.join(KUBERNETES, "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    (job,) = config["scrape_configs"]
    assert job["honor_labels"] is True and job["kubernetes_sd_configs"] == [{"role": "pod"}]
    # Debian's Prometheus is built without Kubernetes discovery: promtool checks the rest of
    # the job, its relabelings included, with static targets in its place.
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": ["127.0.0.1:9869"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_honor_labels_the_targets_service_label_wins(tmp_path):
    """Why the Kubernetes configs honor labels: a `service` target label, as the Prometheus
    Operator gives every ServiceMonitor target, otherwise renames the exporter's own."""
    exporter = Exporter(tmp_path, "services:\n  - name: exporter\n    process: {pid: self}\n")
    prometheus = None
    try:
        exporter.start()
        prometheus = Prometheus(tmp_path, exporter.port, K8S_TARGET_LABELS)
        wait_until(lambda: prometheus.query("fastapi_exporter_service_up"), timeout=30,
                   what="a scrape")
        (labels, _), = prometheus.query("fastapi_exporter_service_up")
        assert (labels["service"], labels["exported_service"]) == (K8S_SERVICE, "exporter")
    finally:
        if prometheus:
            prometheus.stop()
        exporter.stop()


# ---------------------------------------------------------------------------------------------
# End to end on a real Prometheus

def substitute(expr, window_seconds):
    window = f"{int(math.ceil(window_seconds))}s"
    return (expr.replace("$__rate_interval", window).replace("$__range", window)
            .replace("$service", SERVICE).replace("$instance", ".*"))


def send(url, method, path, times):
    for _ in range(times):
        status, _, _ = http_get(url + path, method=method)
        assert status in (200, 201, 404, 500), (path, status)


@pytest.fixture
def stack(tmp_path):
    """The example app (2 uvicorn workers), the exporter, and Prometheus scraping it."""
    log = tmp_path / "access.log"
    app, url = start_example_app(log, service=SERVICE)
    exporter = prometheus = None
    try:
        exporter = Exporter(tmp_path, example_app_config(tmp_path, app, log, service=SERVICE)).start()
        # Scraped as on Kubernetes with the shipped configs (grafana/kubernetes/): the target
        # has its own `service` label, and the exporter's labels are honored.
        prometheus = Prometheus(tmp_path, exporter.port,
                                "    honor_labels: true\n" + K8S_TARGET_LABELS)
        yield app, url, log, prometheus
    finally:
        if prometheus:
            prometheus.stop()
        if exporter:
            exporter.stop()
        kill_tree(app)


def percentile_bucket(durations, q, buckets):
    """The histogram bucket (lower, upper] holding the q-quantile of durations."""
    ordered = sorted(durations)
    rank = q * len(ordered)
    bounds = [0.0] + list(buckets) + [math.inf]
    for lower, upper in zip(bounds, bounds[1:]):
        if sum(1 for d in ordered if d <= upper) >= rank:
            return lower, upper
    return bounds[-2], math.inf


def test_every_panel_shows_the_truth(stack):
    app, url, log, prometheus = stack
    dashboard = load_dashboard()
    total_sent = 0

    def sent_total_scraped():
        result = prometheus.query(f'sum(fastapi_requests_total{{service="{SERVICE}"}})')
        return result and result[0][1] == total_sent

    # Warm-up: one request of each kind, so that every series exists before the measured
    # windows (rate() cannot see the first sample of a series it has never seen before).
    for method, path in (("GET", "/api/users/1"), ("GET", "/api/users/5000"),
                         ("POST", "/api/items"), ("GET", "/api/slow?ms=100"),
                         ("GET", "/api/error")):
        send(url, method, path, 1)
        total_sent += 1
    wait_until(sent_total_scraped, timeout=30, what="warm-up scraped")
    time.sleep(2)

    # Phase A: no server errors, some 404s.
    start_a = time.time()
    send(url, "GET", "/api/users/7", 60)
    send(url, "GET", "/api/users/9999", 12)
    send(url, "POST", "/api/items", 20)
    total_sent += 92
    wait_until(sent_total_scraped, timeout=30, what="phase A scraped")
    time.sleep(1.5)
    at_a = time.time()
    window_a = at_a - start_a + 1
    errors = next(p for p in dashboard["panels"] if p["title"] == "Errors Per Second")
    (_, five_xx), = prometheus.query(substitute(errors["targets"][0]["expr"], window_a), at_a)
    (_, four_xx), = prometheus.query(substitute(errors["targets"][1]["expr"], window_a), at_a)
    assert five_xx == 0
    assert four_xx == pytest.approx(12 / window_a, rel=0.4)  # a short window: extrapolation

    # Phase B: the traffic every panel is checked against.
    time.sleep(1.5)
    log_offset = log.stat().st_size
    start_b = time.time()
    send(url, "GET", "/api/users/3", 150)
    send(url, "GET", "/api/error", 30)
    send(url, "GET", "/api/slow?ms=100", 20)
    total_sent += 200
    wait_until(sent_total_scraped, timeout=30, what="phase B scraped")
    # rate() and increase() extrapolate to the window's edges, by up to one scrape interval
    # over the window: a window of 30 scrapes keeps that under 4%.
    time.sleep(max(1.5, start_b + 29 - time.time()))
    at = time.time()
    window = at - start_b + 1
    with open(log, "rb") as f:
        f.seek(log_offset)
        lines = [json.loads(line) for line in f.read().decode().splitlines()]
    durations = [entry["duration_ms"] / 1000 for entry in lines if entry["endpoint"] != "/health"]
    assert len(durations) == 200
    slow = [entry["duration_ms"] / 1000 for entry in lines if entry["endpoint"] == "/api/slow"]
    rss_now = sum(read_proc_rss(pid) for pid in descendants(app.pid))
    cores = os.cpu_count()

    results = {}
    for panel in query_panels(dashboard):
        if panel["datasource"]["uid"] != "${datasource}":
            continue
        for target in panel["targets"]:
            expr = substitute(target["expr"], window)
            result = prometheus.query(expr, at)
            assert result, f'panel "{panel["title"]}" shows no data: {expr}'
            results[(panel["title"], target["refId"])] = result

    def single(title, ref="A"):
        (_, value), = results[(title, ref)]
        return value

    assert single("Total Requests") == pytest.approx(200, rel=0.08)
    rpm = sum(value for _, value in results[("Requests Per Minute", "A")])
    assert rpm == pytest.approx(200 / window * 60, rel=0.08)
    assert {(m["method"], m["path"]) for m, _ in results[("Requests Per Minute", "A")]} >= {
        ("GET", "/api/users/{user_id}"), ("GET", "/api/error"), ("GET", "/api/slow")}
    assert single("Errors Per Second", "A") == pytest.approx(30 / window, rel=0.08)
    assert single("Errors Per Second", "B") == 0  # no 4xx in phase B
    error_ratio = single("Errors Per Second", "A") / (rpm / 60)
    assert error_ratio == pytest.approx(30 / 200, rel=0.05)

    averages = {m["path"]: v for m, v in results[("Average Response Time", "A")]}
    assert averages["/api/slow"] == pytest.approx(sum(slow) / len(slow), rel=0.05)
    assert averages["/api/slow"] >= 0.1
    assert averages["/api/users/{user_id}"] < 0.05

    buckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    lower, upper = percentile_bucket(durations, 0.60, buckets)
    p60 = single("Request Duration P60", "A")
    assert lower <= p60 <= upper, (p60, lower, upper)
    p60_by_path = {m["path"]: v for m, v in results[("Request Duration P60", "B")]}
    slow_lower, slow_upper = percentile_bucket(slow, 0.60, buckets)
    assert slow_lower <= p60_by_path["/api/slow"] <= slow_upper

    by_status = {m["status_code"]: v for m, v in results[("Requests by Status Code", "A")]}
    assert by_status["500"] == pytest.approx(30 / window, rel=0.08)
    assert by_status["200"] == pytest.approx(170 / window, rel=0.08)
    assert by_status.get("404", 0) == 0

    top_routes = {m["path"] for m, _ in results[("Top Routes by Request Rate", "A")]}
    assert "/api/users/{user_id}" in top_routes
    top_p95 = max(results[("Top Routes by P95 Latency", "A")], key=lambda r: r[1])
    assert top_p95[0]["path"] == "/api/slow"

    cpu = single("CPU Usage")
    assert 0 < cpu < cores * 100
    memory = single("Memory Usage")
    assert memory == pytest.approx(rss_now, rel=0.10)

    assert single("Services Up") == 1
    # The service variable (label_values(fastapi_requests_total, service)) lists the exporter's
    # service, not the Kubernetes Service of the target, and nothing was renamed.
    assert [m for m, _ in prometheus.query("group by (service) (fastapi_requests_total)")] == [
        {"service": SERVICE}]
    assert prometheus.query('count({exported_service!=""})') == []
    assert prometheus.query('count(process_cpu_seconds_total{namespace="default"})')
    assert all(value == 0 for _, value in results[("Access-Log Lines Skipped", "A")])
    assert all(value == 0 for _, value in results[("Access-Log Backlog", "A")])
