"""The real daemon watching real processes it did not start, checked against /proc read here."""

import os
import shutil
import time

import pytest

from exporter import (Exporter, descendants, kill_tree, read_proc_rss, spawn_python,
                      wait_until)

# A parent that starts one child running CHILD_CODE and then waits forever.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]] + sys.argv[2:])
while True:
    time.sleep(1)
"""

# Burns CPU_SECONDS of CPU, writes the CPU it used to a file, then idles.
BURNER = """
import sys, time
seconds, report = float(sys.argv[1]), sys.argv[2]
time.sleep(0.5)                      # let the test take its first scrape
start = time.process_time()
while time.process_time() - start < seconds:
    pass
with open(report, "w") as f:
    f.write(str(time.process_time()))
while True:
    time.sleep(1)
"""

# Holds a known number of bytes of resident memory.
HOLDER = """
import sys, time
data = b"x" * int(sys.argv[1])
with open(sys.argv[2], "w") as f:
    f.write("ready")
while True:
    time.sleep(1)
"""

# Replaces its busy child every REPLACE_EVERY seconds (kill + wait, as gunicorn's
# max_requests does), ROUNDS times; then reports its own and its reaped children's CPU.
SUPERVISOR = """
import os, signal, subprocess, sys, time
rounds, every, report = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
for _ in range(rounds):
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(every)
    child.kill()
    child.wait()
t = os.times()
with open(report, "w") as f:
    f.write(str(t.user + t.system + t.children_user + t.children_system))
while True:
    time.sleep(1)
"""


def service_config(name, selector):
    return f"""
services:
  - name: {name}
    process:
      {selector}
      children: true
"""


def test_cpu_grows_by_the_cpu_a_child_burns(tmp_path):
    report = tmp_path / "burned"
    parent = spawn_python(PARENT, BURNER, 1.5, report)
    try:
        with Exporter(tmp_path, service_config("burn", f"pid: {parent.pid}")) as exporter:
            wait_until(lambda: len(descendants(parent.pid)) == 2, what="child started")
            before = exporter.value("process_cpu_seconds_total", service="burn")
            wait_until(report.exists, timeout=20, what="burner finished")
            after = exporter.value("process_cpu_seconds_total", service="burn")
            burned = float(report.read_text())
            assert 1.5 <= burned < 2.0
            # The whole burn happened between the two scrapes; ticks are 10 ms.
            assert after - before == pytest.approx(1.5, abs=0.2)
            assert exporter.value("process_processes", service="burn") == 2
            assert exporter.value("fastapi_exporter_service_up", service="burn") == 1
    finally:
        kill_tree(parent)


def test_resident_memory_matches_what_the_child_holds(tmp_path):
    held = 200 * 1024 * 1024
    ready = tmp_path / "ready"
    parent = spawn_python(PARENT, HOLDER, held, ready)
    try:
        wait_until(ready.exists, timeout=20, what="memory held")
        with Exporter(tmp_path, service_config("mem", f"pid: {parent.pid}")) as exporter:
            rss = exporter.value("process_resident_memory_bytes", service="mem")
            independent = sum(read_proc_rss(pid) for pid in descendants(parent.pid))
            assert rss == pytest.approx(held, rel=0.10)
            assert rss == pytest.approx(independent, rel=0.02)
            assert exporter.value("process_virtual_memory_bytes", service="mem") > rss
            assert exporter.value("process_threads", service="mem") >= 2
            assert exporter.value("process_open_fds", service="mem") >= 6
            assert exporter.value("process_max_fds", service="mem") >= 1024
            start = exporter.value("process_start_time_seconds", service="mem")
            assert time.time() - 60 < start <= time.time()
    finally:
        kill_tree(parent)


def test_cpu_never_decreases_while_workers_are_replaced(tmp_path):
    report = tmp_path / "supervisor_cpu"
    supervisor = spawn_python(SUPERVISOR, 8, 0.5, report)
    try:
        selector = f"cmdline: 'python3 -c .* 8 0\\.5 {report}$'"
        with Exporter(tmp_path, service_config("churn", selector)) as exporter:
            values = []
            while not report.exists():
                values.append(exporter.value("process_cpu_seconds_total", service="churn"))
                time.sleep(0.1)
            time.sleep(0.2)
            final = exporter.value("process_cpu_seconds_total", service="churn")
            values = [v for v in values if v is not None]
            assert len(values) > 20
            decreases = [(a, b) for a, b in zip(values, values[1:]) if b < a]
            assert not decreases
            truth = float(report.read_text())
            assert truth > 2.0  # the children really burned CPU
            # Every replaced worker's CPU is in the total, none twice.
            assert final == pytest.approx(truth, abs=0.1)
    finally:
        kill_tree(supervisor)


def test_service_up_follows_the_pidfile(tmp_path):
    pidfile = tmp_path / "app.pid"
    first = spawn_python("import time; time.sleep(600)")
    pidfile.write_text(f"{first.pid}\n")
    second = None
    try:
        with Exporter(tmp_path, service_config("api", f"pidfile: {pidfile}")) as exporter:
            assert exporter.value("fastapi_exporter_service_up", service="api") == 1
            first.kill()
            first.wait()
            samples = exporter.scrape()
            assert samples[("fastapi_exporter_service_up", frozenset({("service", "api")}))] == 0
            assert ("process_resident_memory_bytes",
                    frozenset({("service", "api")})) not in samples
            second = spawn_python("import time; time.sleep(600)")
            pidfile.write_text(f"{second.pid}\n")
            assert exporter.value("fastapi_exporter_service_up", service="api") == 1
            assert exporter.value("process_processes", service="api") == 1
    finally:
        for process in (first, second):
            if process:
                process.kill()
                process.wait()


def test_garbage_pidfile_is_counted_and_the_daemon_keeps_serving(tmp_path):
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("garbage\n")
    # The live view samples the processes too (every 5 s by default): kept out of the way, so
    # that each scrape is one more reading of the bad pidfile.
    with Exporter(tmp_path, service_config("api", f"pidfile: {pidfile}"),
                  extra_args=("--web.live-interval=600",)) as exporter:
        service = ("service", "api")
        errors = []
        for _ in range(3):
            samples = exporter.scrape()
            assert samples[("fastapi_exporter_service_up", frozenset({service}))] == 0
            errors.append(samples[("fastapi_exporter_read_errors_total",
                                   frozenset({service, ("kind", "pidfile")}))])
        assert errors[0] >= 1 and errors[1] == errors[0] + 1 and errors[2] == errors[1] + 1
    assert "does not hold a PID" in exporter.log_path.read_text()
    # Logged once, not once per scrape.
    assert exporter.log_path.read_text().count("does not hold a PID") == 1


# Makes itself not dumpable (prctl PR_SET_DUMPABLE 0, as setuid programs and some sandboxes
# are): its /proc/PID files then belong to root, and reading its io takes CAP_SYS_PTRACE.
NOT_DUMPABLE = """
import ctypes, sys, time
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
with open(sys.argv[1], "w") as f:
    f.write("ready")
while True:
    time.sleep(1)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root, to drop CAP_SYS_PTRACE with setpriv")
def test_an_unreadable_process_of_roots_own_is_not_blamed_on_another_user(tmp_path):
    """Issue #16: an exporter running as root without CAP_SYS_PTRACE (a capability bounding
    set) said "another user's process needs CAP_SYS_PTRACE" of a process of root's own."""
    ready = tmp_path / "ready"
    target = spawn_python(NOT_DUMPABLE, ready)
    try:
        wait_until(ready.exists, what="the process not dumpable")
        exporter = Exporter(tmp_path, service_config("locked", f"pid: {target.pid}"))
        exporter.args[:0] = ["setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps",
                             "-sys_ptrace"]
        with exporter:
            samples = exporter.scrape()
        io_errors = samples[("fastapi_exporter_read_errors_total",
                             frozenset({("service", "locked"), ("kind", "io")}))]
        assert io_errors >= 1  # the scrape's reading, and the live view's if it sampled
        assert ("process_io_read_bytes_total", frozenset({("service", "locked")})) not in samples
        log = exporter.log_path.read_text()
        assert f"cannot read /proc/{target.pid}/io (permission denied: the process is not " \
               "dumpable or a security module" in log, log
        assert "another user" not in log
    finally:
        target.kill()
        target.wait()
