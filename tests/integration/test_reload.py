"""SIGHUP: a broken config changes nothing; a good one applies without a restart and keeps
the counters of what did not change."""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from exporter import Exporter, PYTHON, free_port, http_get, kill_tree, wait_until


def json_line(i, path="/api/items/{}"):
    return ('{"endpoint":"' + path.format(i) + '","method":"GET","status_code":200,'
            '"duration_ms":5}\n')


def api_service(logs, routes="/api/items/{item_id}"):
    return f"""
  - name: api
    access_logs:
      - path: {logs}/api.log
        start_at: beginning
    routes:
      - {routes}
"""


def web_service(logs, pid):
    return f"""
  - name: web
    process:
      pid: {pid}
    access_logs:
      - path: {logs}/web.log
        start_at: beginning
"""


def config(tmp_path, services):
    return f"positions_file: {tmp_path}/positions.yaml\nservices:{services}"


def listening_on(tmp_path, port):
    """A config without services whose address is in the file (tests omit the flag)."""
    return (f"web:\n  listen_address: 127.0.0.1:{port}\n"
            f"positions_file: {tmp_path}/positions.yaml\nservices: []\n")


def counted(samples, service):
    return sum(value for (name, labels), value in samples.items()
               if name == "fastapi_requests_total" and ("service", service) in labels)


def has_series(samples, service):
    return any(("service", service) in labels for (_, labels) in samples)


def append(path, start, count, pattern="/api/items/{}"):
    with open(path, "a") as f:
        for i in range(start, start + count):
            f.write(json_line(i, pattern))


def reload_metric(exporter):
    return exporter.value("fastapi_exporter_config_last_reload_successful")


def test_broken_reload_keeps_old_config_and_good_reload_keeps_unchanged_counters(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "api.log", 0, 5)
    sleeper = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(600)"])
    exporter = Exporter(tmp_path, config(tmp_path, api_service(logs))).start()
    try:
        pid = exporter.process.pid
        wait_until(lambda: counted(exporter.scrape(), "api") == 5, what="first lines")
        assert reload_metric(exporter) == 1
        first_success = exporter.value(
            "fastapi_exporter_config_last_reload_success_timestamp_seconds")
        assert first_success > 0

        # Broken YAML: still serving, on the old config, and the metric says so.
        exporter.config_path.write_text(
            config(tmp_path, api_service(logs)) + "  - name: [unclosed\n")
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: reload_metric(exporter) == 0, what="failed reload reported")
        assert exporter.process.pid == pid and exporter.process.poll() is None
        log_text = exporter.log_path.read_text()
        assert re.search(r"config\.yaml:\d+:\d+: invalid YAML", log_text), log_text
        assert "still running on the previous configuration" in log_text
        append(logs / "api.log", 5, 3)
        wait_until(lambda: counted(exporter.scrape(), "api") == 8, what="old config still counts")
        assert not has_series(exporter.scrape(), "web")

        # Valid YAML, invalid config (a service without selector): refused the same way.
        exporter.config_path.write_text(
            config(tmp_path, api_service(logs)) + "  - name: nothing-to-find\n")
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "services[1]" in exporter.log_path.read_text(),
                   what="the problem named by key")
        assert reload_metric(exporter) == 0

        # Good config adding a service: its series appear, api's counters keep their values.
        exporter.config_path.write_text(
            config(tmp_path, api_service(logs) + web_service(logs, sleeper.pid)))
        append(logs / "web.log", 0, 4, "/index/{}")
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: reload_metric(exporter) == 1, what="good reload reported")
        assert exporter.process.pid == pid
        assert exporter.value("fastapi_exporter_config_last_reload_success_timestamp_seconds") \
            >= first_success
        wait_until(lambda: counted(exporter.scrape(), "web") == 4, what="new service counted")
        samples = exporter.scrape()
        assert counted(samples, "api") == 8  # not reset, not read again
        assert samples[("fastapi_exporter_log_lines_total",
                        frozenset({("service", "api"), ("source", f"{logs}/api.log")}))] == 8
        assert samples[("process_processes", frozenset({("service", "web")}))] == 1
        assert samples[("fastapi_requests_total", frozenset({
            ("service", "api"), ("method", "GET"), ("path", "/api/items/{item_id}"),
            ("status_code", "200")}))] == 8
        append(logs / "api.log", 8, 2)
        wait_until(lambda: counted(exporter.scrape(), "api") == 10, what="api goes on")

        # Changing api's routes resets its request series (their labels change) but not its
        # position: the 10 lines already read are not counted again.
        exporter.config_path.write_text(config(
            tmp_path, api_service(logs, "/api/items/{id}") + web_service(logs, sleeper.pid)))
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: exporter.log_path.read_text().count("reloaded") == 2,
                   what="second good reload")
        append(logs / "api.log", 10, 1)
        wait_until(lambda: counted(exporter.scrape(), "api") == 1, what="only the new line")
        samples = exporter.scrape()
        assert ("fastapi_requests_total", frozenset({
            ("service", "api"), ("method", "GET"), ("path", "/api/items/{id}"),
            ("status_code", "200")})) in samples
        assert counted(samples, "web") == 4

        # Removing a service removes every series of it.
        exporter.config_path.write_text(config(tmp_path, api_service(logs, "/api/items/{id}")))
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: not has_series(exporter.scrape(), "web"), what="web gone")
        assert counted(exporter.scrape(), "api") == 1
        assert exporter.stop() == 0
        assert os.path.exists(tmp_path / "positions.yaml")
    finally:
        exporter.stop()
        kill_tree(sleeper)


def test_reload_that_names_a_missing_log_keeps_serving(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    append(logs / "api.log", 0, 2)
    with Exporter(tmp_path, config(tmp_path, api_service(logs))) as exporter:
        wait_until(lambda: counted(exporter.scrape(), "api") == 2, what="first lines")
        exporter.config_path.write_text(config(
            tmp_path, api_service(logs) + f"""
  - name: other
    access_logs:
      - path: {tmp_path}/no-such-folder/access.log
"""))
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: reload_metric(exporter) == 1 and
                   "reloaded" in exporter.log_path.read_text(), what="reload")
        time.sleep(0.3)
        append(logs / "api.log", 2, 1)
        wait_until(lambda: counted(exporter.scrape(), "api") == 3, what="still counting")
        assert exporter.value("fastapi_exporter_log_files", service="other",
                              source=f"{tmp_path}/no-such-folder/access.log") == 0
        assert (f"service other: access log {tmp_path}/no-such-folder/access.log: folder "
                f"{tmp_path}/no-such-folder: No such file or directory; it is read once it "
                "appears") in exporter.log_path.read_text()
        # And once it appears, it is read.
        (tmp_path / "no-such-folder").mkdir()
        append(tmp_path / "no-such-folder" / "access.log", 0, 2)
        wait_until(lambda: counted(exporter.scrape(), "other") == 2, timeout=20,
                   what="the log read once it appears")


def test_reload_moves_the_listener(tmp_path):
    first, second = free_port(), free_port()
    exporter = Exporter(tmp_path, listening_on(tmp_path, first))
    # The address comes from the file here, not from the flag (which would override it).
    exporter.args = [a for a in exporter.args if not a.startswith("--web.listen-address")]
    exporter.port = first
    with exporter:
        exporter.config_path.write_text(listening_on(tmp_path, second))
        exporter.process.send_signal(signal.SIGHUP)

        def serves_on_second():
            try:
                return http_get(f"http://127.0.0.1:{second}/healthz", timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(serves_on_second, what="listening on the new address")
        with pytest.raises(OSError):
            http_get(f"http://127.0.0.1:{first}/healthz", timeout=1)
        exporter.port = second
        assert reload_metric(exporter) == 1


def test_reloads_under_load_lose_and_repeat_nothing(tmp_path):
    """Twenty reloads that add and remove a service while lines are written and scrapes run:
    the unchanged service ends with exactly the lines written."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("")
    sleeper = subprocess.Popen([PYTHON, "-c", "import time; time.sleep(600)"])
    with_web = config(tmp_path, api_service(logs) + web_service(logs, sleeper.pid))
    without_web = config(tmp_path, api_service(logs))
    exporter = Exporter(tmp_path, without_web).start()
    stop = threading.Event()
    written = [0]
    scrapes = [0]

    def write():
        while not stop.is_set():
            append(logs / "api.log", written[0], 20)
            written[0] += 20
            time.sleep(0.005)

    def scrape():
        while not stop.is_set():
            exporter.scrape()
            scrapes[0] += 1
    threads = [threading.Thread(target=write), threading.Thread(target=scrape)]
    for thread in threads:
        thread.start()
    try:
        for i in range(20):
            exporter.config_path.write_text(with_web if i % 2 == 0 else without_web)
            exporter.process.send_signal(signal.SIGHUP)
            wait_until(lambda: exporter.log_path.read_text().count("reloaded") == i + 1,
                       what=f"reload {i + 1}")
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    try:
        assert scrapes[0] > 20 and written[0] > 1000
        wait_until(lambda: counted(exporter.scrape(), "api") == written[0], timeout=20,
                   what="every line counted once")
        time.sleep(1.2)
        assert counted(exporter.scrape(), "api") == written[0]
        assert not has_series(exporter.scrape(), "web")  # the last config has no web
        assert exporter.stop() == 0
    finally:
        exporter.stop()
        kill_tree(sleeper)


def test_reload_to_a_busy_address_keeps_the_old_listener(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    busy_port = busy.getsockname()[1]
    first = free_port()

    exporter = Exporter(tmp_path, listening_on(tmp_path, first))
    exporter.args = [a for a in exporter.args if not a.startswith("--web.listen-address")]
    exporter.port = first
    try:
        with exporter:
            exporter.config_path.write_text(listening_on(tmp_path, busy_port))
            exporter.process.send_signal(signal.SIGHUP)
            wait_until(lambda: "reload failed" in exporter.log_path.read_text(),
                       what="refused reload")
            assert f"cannot listen on 127.0.0.1:{busy_port}" in exporter.log_path.read_text()
            assert reload_metric(exporter) == 0  # served on the old address
            # A later good reload still works.
            exporter.config_path.write_text(listening_on(tmp_path, first) + "metric_prefix: web\n")
            exporter.process.send_signal(signal.SIGHUP)
            wait_until(lambda: reload_metric(exporter) == 1, what="good reload")
    finally:
        busy.close()
