"""The journal source through the shipped daemon (issue #12): real journal files written by
systemd-journal-remote, followed while entries are appended, across a SIGTERM mid-batch and a
restart and a rotated journal file, a lost cursor, --oneshot against the same lines in a plain
file, and the system journal (no path) read from /run/log/journal where no journald runs."""

import collections
import os
import pathlib
import re
import signal
import struct
import subprocess
import time
import uuid

import pytest

from exporter import BIN, Exporter, parse_samples, wait_until

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
JOURNALD_SOCKET = "/run/systemd/journal/socket"
MACHINE_ID = pathlib.Path("/etc/machine-id")

pytestmark = pytest.mark.skipif(not os.access(JOURNAL_REMOTE, os.X_OK),
                                reason="systemd-journal-remote is not installed")

METHODS = ["GET", "POST", "DELETE"]
STATUSES = [200, 201, 404, 500]


class Journal:
    """Appends entries to journal files with systemd-journal-remote."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.realtime = int(time.time() * 1e6)

    def append(self, file, entries):
        """entries: [(unit, message)]."""
        export = bytearray()
        for unit, message in entries:
            self.realtime += 1000
            data = message.encode()
            export += f"__REALTIME_TIMESTAMP={self.realtime}\n_SYSTEMD_UNIT={unit}\n".encode()
            export += b"MESSAGE\n" + struct.pack("<Q", len(data)) + data + b"\n\n"
        path = self.tmp_path / "export.txt"
        path.write_bytes(bytes(export))
        subprocess.run([JOURNAL_REMOTE, f"--output={file}", str(path)], check=True,
                       capture_output=True, timeout=60)


class Requests:
    """Uvicorn access lines for known requests, with the counts they must give."""

    def __init__(self, unit="api.service"):
        self.unit = unit  # the unit whose entries are counted
        self.expected = collections.Counter()
        self.n = 0

    def make(self, count, unit=None, method=None, status=None):
        unit = unit or self.unit
        entries = []
        for _ in range(count):
            self.n += 1
            method_n, status_n = method or METHODS[self.n % 3], status or STATUSES[self.n % 4]
            entries.append((unit, f'INFO:     127.0.0.1:{40000 + self.n % 1000} - '
                                  f'"{method_n} /api/users/{self.n} HTTP/1.1" {status_n} X'))
            if unit == self.unit:
                self.expected[(method_n, "/api/users/{user_id}", str(status_n))] += 1
            if self.n % 10 == 0:  # the server's own lines, in the same stream
                entries.append((unit, f"INFO:     Started server process [{self.n}]"))
        return entries


def oneshot(tmp_path):
    """--oneshot over tmp_path/config.yaml: its samples (it must exit 0)."""
    result = subprocess.run([BIN, f"--config.file={tmp_path}/config.yaml", "--oneshot"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return parse_samples(result.stdout)


def counts(samples, service):
    found = collections.Counter()
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if name == "fastapi_requests_total" and labels["service"] == service and value:
            found[(labels["method"], labels["path"], labels["status_code"])] += int(value)
    return found


def self_metric(samples, name, service, **labels):
    return sum(v for (n, l), v in samples.items()
               if n == name and ("service", service) in l
               and all((k, val) in l for k, val in labels.items()))


CONFIG = """positions_file: {tmp}/state/positions.yaml
services:
  - name: api
    access_logs:
      - journal: {{unit: api.service, path: {tmp}/journal}}
        format: uvicorn
        start_at: beginning
    routes: ['/api/users/{{user_id}}']
"""


def test_follows_appends_and_rotation_across_sigterm_and_restart_counting_each_entry_once(
        tmp_path):
    folder = tmp_path / "journal"
    folder.mkdir()
    journal, requests = Journal(tmp_path), Requests()
    current = folder / "system.journal"
    first = requests.make(200) + requests.make(50, unit="other.service")
    journal.append(current, first)
    exporter = Exporter(tmp_path, CONFIG.format(tmp=tmp_path))

    def api_lines(entries):
        return sum(1 for unit, _ in entries if unit == "api.service")

    def counted():
        return self_metric(exporter.scrape(), "fastapi_exporter_log_lines_total", "api")

    with exporter:
        total = api_lines(first)
        wait_until(lambda: counted() == total, what="the entries written before the start")
        batch = requests.make(300)
        journal.append(current, batch)
        total += api_lines(batch)
        wait_until(lambda: counted() == total, what="entries appended while following")
        first_run = counts(exporter.scrape(), "api")
        # SIGTERM in the middle of a batch: its first chunks are written while the daemon
        # reads them, the rest while it is stopped. The batch is all one request kind, so
        # that the part the first run counted (its shutdown line says how many) is known by
        # kind too.
        put = ("PUT", "/api/users/{user_id}", "202")
        chunks = [requests.make(100, method="PUT", status=202) for _ in range(20)]
        journal.append(current, chunks[0])
        wait_until(lambda: counted() > total, what="the first chunk of the batch being read")
        # No wait for these two: the daemon may be reading them when the SIGTERM comes.
        for chunk in chunks[1:3]:
            journal.append(current, chunk)
        assert exporter.stop() == 0
    first_run_total = int(re.search(r"service api: (\d+) requests",
                                    exporter.log_path.read_text()).group(1))
    first_run[put] = first_run_total - sum(first_run.values())
    assert 0 < first_run[put] < requests.expected[put] == 2000
    for chunk in chunks[3:]:
        journal.append(current, chunk)
    # Written while stopped, to the current file and to a new one (journald rotating).
    journal.append(current, requests.make(150))
    journal.append(folder / "system@0001-0002.journal",
                   requests.make(150) + requests.make(30, unit="other.service"))
    exporter.log_path.unlink()
    with exporter:
        # journald keeps a line with a NUL byte as a blob: skipped, not parsed.
        journal.append(folder / "system@0001-0002.journal",
                       requests.make(50) + [("api.service", 'INFO:     1.2.3.4:5 - "GET '
                                             '/api/users/1 HTTP/1.1" 200 OK\x00')]
                       + requests.make(50))
        wait_until(lambda: self_metric(exporter.scrape(), "fastapi_exporter_log_requests_total",
                                       "api") == sum(requests.expected.values()) - first_run_total,
                   timeout=20, what="the entries written while stopped and after the restart")
        # A reload that adds a service rebuilds the reader: the journal source goes on from
        # its cursor, its counters kept.
        other_log = tmp_path / "other.log"
        other_log.write_text('INFO:     1.2.3.4:5 - "GET /x HTTP/1.1" 200 OK\n')
        exporter.config_path.write_text(CONFIG.format(tmp=tmp_path) + f"""  - name: other
    access_logs: [{{path: {other_log}, format: uvicorn, start_at: beginning}}]
""")
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: self_metric(exporter.scrape(), "fastapi_exporter_log_requests_total",
                                       "other") == 1, what="the reload")
        batch = requests.make(100)
        journal.append(folder / "system@0001-0002.journal", batch)
        wait_until(lambda: self_metric(exporter.scrape(), "fastapi_exporter_log_requests_total",
                                       "api") == sum(requests.expected.values()) - first_run_total,
                   what="entries appended after the reload")
        samples = exporter.scrape()
        assert first_run + counts(samples, "api") == requests.expected
        assert self_metric(samples, "fastapi_exporter_log_journal_cursor_lost_total", "api") == 0
        for reason in ["binary_message", "missing_field", "line_too_long"]:
            assert self_metric(samples, "fastapi_exporter_log_parse_errors_total", "api",
                               reason=reason) == (reason == "binary_message")
        assert self_metric(samples, "fastapi_exporter_log_journal_lag_seconds", "api") == 0
    # The counters start from zero on a restart: the exact totals above were counted across
    # two runs, joined by the cursor saved with the file positions.
    assert "journals:" in (tmp_path / "state" / "positions.yaml").read_text()


@pytest.mark.parametrize("start_at", ["beginning", "end"])
def test_a_lost_cursor_is_counted_and_logged_and_reading_starts_as_start_at_says(
        tmp_path, start_at):
    """The journal file holding the saved cursor is deleted while the daemon is stopped (a
    vacuum): the restart warns, counts it once, and reads the remaining journal from its
    oldest entry (beginning) or only what comes after the start (end)."""
    folder = tmp_path / "journal"
    folder.mkdir()
    journal, requests = Journal(tmp_path), Requests()
    exporter = Exporter(tmp_path, CONFIG.format(tmp=tmp_path).replace(
        "start_at: beginning", f"start_at: {start_at}"))
    from_beginning = start_at == "beginning"

    def write(file, count):
        """Appends count requests (and the server's own lines); returns their counts."""
        before = requests.expected.copy()
        journal.append(file, requests.make(count))
        return requests.expected - before

    vacuumed = folder / "system@0001-0001.journal"
    before_start = write(vacuumed, 100)
    with exporter:
        while_running = write(vacuumed, 100)
        expected = while_running + (before_start if from_beginning else collections.Counter())
        wait_until(lambda: counts(exporter.scrape(), "api") == expected,
                   what="the first run's entries")
        assert self_metric(exporter.scrape(), "fastapi_exporter_log_journal_cursor_lost_total",
                           "api") == 0
    assert "no longer in the journal" not in exporter.log_path.read_text()
    assert "journals:" in (tmp_path / "state" / "positions.yaml").read_text()
    vacuumed.unlink()
    current = folder / "system.journal"
    while_stopped = write(current, 150)
    exporter.log_path.unlink()
    with exporter:
        after_start = write(current, 50)
        expected = after_start + (while_stopped if from_beginning else collections.Counter())
        # The entries written while stopped come first in the file: had start_at end read
        # them, they would be counted by the time the later ones are.
        wait_until(lambda: counts(exporter.scrape(), "api") == expected,
                   what="the entries after the lost cursor")
        samples = exporter.scrape()
        assert counts(samples, "api") == expected
        assert self_metric(samples, "fastapi_exporter_log_journal_cursor_lost_total",
                           "api") == 1
    log = exporter.log_path.read_text()
    assert log.count("the saved cursor's entry is no longer in the journal") == 1, log
    assert f"reading from the {'oldest entry' if from_beginning else 'next new entry'}" in log


def test_oneshot_over_a_journal_file_counts_as_over_the_same_lines_in_a_plain_file(tmp_path):
    requests = Requests()
    entries = requests.make(3000)
    lines = [message for _, message in entries]
    lines += ['INFO:     1.2.3.4:5 - "GET /api/users/1 HTTP/1.1" abc OK',  # broken: invalid_status
              '{"not": "uvicorn"}']
    entries += [("api.service", line) for line in lines[-2:]]
    (tmp_path / "api.log").write_text("".join(line + "\n" for line in lines))
    Journal(tmp_path).append(tmp_path / "api.journal",
                             entries + [("other.service", lines[0])])
    (tmp_path / "config.yaml").write_text(f"""positions_file: {tmp_path}/positions.yaml
services:
  - name: file
    access_logs: [{{path: {tmp_path}/api.log, format: uvicorn}}]
    routes: ['/api/users/{{user_id}}']
  - name: journal
    access_logs:
      - journal: {{unit: api.service, path: {tmp_path}/api.journal}}
        format: uvicorn
    routes: ['/api/users/{{user_id}}']
""")
    samples = oneshot(tmp_path)
    assert counts(samples, "journal") == requests.expected
    assert counts(samples, "file") == requests.expected
    for name in ["fastapi_exporter_log_lines_total", "fastapi_exporter_log_requests_total"]:
        assert self_metric(samples, name, "journal") == self_metric(samples, name, "file") > 0
    for reason in ["not_access_line", "invalid_status", "no_match", "binary_message"]:
        assert self_metric(samples, "fastapi_exporter_log_parse_errors_total", "journal",
                           reason=reason) == \
            self_metric(samples, "fastapi_exporter_log_parse_errors_total", "file", reason=reason)
    assert self_metric(samples, "fastapi_exporter_log_lines_total", "journal") == len(lines)


@pytest.mark.skipif(not os.path.exists(JOURNALD_SOCKET),
                    reason="no running journald on this machine")
def test_oneshot_reads_the_running_system_journal(tmp_path):
    """Where journald runs: entries sent with systemd-cat under an identifier of this test's
    own are read from the system journal (no path), and nothing else is."""
    identifier = f"fe-test-{os.getpid()}-{time.monotonic_ns()}"
    lines = [f'INFO:     127.0.0.1:1 - "GET /api/users/{i} HTTP/1.1" 200 OK' for i in range(5)]
    subprocess.run(["systemd-cat", "-t", identifier], input="\n".join(lines) + "\n", text=True,
                   check=True, timeout=30)
    (tmp_path / "config.yaml").write_text(f"""positions_file: {tmp_path}/positions.yaml
services:
  - name: api
    access_logs:
      - journal: {{syslog_identifier: {identifier}}}
        format: uvicorn
    routes: ['/api/users/{{user_id}}']
""")

    def counted():
        return counts(oneshot(tmp_path), "api")

    # journald stores what systemd-cat sent asynchronously.
    wait_until(lambda: sum(counted().values()) == 5, timeout=15, interval=0.5,
               what="the entries in the system journal")
    assert counted() == {("GET", "/api/users/{user_id}", "200"): 5}


@pytest.mark.skipif(os.path.exists(JOURNALD_SOCKET),
                    reason="journald runs here: test_oneshot_reads_the_running_system_journal "
                           "covers the system journal, and no test writes into a live one")
@pytest.mark.skipif(os.geteuid() != 0, reason="writing to /run/log/journal needs root")
def test_oneshot_without_a_path_reads_the_system_journal_where_no_journald_runs(tmp_path):
    """The config the README recommends, `journal: {unit: X}` and no path, opens the system
    journal (sd_journal_open, SD_JOURNAL_LOCAL_ONLY), which CI has no journald to fill: a
    journal file written by systemd-journal-remote into the local machine's volatile journal
    folder, /run/log/journal/<machine-id>/, stands for journald's, and its entries of the unit
    are counted exactly. Everything the test creates is removed, whatever happens."""
    created = []  # removed in reverse order: files before their folders
    original_id = MACHINE_ID.read_bytes() if MACHINE_ID.exists() else None
    try:
        if original_id is None or not re.fullmatch(rb"[0-9a-f]{32}\n?", original_id):
            # A container image may have none (or "uninitialized"): LOCAL_ONLY then has no
            # machine folder to read, and journal-remote no machine to stamp in the file.
            MACHINE_ID.write_text(uuid.uuid4().hex + "\n")
        folder = pathlib.Path("/run/log/journal") / MACHINE_ID.read_text().strip()
        for path in [folder.parent.parent, folder.parent, folder]:
            if not path.exists():
                path.mkdir()
                created.append(path)
        unit = f"fe-test-{os.getpid()}-{time.monotonic_ns()}.service"
        requests = Requests(unit)
        entries = requests.make(200) + requests.make(40, unit="other.service")
        journal_file = folder / f"{unit}.journal"
        created.append(journal_file)
        Journal(tmp_path).append(journal_file, entries)
        messages = [message for entry_unit, message in entries if entry_unit == unit]
        # journalctl (LOCAL_ONLY by default too) finds them in the system journal: the file
        # is where sd-journal looks without a path, not merely a file the daemon was shown.
        shown = subprocess.run(["journalctl", "--no-pager", "-o", "cat", f"_SYSTEMD_UNIT={unit}"],
                               capture_output=True, text=True, check=True, timeout=60)
        assert shown.stdout.splitlines() == messages
        (tmp_path / "config.yaml").write_text(f"""positions_file: {tmp_path}/positions.yaml
services:
  - name: api
    access_logs:
      - journal: {{unit: {unit}}}
        format: uvicorn
    routes: ['/api/users/{{user_id}}']
""")
        samples = oneshot(tmp_path)
        assert counts(samples, "api") == requests.expected
        assert sum(requests.expected.values()) == 200
        # The source with no path: its label names the match alone.
        assert self_metric(samples, "fastapi_exporter_log_lines_total", "api",
                           source=f"journal:_SYSTEMD_UNIT={unit}") == len(messages)
        assert self_metric(samples, "fastapi_exporter_log_parse_errors_total", "api",
                           reason="not_access_line") == len(messages) - 200
    finally:
        for path in reversed(created):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        if original_id is None:
            MACHINE_ID.unlink(missing_ok=True)
        elif MACHINE_ID.read_bytes() != original_id:
            MACHINE_ID.write_bytes(original_id)
