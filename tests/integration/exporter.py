"""Helpers to run the real fastapi-exporter binary and read what it serves."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

BIN = os.environ.get("FASTAPI_EXPORTER_BIN", "build/daemon/fastapi-exporter")
SOURCE = os.environ.get(
    "FASTAPI_EXPORTER_SOURCE", os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
PYTHON = "/usr/bin/python3"


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_get(url, headers=None, method="GET", timeout=10):
    """Returns (status, headers, body bytes) without raising on HTTP errors."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def parse_samples(text):
    """{(name, frozenset(labels)): value} from the text exposition, by prometheus_client."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


class Exporter:
    """The daemon on a free loopback port, started with a config file written for the test."""

    def __init__(self, tmp_path, config_text, extra_args=()):
        self.port = free_port()
        self.config_path = tmp_path / "config.yaml"
        self.config_path.write_text(config_text)
        self.log_path = tmp_path / "exporter.log"
        self.args = [BIN, f"--config.file={self.config_path}",
                     f"--web.listen-address=127.0.0.1:{self.port}", *extra_args]
        self.process = None
        self.env = None  # environment of the daemon; None: this one

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                        env=self.env)
        wait_until(self._healthy, what="exporter /healthz")
        return self

    def _healthy(self):
        if self.process.poll() is not None:
            raise AssertionError(f"exporter exited with {self.process.returncode}:\n"
                                 + self.log_path.read_text())
        try:
            return http_get(self.url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def scrape_text(self):
        status, _, body = http_get(self.url + "/metrics")
        assert status == 200, body
        return body.decode()

    def scrape(self):
        return parse_samples(self.scrape_text())

    def value(self, name, **labels):
        return self.scrape().get((name, frozenset(labels.items())))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        if self.process:
            self.log.close()
        return self.process.returncode if self.process else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def spawn_python(code, *args):
    """Starts /usr/bin/python3 -c code; the caller kills it by PID."""
    return subprocess.Popen([PYTHON, "-c", code, *map(str, args)])


def read_proc_rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def descendants(pid):
    """pid and all its descendants, from /proc/PID/task/*/children."""
    found, frontier = [pid], [pid]
    while frontier:
        current = frontier.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    for child in map(int, f.read().split()):
                        found.append(child)
                        frontier.append(child)
        except OSError:
            pass
    return found


def kill_tree(process):
    for pid in reversed(descendants(process.pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()



EXAMPLE_APP = os.path.join(SOURCE, "examples", "fastapi-app")


def wait_serving(url, what="uvicorn serving"):
    """Waits until the example app at `url` answers /health (excluded from the request
    metrics, so probes do not disturb them)."""
    def up():
        try:
            return http_get(url + "/health", timeout=1)[0] == 200
        except OSError:
            return False
    wait_until(up, timeout=30, what=what)


def start_example_app(access_log, workers=2, service="fastapi-backend"):
    """The example FastAPI app under uvicorn on a free port, writing its JSON access log.
    Returns (process, base url) once it serves; stop it with kill_tree(process)."""
    port = free_port()
    env = dict(os.environ, ACCESS_LOG=str(access_log), SERVICE_NAME=service)
    app = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--no-access-log"],
        cwd=EXAMPLE_APP, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_serving(url)
    except BaseException:
        kill_tree(app)
        raise
    return app, url


def example_app_config(tmp_path, app, log, service="fastapi-backend",
                       routes=("/api/users/{user_id}", "/api/items"), extra=""):
    """The exporter's config for the example app started by start_example_app: its processes
    by PID, its JSON access log read from the beginning, /health left out."""
    route_lines = "".join(f"      - {route}\n" for route in routes)
    return f"""
positions_file: {tmp_path}/positions.yaml
services:
  - name: {service}
    process:
      pid: {app.pid}
      children: true
    access_logs:
      - path: {log}
        format: json
        start_at: beginning
    routes:
{route_lines}    exclude_paths: [/health]
{extra}"""


class Prometheus:
    """A real Prometheus on a free loopback port scraping the exporter every second;
    `scrape_extra` is added to the scrape config (scheme, tls_config, basic_auth)."""

    def __init__(self, tmp_path, exporter_port, scrape_extra=""):
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fastapi-exporter
    static_configs:
      - targets: ["127.0.0.1:{exporter_port}"]
{scrape_extra}""")
        self.log = open(tmp_path / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/tsdb",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what="prometheus ready")

    def _ready(self):
        assert self.process.poll() is None, "prometheus exited"
        try:
            return http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        status, _, body = http_get(f"http://127.0.0.1:{self.port}/api/v1/query?"
                                   + urllib.parse.urlencode(params))
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", (expr, body)
        return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
