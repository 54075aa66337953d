"""The real daemon against the odd shapes of real logs and real rotations (issue #10): a
byte-order mark, a last line without its newline, a re-created folder, a writer without
O_APPEND under logrotate's copytruncate, and an app that never reopens its log."""

import json
import os
import subprocess
import threading
import time

from exporter import BIN, Exporter, parse_samples, wait_until
from test_access_logs import config, json_line, per_path, requests_total, self_metric

BOM = b"\xef\xbb\xbf"


def uvicorn_line(i, status=200):
    return f'INFO:     127.0.0.1:5000 - "GET /api/users/{i} HTTP/1.1" {status} OK\n'


def nginx_line(i, status=200):
    return (f'10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/{i} HTTP/1.1" '
            f'{status} 12 "-" "curl/8"\n')


def docker_line(i, status=200):
    return json.dumps({"log": uvicorn_line(i, status), "stream": "stdout",
                       "time": "2026-11-11T12:45:18.240393806Z"}) + "\n"


def cri_line(i, status=200):
    return "2026-11-11T12:45:18.240393806Z stdout F " + uvicorn_line(i, status)


def copytruncate_config(tmp_path, log):
    """A logrotate config that rotates `log` by copytruncate."""
    config = tmp_path / "logrotate.conf"
    config.write_text(f"{log} {{\n  copytruncate\n  rotate 10\n  missingok\n}}\n")
    os.chmod(config, 0o644)  # logrotate refuses a config others can write
    return config


def wait_for_the_log_open(exporter):
    """The default start_at is `end`: lines written before the exporter has opened the log
    would be skipped on purpose. A slow start (sanitizer builds) must not race the writer."""
    wait_until(lambda: self_metric(exporter, "fastapi_exporter_log_files") >= 1,
               what="the log opened")


class RedirectWriter:
    """Numbered JSON lines written the way `uvicorn ... > access.log` writes: the file opened
    without O_APPEND, so after a copytruncate the writer goes on at its old offset."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.written = 0

    def write(self, count):
        os.write(self.fd, "".join(json_line(self.written + i) for i in range(count)).encode())
        self.written += count

    def close(self):
        os.close(self.fd)


def test_oneshot_byte_order_mark_and_last_line_without_newline_in_every_format(tmp_path):
    """Each file starts with a BOM and ends without a newline: every request is counted."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = 50
    makers = {"json": json_line, "uvicorn": uvicorn_line, "nginx": nginx_line,
              "docker": docker_line, "cri": cri_line}
    for name, make in makers.items():
        text = "".join(make(i, status=500 if i % 10 == 0 else 200) for i in range(lines))
        (logs / f"{name}.log").write_bytes(BOM + text.rstrip("\n").encode())
    # The other shapes: a BOM and a newline at the end; no BOM, no newline at the end; CRLF.
    (logs / "json-bom-newline.log").write_bytes(BOM + json_line(1).encode())
    (logs / "json-crlf.log").write_bytes((json_line(2).rstrip("\n") + "\r\n"
                                          + json_line(3).rstrip("\n")).encode())
    config_text = f"""
positions_file: {tmp_path}/positions.yaml
services:
  - name: json
    access_logs:
      - {{path: '{logs}/json.log', format: json}}
      - {{path: '{logs}/json-*.log', format: json}}
  - name: uvicorn
    access_logs: [{{path: '{logs}/uvicorn.log', format: uvicorn}}]
  - name: nginx
    access_logs: [{{path: '{logs}/nginx.log', format: nginx}}]
  - name: docker
    access_logs: [{{path: '{logs}/docker.log', format: uvicorn, envelope: docker}}]
  - name: cri
    access_logs: [{{path: '{logs}/cri.log', format: uvicorn, envelope: cri}}]
"""
    (tmp_path / "config.yaml").write_text(config_text)
    result = subprocess.run([BIN, f"--config.file={tmp_path}/config.yaml", "--oneshot"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    samples = parse_samples(result.stdout)

    def requests(service, status):
        return samples.get(("fastapi_requests_total", frozenset({
            ("service", service), ("method", "GET"), ("path", "/api/users/{id}"),
            ("status_code", status)})), 0)

    for service in makers:
        assert requests(service, "500") == lines // 10, service
        assert requests(service, "200") == lines - lines // 10 + (3 if service == "json" else 0), \
            service
    errors = sum(value for (name, _), value in samples.items()
                 if name == "fastapi_exporter_log_parse_errors_total")
    assert errors == 0, result.stdout


def test_daemon_reads_byte_order_mark_files_and_drained_rotated_last_lines(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    with Exporter(tmp_path, config(tmp_path, f"{logs}/*.log")) as exporter:
        assert exporter.value("fastapi_exporter_log_tailer_running") == 1
        assert exporter.value("fastapi_exporter_log_tailer_polling") == 0
        # Appears after the start, with a BOM (read from its start).
        with open(log, "wb") as f:
            f.write(BOM + "".join(json_line(i) for i in range(10)).encode())
            f.write(json_line(10).rstrip("\n").encode())  # no newline yet: waits
            f.flush()
            wait_until(lambda: requests_total(exporter) == 10, what="10 lines counted")
            # Rotated away without ever getting its newline; the new file gets data.
            os.rename(log, logs / "access.log.1")
        with open(log, "wb") as f:
            f.write(BOM + "".join(json_line(i) for i in range(20, 25)).encode())
        # Drained and closed (the writers moved on): its held bytes are one more line.
        wait_until(lambda: requests_total(exporter) == 16, timeout=30,
                   what="the rotated file's last line counted when it is closed")
        wait_until(lambda: self_metric(exporter, "fastapi_exporter_log_files") == 1,
                   timeout=30, what="the rotated file closed")
        assert requests_total(exporter) == 16
        # Truncated and written again from 0 with a BOM.
        os.truncate(log, 0)
        with open(log, "ab") as f:
            f.write(BOM + json_line(30).encode())
        wait_until(lambda: requests_total(exporter) == 17, what="line after truncation counted")
        assert self_metric(exporter, "fastapi_exporter_log_parse_errors_total") == 0
        assert self_metric(exporter, "fastapi_exporter_log_files_abandoned_total") == 0


def test_recreated_folder_is_followed(tmp_path):
    """A deploy moves app/ to app.previous/ and creates app/logs/access.log again."""
    app = tmp_path / "app"
    (app / "logs").mkdir(parents=True)
    log = app / "logs" / "access.log"
    log.write_text("")
    with Exporter(tmp_path, config(tmp_path, f"{app}/logs/access.log")) as exporter:
        with open(log, "a") as f:
            f.write("".join(json_line(i) for i in range(5)))
        wait_until(lambda: requests_total(exporter) == 5, what="first 5 counted")
        for deploy in range(3):
            os.rename(app, tmp_path / f"app.previous{deploy}")
            (app / "logs").mkdir(parents=True)
            with open(log, "a") as f:
                f.write("".join(json_line(i) for i in range(7)))
            expected = 5 + 7 * (deploy + 1)
            wait_until(lambda: requests_total(exporter) == expected, timeout=30,
                       what=f"the new file of deploy {deploy} counted")
        time.sleep(1.5)
        assert requests_total(exporter) == 5 + 3 * 7
        assert self_metric(exporter, "fastapi_exporter_log_parse_errors_total") == 0


def test_redirect_writer_under_logrotate_copytruncate(tmp_path):
    """`uvicorn ... > access.log`: the writer has no O_APPEND and keeps its offset across
    logrotate's copytruncate, so the live file starts with NULs. Lines written before each
    copy and not read yet, and lines written past the read position before the exporter
    looks again, are all counted once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    rotate_config = copytruncate_config(tmp_path, log)
    writer = RedirectWriter(log)  # what `>` does

    try:
        with Exporter(tmp_path, config(tmp_path, f"{log}")) as exporter:
            wait_for_the_log_open(exporter)
            writer.write(500)
            wait_until(lambda: requests_total(exporter) == writer.written, what="first lines")
            for _ in range(4):
                writer.write(100)  # very likely still unread when logrotate copies
                subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "logrotate.state"),
                                str(rotate_config)], check=True, timeout=60)
                assert os.path.getsize(log) == 0
                writer.write(2000)  # past the old read position at once
                wait_until(lambda: requests_total(exporter) == writer.written, timeout=30,
                           what=f"{writer.written} lines counted")
            time.sleep(1.5)
            assert requests_total(exporter) == writer.written == 500 + 4 * 2100
            assert self_metric(exporter, "fastapi_exporter_log_truncations_total") == 4
            assert self_metric(exporter, "fastapi_exporter_log_parse_errors_total") == 0
            assert self_metric(exporter, "fastapi_exporter_log_unread_bytes") == 0
    finally:
        writer.close()
    with open(log, "rb") as f:
        assert f.read(1) == b"\0"  # the shape this test is about


def word(n):
    """A path segment per line number that the route normalizer keeps as it is."""
    letters = ""
    while True:
        letters = chr(ord("a") + n % 26) + letters
        n //= 26
        if n == 0:
            return letters


def test_redirect_writer_under_concurrent_logrotate_copytruncate(tmp_path):
    """The same with the writer going on while logrotate runs, as on a real deployment. Each
    line has its own path, so each is checked: every line that is in a file (the copies
    included) is counted exactly once, and none twice. The lines written between logrotate's
    copy and its truncation are in no file (logrotate's own caveat): counted once if the
    exporter read them in time, else lost."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    rotate_config = copytruncate_config(tmp_path, log)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    stop = threading.Event()
    written = 0

    def keep_writing():  # one line per write(), as a logging handler does
        nonlocal written
        while not stop.is_set():
            os.write(fd, json_line(written, path=f"/s/{word(written)}").encode())
            written += 1
            if written % 10 == 0:
                time.sleep(0.01)

    try:
        # Debug logging records every truncation and copy found, for a failure's post-mortem.
        with Exporter(tmp_path, config(tmp_path, f"{log}", "    max_paths: 100000\n"),
                      ["--log.level=debug"]) as exporter:
            wait_for_the_log_open(exporter)
            thread = threading.Thread(target=keep_writing)
            thread.start()
            try:
                for _ in range(5):
                    time.sleep(0.7)
                    subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "logrotate.state"),
                                    str(rotate_config)], check=True, timeout=60)
                time.sleep(0.7)
            finally:
                stop.set()
                thread.join()
            # The lines a perfect reader must count: the complete lines in the files.
            in_files = set()
            for path in logs.iterdir():
                for line in path.read_bytes().replace(b"\0", b"").split(b"\n")[:-1]:
                    in_files.add(json.loads(line)["endpoint"])
            assert len(in_files) > written * 0.9, (len(in_files), written)

            def missing():
                counted = per_path(exporter)
                return [p for p in in_files if counted.get(p) != 1]
            try:
                wait_until(lambda: not missing(), timeout=30, interval=0.5,
                           what=f"each of the {len(in_files)} lines in the files counted")
            except AssertionError as error:
                raise AssertionError(f"{error}: {len(missing())} not counted once, e.g. "
                                     f"{sorted(missing())[:10]}; {written} written") from None
            time.sleep(1.5)
            counted = per_path(exporter)
            assert not missing()
            assert {p: n for p, n in counted.items() if n != 1} == {}  # none twice
            assert len(in_files) <= len(counted) <= written
            assert self_metric(exporter, "fastapi_exporter_log_truncations_total") == 5
            assert self_metric(exporter, "fastapi_exporter_log_parse_errors_total") == 0
    finally:
        os.close(fd)


def test_create_rotation_with_an_app_that_never_reopens_its_log(tmp_path):
    """uvicorn's stdout redirected to the file: after `create` rotation the app writes on to
    the renamed file, with pauses longer than the exporter's rotate wait; nothing is lost.
    When the new file gets data from someone else, the old one is closed while the app still
    has it open: that is logged and counted."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    writer = RedirectWriter(log)  # what `>` does

    try:
        with Exporter(tmp_path, config(tmp_path, f"{log}")) as exporter:
            wait_for_the_log_open(exporter)
            writer.write(10)
            wait_until(lambda: requests_total(exporter) == 10, what="first 10")
            os.rename(log, logs / "access.log.1")  # logrotate's create
            open(log, "w").close()
            writer.write(10)
            wait_until(lambda: requests_total(exporter) == 20, what="20 counted")
            time.sleep(12)  # quieter than the rotate wait, and past a periodic rescan
            writer.write(10)
            wait_until(lambda: requests_total(exporter) == 30, timeout=30, what="30 counted")
            assert self_metric(exporter, "fastapi_exporter_log_files_abandoned_total") == 0
            # Another writer fills the new file: the writers moved on, as far as the exporter
            # can tell; the old file is closed, with the app still writing to it: said so.
            with open(log, "a") as f:
                f.write(json_line(99))
            wait_until(lambda: self_metric(exporter,
                                           "fastapi_exporter_log_files_abandoned_total") == 1,
                       timeout=30, what="the abandoned file reported")
            assert requests_total(exporter) == 31
    finally:
        writer.close()
    assert "open for writing" in exporter.log_path.read_text()


def test_logrotate_copytruncate_while_the_exporter_is_stopped(tmp_path):
    """The nightly rotation runs while the exporter is down (copytruncate, compress,
    delaycompress): the lines written after the saved position are counted from the copy,
    the copy's older lines are not counted again, and neither is anything after a restart."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "access.log"
    rotate_config = tmp_path / "logrotate.conf"
    rotate_config.write_text(f"{log} {{\n  copytruncate\n  rotate 3\n  compress\n"
                             "  delaycompress\n  missingok\n}\n")
    os.chmod(rotate_config, 0o644)

    def rotate():
        subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "logrotate.state"),
                        str(rotate_config)], check=True, timeout=60)

    written = 0

    def write(count):
        nonlocal written
        with open(log, "a") as f:
            f.write("".join(json_line(written + i) for i in range(count)))
        written += count

    body = config(tmp_path, f"{log}")
    log.touch()
    with Exporter(tmp_path, body) as exporter:
        wait_for_the_log_open(exporter)
        write(1000)
        wait_until(lambda: requests_total(exporter) == 1000, what="first lines")
    write(5)  # while stopped, before the rotation: only in the copy
    rotate()
    write(3)
    with Exporter(tmp_path, body) as exporter:
        wait_until(lambda: requests_total(exporter) == 8, what="8 lines counted")
        time.sleep(1.0)
        assert requests_total(exporter) == 8
        write(2)
        rotate()  # access.log.1 -> access.log.2.gz while running
        write(4)
        wait_until(lambda: requests_total(exporter) == 14, what="14 lines counted")
        time.sleep(1.0)
        assert requests_total(exporter) == 14
    assert os.path.exists(f"{log}.2.gz")


def test_positions_that_cannot_be_saved_are_said_at_start(tmp_path):
    """A positions_file where it cannot be written (here under a regular file, which stops
    root too) is an error in the log at start, not at the first save minutes later, and
    counts in fastapi_exporter_log_positions_save_errors_total; lines are still counted."""
    log = tmp_path / "access.log"
    log.touch()
    (tmp_path / "not-a-folder").write_text("")
    body = config(tmp_path, f"{log}").replace(f"{tmp_path}/state/positions.yaml",
                                              f"{tmp_path}/not-a-folder/positions.yaml")
    with Exporter(tmp_path, body) as exporter:
        assert self_metric(exporter, "fastapi_exporter_log_positions_save_errors_total") == 1
        wait_for_the_log_open(exporter)
        with open(log, "a") as f:
            f.write(json_line(1))
        wait_until(lambda: requests_total(exporter) == 1, what="the line counted")
    text = exporter.log_path.read_text()
    assert (f"cannot write {tmp_path}/not-a-folder/positions.yaml.tmp: Not a directory: "
            "positions cannot be saved, so after a restart every access log is read from "
            "start_at again") in text
    assert "positions not saved, the next start reads from start_at" in text
