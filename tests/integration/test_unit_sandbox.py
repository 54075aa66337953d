"""The systemd unit's system-call filter against the calls the daemon really makes.

SystemCallFilter= in systemd/fastapi-exporter.service forbids every call outside its sets
(with EPERM): a call the daemon needs and the filter forbids would break it only when
installed. The daemon runs under strace through every path (process and access-log
collection, HTTPS with basic auth, a scrape, a reload, a stop) and each call it made is
checked against the sets, as systemd-analyze expands them."""

import os
import re
import shutil
import signal
import subprocess

import pytest

from exporter import SOURCE, Exporter, descendants, wait_until
from test_journal import JOURNAL_REMOTE, Journal
from test_wire import has_net_raw
from test_web_security import (PASSWORD, https_get, make_ca, make_cert, probe_over_https,
                               web_config)

UNIT = os.path.join(SOURCE, "systemd", "fastapi-exporter.service")


def expand(name, cache={}):
    """The system calls of a set such as @system-service, groups expanded."""
    if not name.startswith("@"):
        return {name}
    if name not in cache:
        out = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                             capture_output=True, text=True).stdout
        calls = set()
        for line in out.splitlines()[1:]:
            word = line.strip()
            if word and not word.startswith("#"):
                calls |= expand(word)
        cache[name] = calls
    return cache[name]


def allowed_by_unit():
    allowed, denied = set(), set()
    for line in open(UNIT):
        match = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
        if match:
            calls = set().union(*(expand(word) for word in match.group(2).split()))
            (denied if match.group(1) else allowed).update(calls)
    assert allowed, "the unit has no SystemCallFilter allow list"
    return allowed - denied


@pytest.mark.skipif(not shutil.which("strace") or not shutil.which("systemd-analyze") or
                    not os.access(JOURNAL_REMOTE, os.X_OK),
                    reason="needs strace, systemd-analyze and systemd-journal-remote")
def test_the_daemon_makes_no_call_its_unit_forbids(tmp_path):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_ca(pki, "ca")
    make_cert(pki, "server", "ca")
    web = tmp_path / "web.yml"
    web.write_text(web_config(pki))
    log = tmp_path / "access.log"
    log.write_text("")
    # A journal source too: sd-journal's calls (mmap of the files, inotify) go through the
    # same filter.
    journal = Journal(tmp_path)
    journal_file = tmp_path / "journal" / "system.journal"
    journal_file.parent.mkdir()
    journal.append(journal_file, [("self.service", "before the start")])
    config = f"""positions_file: {tmp_path}/positions.yaml
services:
  - name: self
    process:
      pid: {os.getpid()}
      children: false
    access_logs:
      - path: {log}
      - journal: {{unit: self.service, path: {journal_file.parent}}}
        start_at: beginning
"""
    trace = tmp_path / "strace.txt"
    exporter = Exporter(tmp_path, config, [f"--web.config.file={web}"])
    # The wire source's capture path too (as root: libpcap, its AF_PACKET ring, the filter),
    # on the exporter's own port, where the scrapes below go.
    exporter.config_path.write_text(config + f"""  - name: net
    wire:
      ports: [{exporter.port}]
""")
    exporter.args = ["strace", "-f", "-qq", "-o", str(trace), *exporter.args]
    # LeakSanitizer cannot run under ptrace (it aborts at exit); the other tests check leaks.
    asan_options = os.environ.get("ASAN_OPTIONS", "")
    exporter.env = dict(os.environ, ASAN_OPTIONS=f"{asan_options}:detect_leaks=0".lstrip(":"))
    probe_over_https(exporter, pki)
    exporter.start()
    daemon = descendants(exporter.process.pid)[1]  # strace's child
    try:
        with open(log, "a") as f:
            f.write('{"endpoint":"/a/1","method":"GET","status_code":200,"duration_ms":5}\n')
        journal.append(journal_file, [("self.service", '{"endpoint":"/j/1","method":"GET",'
                                                       '"status_code":200,"duration_ms":5}')])

        def scraped():
            status, _, body, _ = https_get(exporter.port, "/metrics", pki, "prometheus", PASSWORD)
            return status == 200 and b'process_processes{service="self"} 1' in body and \
                b"fastapi_requests_total{" in body and re.search(
                    rb'fastapi_exporter_log_lines_total\{service="self",source="journal:[^}]*\} 2',
                    body) and \
                (not has_net_raw() or b'fastapi_exporter_wire_capture_up{service="net"} 1' in body
                 and b'fastapi_exporter_wire_packets_total{service="net"} 0' not in body)
        wait_until(scraped, timeout=30, what="a full scrape")
        os.kill(daemon, signal.SIGHUP)
        wait_until(lambda: "reloaded" in exporter.log_path.read_text(), what="reload")
        os.kill(daemon, signal.SIGTERM)
        assert exporter.process.wait(timeout=30) == 0  # strace exits with its tracee's status
    finally:
        if exporter.process.poll() is None:
            os.kill(daemon, signal.SIGKILL)  # strace would only detach on a signal of its own
        exporter.stop()
    used = set(re.findall(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", trace.read_text(), re.M))
    assert {"openat", "read", "accept", "inotify_add_watch"} <= used, sorted(used)  # read right
    assert sorted(used - allowed_by_unit()) == []
