"""The real daemon tailing logs that a concurrent writer rotates, truncates and re-creates."""

import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from exporter import BIN, Exporter, parse_samples, wait_until


def json_line(i, path="/api/users/{}", status=200, ms=5):
    return ('{"timestamp":"2026-11-27T10:00:00.000Z","level":"INFO","service":"api",'
            f'"endpoint":"{path.format(i)}","method":"GET","status_code":{status},'
            f'"duration_ms":{ms},"message":"Request completed","seq":{i}}}\n')


def config(tmp_path, glob, extra=""):
    return f"""
positions_file: {tmp_path}/state/positions.yaml
services:
  - name: api
    access_logs:
      - path: {glob}
        format: json
    routes:
      - /api/users/{{user_id}}
{extra}
"""


def requests_total(exporter, service="api"):
    samples = exporter.scrape()
    return sum(value for (name, labels), value in samples.items()
               if name == "fastapi_requests_total" and ("service", service) in labels)


def per_path(exporter):
    return {dict(labels)["path"]: value for (name, labels), value in exporter.scrape().items()
            if name == "fastapi_requests_total"}


def self_metric(exporter, name, **labels):
    samples = exporter.scrape()
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and all(item in sample_labels for item in labels.items()))


class Writer:
    """Appends numbered lines the way a service does (O_APPEND), rotating as told."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.written = 0
        self.phase = 0  # in the path, so a failure shows which phase lost or repeated lines

    def write(self, count, batch=50):
        for start in range(0, count, batch):
            chunk = "".join(json_line(self.written + i, path=f"/phase{self.phase}/{{}}")
                            for i in range(min(batch, count - start)))
            os.write(self.fd, chunk.encode())
            self.written += min(batch, count - start)

    def rotate_by_rename(self, suffix):
        # logrotate's default: rename, then the service reopens its log.
        os.rename(self.path, f"{self.path}.{suffix}")
        self.write(50)  # the service still writes to the old file for a moment
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def copytruncate(self, suffix):
        shutil.copyfile(self.path, f"{self.path}.{suffix}")
        os.truncate(self.path, 0)

    def close(self):
        os.close(self.fd)


def test_rotations_and_copytruncate_lose_and_repeat_nothing(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    log.write_text(json_line(-1) * 10)  # before the exporter starts: not counted (start_at end)
    # Debug logging records every file opened and every truncation, for a failure's post-mortem.
    debug = ["--log.level=debug"]
    with Exporter(tmp_path, config(tmp_path, f"{logs}/access.log"), debug) as exporter:
        writer = Writer(str(log))
        for round_number in range(1, 6):
            writer.phase = round_number
            writer.write(10_000)
            if round_number == 3:
                writer.copytruncate(round_number)
            else:
                writer.rotate_by_rename(round_number)
        writer.phase = 6
        writer.write(100_000 - writer.written)
        writer.close()
        assert writer.written == 100_000
        try:
            wait_until(lambda: requests_total(exporter) == writer.written, timeout=30,
                       what="all lines counted")
        except AssertionError as error:
            raise AssertionError(f"{error}; counted per phase: {per_path(exporter)}") from None
        time.sleep(1.5)  # a rescan later, still exactly the same
        assert requests_total(exporter) == 100_000
        # Rotations in quick succession may be seen as one (the files in between are found
        # as rotated siblings); at least one was seen.
        assert self_metric(exporter, "fastapi_exporter_log_rotations_total") >= 1
        assert self_metric(exporter, "fastapi_exporter_log_truncations_total") <= 1
        assert self_metric(exporter, "fastapi_exporter_log_parse_errors_total") == 0


def test_sigterm_and_restart_count_every_line_exactly_once(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    writer = Writer(str(log))
    stop = threading.Event()

    def keep_writing():
        while not stop.is_set():
            writer.write(200)
            time.sleep(0.002)

    exporter = Exporter(tmp_path, config(tmp_path, f"{logs}/access.log")).start()
    thread = threading.Thread(target=keep_writing)
    written_before_start = writer.written
    thread.start()
    try:
        time.sleep(1.0)
        assert exporter.stop(signal.SIGTERM) == 0
        first_run = int(re.search(r"service api: (\d+) requests",
                                  exporter.log_path.read_text()).group(1))
        assert first_run > 0
        time.sleep(0.5)  # lines written while the daemon is down
        writer.rotate_by_rename(1)  # and a rotation while it is down
        time.sleep(0.3)
        exporter.start()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    writer.close()
    expected = writer.written - written_before_start
    wait_until(lambda: first_run + requests_total(exporter) == expected, timeout=30,
               what="every line counted once")
    time.sleep(1.5)
    assert first_run + requests_total(exporter) == expected
    exporter.stop()


def test_files_created_after_start_are_picked_up(tmp_path):
    logs = tmp_path / "logs"
    with Exporter(tmp_path, config(tmp_path, f"{logs}/*.log")) as exporter:
        assert requests_total(exporter) == 0
        logs.mkdir()  # not even the folder existed at start
        (logs / "one.log").write_text(json_line(1) * 7)
        wait_until(lambda: requests_total(exporter) == 7, what="new file counted")
        (logs / "two.log").write_text(json_line(2) * 5)
        wait_until(lambda: requests_total(exporter) == 12, what="second file counted")


def test_random_paths_never_exceed_max_paths(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    extra = "    max_paths: 100\n"
    with Exporter(tmp_path, config(tmp_path, f"{logs}/access.log", extra)) as exporter:
        alphabet = "abcdefghijklmnopqrstuvwxyz"
        rng = random.Random(1)
        with open(logs / "access.log", "a") as f:
            for i in range(100_000):
                word = "".join(rng.choice(alphabet) for _ in range(10))
                f.write(json_line(i, path="/" + word + "/x"))
        wait_until(lambda: requests_total(exporter) == 100_000, timeout=30,
                   what="all random paths counted")
        samples = exporter.scrape()
        paths = {dict(labels)["path"] for (name, labels) in samples
                 if name == "fastapi_requests_total"}
        assert len(paths) == 100 + 1  # the cap, plus __other__
        assert "__other__" in paths
        overflow = samples[("fastapi_exporter_paths_overflow_total",
                            frozenset({("service", "api")}))]
        assert overflow == 100_000 - 100


def test_malformed_lines_are_counted_by_reason_and_skipped(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    with Exporter(tmp_path, config(tmp_path, f"{logs}/access.log")) as exporter:
        with open(logs / "access.log", "ab") as f:
            f.write(json_line(1).encode())
            f.write(b'{"truncated": \n')
            f.write(b'{"method":"GET","endpoint":"/x","status_code":"abc"}\n')
            f.write(b'{"method":"GET","endpoint":"/x","status_code":200,"duration_ms":-1}\n')
            f.write(b'{"method":"GET","status_code":200}\n')
            f.write(b"\x00\x01\x02\xff binary\n")
            f.write(b"x" * (200 * 1024) + b"\n")  # over the 64 KiB line limit
            f.write(json_line(2).encode())
        # The line with a negative duration is a request: counted, without its duration.
        wait_until(lambda: requests_total(exporter) == 3, what="good lines counted")
        wait_until(lambda: self_metric(exporter, "fastapi_exporter_log_lines_total") == 8,
                   what="every line read")

        def errors(reason):
            return self_metric(exporter, "fastapi_exporter_log_parse_errors_total", reason=reason)
        assert errors("invalid_json") == 1
        assert errors("not_access_line") == 1  # the binary line
        assert errors("invalid_status") == 1
        assert self_metric(exporter, "fastapi_exporter_log_invalid_durations_total") == 1
        assert errors("missing_field") == 1
        assert errors("line_too_long") == 1
    log = exporter.log_path.read_text()
    assert log.count("skipping a line (invalid_json)") == 1  # logged once, then only counted
    assert log.count("counting a request without its duration") == 1
    # Binary bytes are shown escaped (and logfmt escapes the backslash), never written raw
    # into the exporter's log; NUL bytes are never part of a line.
    assert r"skipping a line (not_access_line), further ones are only counted: " \
           r"\\x01\\x02\\xff binary" in log


def test_oneshot_reads_whole_files_in_every_format(tmp_path):
    """--oneshot on files of several MiB (more than one read pass) in four formats."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = 60_000
    with open(logs / "app.jsonl", "w") as jsonl, open(logs / "nginx.log", "w") as nginx, \
            open(logs / "uvicorn.log", "w") as uvicorn, open(logs / "gunicorn.log", "w") as gunicorn:
        for i in range(lines):
            status = 500 if i % 10 == 0 else 200
            jsonl.write(json_line(i, status=status))
            nginx.write(f'10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/{i} HTTP/1.1" '
                        f'{status} 12 "-" "curl/8" 0.{i % 1000:03d}\n')
            uvicorn.write(f'INFO:     127.0.0.1:5000 - "GET /api/users/{i}?x=1 HTTP/1.1" {status} OK\n')
            gunicorn.write(f'10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/{i} HTTP/1.1" '
                           f'{status} 12 "-" "curl/8"\n')
    config_text = f"""
positions_file: {tmp_path}/positions.yaml
services:
  - name: json
    access_logs: [{{path: '{logs}/app.jsonl', format: json}}]
  - name: nginx
    access_logs:
      - path: {logs}/nginx.log
        format: nginx
        nginx: {{log_format: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'}}
  - name: uvicorn
    access_logs: [{{path: '{logs}/uvicorn.log', format: uvicorn}}]
  - name: gunicorn
    access_logs: [{{path: '{logs}/gunicorn.log', format: gunicorn}}]
"""
    (tmp_path / "config.yaml").write_text(config_text)
    result = subprocess.run([BIN, f"--config.file={tmp_path}/config.yaml", "--oneshot"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    samples = parse_samples(result.stdout)
    for service in ("json", "nginx", "uvicorn", "gunicorn"):
        def value(status):
            return samples[("fastapi_requests_total", frozenset({
                ("service", service), ("method", "GET"), ("path", "/api/users/{id}"),
                ("status_code", status)}))]
        assert value("500") == lines // 10, service
        assert value("200") == lines - lines // 10, service
    nginx_count = samples[("fastapi_request_duration_seconds_count", frozenset({
        ("service", "nginx"), ("method", "GET"), ("path", "/api/users/{id}"),
        ("status_code", "200")}))]
    assert nginx_count == lines - lines // 10
    assert not (tmp_path / "positions.yaml").exists()  # one-shot leaves no state behind


def test_oneshot_names_every_log_it_could_not_read_and_exits_1(tmp_path):
    """A one-shot read that left a configured log out must not pass as a good one: a missing
    file, a glob whose folder is missing, a file the exporter may not open and a journal
    folder that is missing each get an error naming the service and the path, the exit status
    is 1, and what could be read is still printed, exactly. Root reads any file, so as root a
    copy of the exporter runs as nobody, from a folder of /tmp that nobody may enter."""
    work = Path(tempfile.mkdtemp(prefix="fastapi-exporter-oneshot-"))
    try:
        work.chmod(0o755)
        check_oneshot_errors(work)
    finally:
        shutil.rmtree(work)


def check_oneshot_errors(work):
    (work / "good.log").write_text(
        'INFO:     127.0.0.1:5000 - "GET /api/users/1 HTTP/1.1" 200 OK\n'
        'INFO:     127.0.0.1:5000 - "GET /api/users/2 HTTP/1.1" 500 Internal Server Error\n')
    (work / "secret.log").write_text('INFO:     127.0.0.1:5000 - "GET / HTTP/1.1" 200 OK\n')
    (work / "secret.log").chmod(0o000)
    body = """
  - name: {name}
    access_logs:
      - {source}
        format: uvicorn
    routes: ['/api/users/{{user_id}}']"""
    sources = {"good": f"path: {work}/good.log",
               "missing": f"path: {work}/missing.log",
               "folder": f"path: {work}/nofolder/*.log",
               "secret": f"path: {work}/secret.log",
               "journal": f"journal: {{unit: api.service, path: {work}/nojournal}}"}

    def run(names):
        (work / "config.yaml").write_text(
            f"positions_file: {work}/positions.yaml\nservices:" +
            "".join(body.format(name=n, source=sources[n]) for n in names) + "\n")
        (work / "config.yaml").chmod(0o644)
        binary, as_nobody = BIN, {}
        if os.geteuid() == 0:
            binary = shutil.copy(BIN, work / "fastapi-exporter")
            nobody = pwd.getpwnam("nobody")
            as_nobody = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        return subprocess.run([binary, f"--config.file={work}/config.yaml", "--oneshot"],
                              capture_output=True, text=True, timeout=120, **as_nobody)

    good = run(["good"])
    assert good.returncode == 0, good.stderr
    assert "--oneshot did not read" not in good.stderr

    result = run(["good", "missing", "folder", "secret", "journal"])
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "--oneshot did not read" in line]
    assert len(errors) == 4, result.stderr
    assert any(f"service missing: {work}/missing.log: no file matches yet" in e for e in errors)
    assert any(f"service folder: {work}/nofolder/*.log: folder {work}/nofolder: "
               "No such file or directory" in e for e in errors), errors
    assert any(f"service secret: {work}/secret.log: Permission denied" in e for e in errors)
    assert any(f"service journal: {work}/nojournal: No such file or directory" in e
               for e in errors), errors
    samples = parse_samples(result.stdout)
    for status, count in (("200", 1), ("500", 1)):
        assert samples[("fastapi_requests_total", frozenset({
            ("service", "good"), ("method", "GET"), ("path", "/api/users/{user_id}"),
            ("status_code", status)}))] == count
    assert not any(name == "fastapi_requests_total" and ("service", "secret") in labels
                   for (name, labels) in samples)
