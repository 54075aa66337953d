"""The daemon as users run it: flags, config checking, HTTP behaviour, start-up errors, stop."""

import concurrent.futures
import gzip
import os
import pathlib
import re
import signal
import socket
import subprocess

import pytest

from exporter import BIN, SOURCE, Exporter, http_get, parse_samples, read_proc_rss

BROKEN = sorted((pathlib.Path(SOURCE) / "tests/configs/broken").glob("*.yaml"))
SELF_CONFIG = """
services:
  - name: exporter
    process:
      pid: self
"""


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_check_config_names_the_key_and_line_of_each_problem(path):
    key, line = re.match(r"# expect: (\S*) @ (\d+)", path.read_text()).groups()
    result = run("--check-config", str(path))
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{path}:{line}:"), result.stderr
    if key:
        assert f": {key}: " in first, result.stderr
    says = re.search(r"^# says: (.*)$", path.read_text(), re.M)
    if says:
        assert says.group(1) in first, result.stderr
    # The daemon refuses to start on the same file, saying why.
    started = run(f"--config.file={path}")
    assert started.returncode == 1
    assert first in started.stderr


def test_check_config_accepts_the_shipped_configs():
    for name in ("config/example.yaml", "examples/demo.yaml"):
        result = run("--check-config", os.path.join(SOURCE, name))
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout


def test_demo_config_watches_this_exporter_alone(tmp_path):
    """examples/demo.yaml (`make run`) watches the exporter by `pid: self`: with a second
    exporter running (which its former cmdline pattern also matched), one process, the same
    one as the exporter's own fastapi_exporter_process_* metrics."""
    other = tmp_path / "other"
    other.mkdir()
    with Exporter(other, SELF_CONFIG):
        demo = (pathlib.Path(SOURCE) / "examples/demo.yaml").read_text()
        with Exporter(tmp_path, demo) as exporter:
            samples = exporter.scrape()
            # The exporter's own memory, as /proc says it right after the scrape.
            own_rss = read_proc_rss(exporter.process.pid)
    service = frozenset({("service", "fastapi-exporter")})
    assert samples[("fastapi_exporter_process_resident_memory_bytes", frozenset())] == \
        pytest.approx(own_rss, rel=0.1)
    assert samples[("process_processes", service)] == 1
    assert samples[("process_start_time_seconds", service)] == \
        samples[("fastapi_exporter_process_start_time_seconds", frozenset())]
    assert samples[("fastapi_exporter_process_threads", frozenset())] >= 2  # HTTP, tailer


def test_check_config_prints_every_problem_at_once(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("web:\n  telemetry_path: metrics\nservices:\n  - name: a\n"
                    "    process: {pid: 0}\n  - name: b\n    process: {comm: x}\n    extra: 1\n")
    result = run("--check-config", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "web.telemetry_path", "services[0].process.pid", "services[1].extra"]


def test_missing_config_file_is_a_one_line_error(tmp_path):
    result = run(f"--config.file={tmp_path}/nope.yaml")
    assert result.returncode == 1
    assert f"{tmp_path}/nope.yaml: cannot read config file: No such file or directory" \
        in result.stderr


def test_version_and_help():
    result = run("--version")
    assert result.returncode == 0
    assert re.match(r"fastapi-exporter version \d+\.\d+\.\d+ \(revision \w+\)", result.stdout)
    help_text = run("--help").stdout
    for flag in ("--config.file", "--web.listen-address", "--web.telemetry-path", "--log.level",
                 "--log.format", "--check-config", "--version"):
        assert flag in help_text


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(SELF_CONFIG)
        result = run(f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Address already in use" in result.stderr


def test_http_endpoints(tmp_path):
    with Exporter(tmp_path, SELF_CONFIG, ["--web.telemetry-path=/custom"]) as exporter:
        status, headers, body = http_get(exporter.url + "/")
        assert status == 200 and b'href="/custom"' in body and b"exporter" in body
        assert http_get(exporter.url + "/healthz")[0] == 200
        status, headers, body = http_get(exporter.url + "/custom")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        plain = body.decode()
        assert 'fastapi_exporter_service_up{service="exporter"} 1' in plain
        assert "exposer_" not in plain  # none of prometheus-cpp's own transport series
        status, headers, body = http_get(exporter.url + "/custom",
                                         {"Accept-Encoding": "gzip"})
        assert headers.get("Content-Encoding") == "gzip"
        assert "process_cpu_seconds_total" in gzip.decompress(body).decode()
        assert http_get(exporter.url + "/custom", method="HEAD")[2] == b""
        assert http_get(exporter.url + "/custom", method="POST")[0] == 405
        assert http_get(exporter.url + "/metrics")[0] == 404
        assert http_get(exporter.url + "/custom/more")[0] == 404


def test_concurrent_scrapes_are_all_complete(tmp_path):
    with Exporter(tmp_path, SELF_CONFIG) as exporter:
        def scrape(_):
            status, _, body = http_get(exporter.url + "/metrics")
            return status, parse_samples(body.decode())
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(scrape, range(200)))
        assert all(status == 200 for status, _ in results)
        key = ("process_resident_memory_bytes", frozenset({("service", "exporter")}))
        assert all(samples.get(key, 0) > 0 for _, samples in results)


def test_exposition_passes_promtool(tmp_path):
    with Exporter(tmp_path, SELF_CONFIG) as exporter:
        text = exporter.scrape_text()
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_info_and_self_metrics(tmp_path):
    with Exporter(tmp_path, SELF_CONFIG) as exporter:
        samples = exporter.scrape()
    version = run("--version").stdout.split()[2]
    build_info = [labels for (name, labels) in samples if name == "fastapi_exporter_build_info"]
    assert len(build_info) == 1 and ("version", version) in build_info[0]
    assert samples[("fastapi_exporter_collector_duration_seconds",
                    frozenset({("collector", "process")}))] > 0


def test_sigterm_and_sigint_stop_cleanly(tmp_path):
    for sig in (signal.SIGTERM, signal.SIGINT):
        exporter = Exporter(tmp_path, SELF_CONFIG).start()
        assert exporter.stop(sig) == 0
        assert "shutting down" in exporter.log_path.read_text()


def test_json_logs(tmp_path):
    exporter = Exporter(tmp_path, SELF_CONFIG, ["--log.format=json", "--log.level=debug"])
    exporter.start()
    exporter.stop()
    import json
    lines = [json.loads(line) for line in exporter.log_path.read_text().splitlines()]
    assert any("listening on" in line["msg"] for line in lines)
    assert {"ts", "level", "msg"} <= set(lines[0])
