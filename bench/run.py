#!/usr/bin/env python3
"""Whole-process benchmarks of fastapi-exporter beside its peers, measured in the same run.

usage: /usr/bin/python3 bench/run.py [--quick] [--only=NAME,...] [--exporter=PATH]
                                    [--baseline=PATH]
Needs: a build (build/daemon/fastapi-exporter, build/bench/micro_bench) and, from Debian,
mtail, prometheus-process-exporter and wrk (make bench installs them); `scrape_prometheus`
also Prometheus. --exporter measures another build of the daemon (an earlier commit's);
--baseline adds an earlier build beside this one where a row compares builds (live_sampler).
Prints one line per row: the exporter's figure, the peer's, and the ratio; writes
build/bench-results.json. Servers bind to 127.0.0.1 and are stopped by PID.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPORTER = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--exporter=")),
                os.path.join(ROOT, "build", "daemon", "fastapi-exporter"))
BASELINE = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--baseline=")), None)
MICRO = os.path.join(ROOT, "build", "bench", "micro_bench")
PEERS = os.path.join(os.path.dirname(ROOT), "shared", "peers")
QUICK = "--quick" in sys.argv
ONLY = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), None)
LINES = 200_000 if QUICK else 1_000_000
ROUNDS = 1 if QUICK else 3
NGINX_FORMAT = ('$remote_addr - $remote_user [$time_local] "$request" $status '
                '$body_bytes_sent "$http_referer" "$http_user_agent" $request_time')
results = {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """CPU time of every thread of a process, in seconds, from /proc (ns precision)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def metric_sum(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(predicate, timeout=60, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def timed(cmd, **kwargs):
    """Runs cmd; returns (wall s, CPU s, peak RSS bytes) from GNU time's wait4 rusage."""
    start = time.monotonic()
    process = subprocess.Popen(cmd, **kwargs)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def report(name, what, ours, peer, unit, higher_is_better, target):
    ratio = (ours / peer if higher_is_better else peer / ours) if ours and peer else None
    results[name] = {"what": what, "exporter": ours, "peer": peer, "unit": unit,
                     "advantage": ratio, "target": target}
    shown = f"{ratio:.1f}x" if ratio else "-"
    print(f"{name:28} exporter {ours:>12.4g} {unit:14} peer {peer if peer is not None else float('nan'):>12.4g}"
          f"  advantage {shown:>7}  (target {target})", flush=True)


class Daemon:
    def __init__(self, args, url=None):
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = url
        if url:
            if not wait_for(self._up, 30):
                raise RuntimeError(f"{args[0]} did not come up")

    def _up(self):
        try:
            get(self.url, timeout=1)
            return True
        except OSError:
            return False

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def exporter_config(folder, body):
    path = os.path.join(folder, f"config-{time.monotonic_ns()}.yaml")
    with open(path, "w") as f:
        f.write(f"positions_file: {folder}/positions-{time.monotonic_ns()}.yaml\n" + body)
    return path


def mtail_progs(folder, program):
    progs = os.path.join(folder, "progs-" + program.split(".")[0])
    os.makedirs(progs, exist_ok=True)
    shutil.copy(os.path.join(PEERS, "mtail", program), progs)
    return progs


def selected(name):
    return ONLY is None or name in ONLY


# --------------------------------------------------------------------------------------------

def bench_ingest(folder, logs):
    for fmt, file, program in (("nginx", "access.log", "nginx_fastapi.mtail"),
                               ("json", "access.jsonl", "json_fastapi.mtail")):
        name = f"ingest_{fmt}"
        if not selected(name):
            continue
        log = os.path.join(logs, file)
        options = (f"nginx: {{log_format: '{NGINX_FORMAT}'}}" if fmt == "nginx" else "")
        config = exporter_config(folder, f"""services:
  - name: api
    access_logs:
      - {{path: {log}, format: {fmt}{', ' + options if options else ''}}}
""")
        ours, theirs, our_rss, their_rss = [], [], [], []
        for _ in range(ROUNDS):
            _, cpu, rss = timed([EXPORTER, f"--config.file={config}", "--oneshot"],
                                stdout=subprocess.DEVNULL)
            ours.append(LINES / cpu)
            our_rss.append(rss)
            _, cpu, rss = timed(["mtail", "--one_shot", "--one_shot_format", "prometheus",
                                 "--address", "127.0.0.1", "--port", str(free_port()),
                                 "--progs", mtail_progs(folder, program), "--logs", log],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            theirs.append(LINES / cpu)
            their_rss.append(rss)
        report(name, f"whole-file ingest, {fmt} lines per CPU-second", statistics.median(ours),
               statistics.median(theirs), "lines/CPU-s", True, ">= 15x mtail")
        report(f"{name}_rss", f"peak RSS during the one-shot {fmt} ingest",
               statistics.median(our_rss) / 1e6, statistics.median(their_rss) / 1e6, "MB", False,
               "- (informational)")


JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"


def bench_journal(folder, logs):
    """A journal of LINES entries whose MESSAGE is a JSON access line (and 10% more entries of
    another unit, which the match leaves out), read by --oneshot beside what mtail needs for
    the same: `journalctl -o cat` then `mtail --one_shot` on its output, the CPU of both
    summed. (Not through a pipe: mtail 3.0.0~rc50 --one_shot stops reading a pipe after its
    first few MB and waits for ever.) systemd-journal-remote rotates the file every ~75 MB:
    both read the folder."""
    if not selected("ingest_journal"):
        return
    if not os.access(JOURNAL_REMOTE, os.X_OK):
        print("ingest_journal: skipped, systemd-journal-remote is not installed", flush=True)
        return
    directory = os.path.join(folder, "journal")
    os.makedirs(directory, exist_ok=True)
    export = os.path.join(folder, "journal-export.txt")
    realtime = 1_700_000_000_000_000
    with open(os.path.join(logs, "access.jsonl"), "rb") as jsonl, open(export, "wb") as out:
        for i, line in enumerate(jsonl):
            realtime += 1000
            out.write(b"__REALTIME_TIMESTAMP=%d\n_SYSTEMD_UNIT=api.service\n_PID=4242\n"
                      b"SYSLOG_IDENTIFIER=uvicorn\nPRIORITY=6\nMESSAGE=%s\n\n"
                      % (realtime, line.rstrip(b"\n")))
            if i % 10 == 0:
                out.write(b"__REALTIME_TIMESTAMP=%d\n_SYSTEMD_UNIT=db.service\nMESSAGE=checkpoint"
                          b" complete\n\n" % realtime)
    subprocess.run([JOURNAL_REMOTE, f"--output={directory}/system.journal", export], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.remove(export)
    config = exporter_config(folder, f"""services:
  - name: api
    access_logs:
      - journal: {{unit: api.service, path: {directory}}}
        format: json
""")
    printed = os.path.join(folder, "journal-metrics.txt")
    messages = os.path.join(folder, "journal-messages.txt")
    ours, theirs, cat = [], [], []
    for _ in range(ROUNDS):
        with open(printed, "w") as out:
            _, cpu, _ = timed([EXPORTER, f"--config.file={config}", "--oneshot"], stdout=out)
        ours.append(LINES / cpu)
        with open(printed) as f:
            counted = metric_sum(f.read(), "fastapi_requests_total")
        with open(messages, "w") as out:
            _, cat_cpu, _ = timed(["journalctl", "-o", "cat", f"--directory={directory}",
                                   "_SYSTEMD_UNIT=api.service"], stdout=out)
        with open(printed, "w") as out:
            _, mtail_cpu, _ = timed(["mtail", "--one_shot", "--one_shot_format", "prometheus",
                                     "--address", "127.0.0.1", "--port", str(free_port()),
                                     "--progs", mtail_progs(folder, "json_fastapi.mtail"),
                                     "--logs", messages],
                                    stdout=out, stderr=subprocess.DEVNULL)
        theirs.append(LINES / (cat_cpu + mtail_cpu))
        cat.append(LINES / cat_cpu)
        with open(printed) as f:
            counted_by_mtail = metric_sum(f.read(), "fastapi_requests_total")
        if counted != LINES or counted_by_mtail != LINES:
            raise RuntimeError(f"journal ingest counted {counted} (mtail {counted_by_mtail}) "
                               f"of {LINES}")
    print(f"{'ingest_journal rounds':28} exporter {ours} journalctl+mtail {theirs} "
          f"journalctl -o cat alone {cat}", flush=True)
    report("ingest_journal", "journal ingest, JSON MESSAGEs per CPU-second",
           statistics.median(ours), statistics.median(theirs), "entries/CPU-s", True,
           "- (journalctl -o cat + mtail)")
    report("ingest_journal_cat", "journalctl -o cat alone, for scale", statistics.median(ours),
           statistics.median(cat), "entries/CPU-s", True, "- (informational)")


def start_mtail(folder, log, program="nginx_fastapi.mtail"):
    port = free_port()
    daemon = Daemon(["mtail", "--progs", mtail_progs(folder, program), "--logs", log,
                     "--address", "127.0.0.1", "--port", str(port), "--poll_interval", "250ms"],
                    f"http://127.0.0.1:{port}/metrics")
    return daemon, f"http://127.0.0.1:{port}/metrics"


def start_exporter(folder, body):
    port = free_port()
    config = exporter_config(folder, body)
    daemon = Daemon([EXPORTER, f"--config.file={config}",
                     f"--web.listen-address=127.0.0.1:{port}"], f"http://127.0.0.1:{port}/healthz")
    return daemon, f"http://127.0.0.1:{port}/metrics"


def nginx_service(log, extra=""):
    return f"""services:
  - name: api
    access_logs:
      - path: {log}
        format: nginx
        start_at: end
        nginx: {{log_format: '{NGINX_FORMAT}'}}
{extra}"""


def bench_live(folder, logs):
    if not selected("live_burst") and not selected("live_steady") and not selected("idle"):
        return
    source = os.path.join(logs, "access.log")
    for who in ("exporter", "mtail"):
        log = os.path.join(folder, f"live-{who}.log")
        open(log, "w").close()
        if who == "exporter":
            daemon, url = start_exporter(folder, nginx_service(log))
            counter = "fastapi_requests_total"
        else:
            daemon, url = start_mtail(folder, log)
            counter = "fastapi_requests_total"
        pid = daemon.process.pid
        try:
            time.sleep(1)
            # Idle: no new lines, scraped every 15 s (every 5 s in --quick).
            idle_for = 10 if QUICK else 30
            cpu0 = cpu_seconds(pid)
            for _ in range(idle_for // 5 if QUICK else idle_for // 15):
                time.sleep(5 if QUICK else 15)
                get(url)
            idle = (cpu_seconds(pid) - cpu0) / idle_for * 100
            results.setdefault("idle", {})[who] = idle
            # Burst: the whole file appended at once.
            cpu0 = cpu_seconds(pid)
            start = time.monotonic()
            with open(source, "rb") as src, open(log, "ab") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            wait_for(lambda: metric_sum(get(url), counter) >= LINES, timeout=120, interval=0.02)
            burst = time.monotonic() - start
            results.setdefault("live_burst", {})[who] = (burst, cpu_seconds(pid) - cpu0)
            # Steady: 10,000 lines per second for 10 s, in 100 writes a second.
            with open(source, "rb") as src:
                lines = src.readlines()[:100_000]
            cpu0 = cpu_seconds(pid)
            start = time.monotonic()
            with open(log, "ab", buffering=0) as dst:
                for tick in range(1000):
                    dst.write(b"".join(lines[tick * 100:(tick + 1) * 100]))
                    delay = start + (tick + 1) * 0.01 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
            time.sleep(0.5)  # the last batch; no scrape inside the measured interval
            elapsed = time.monotonic() - start
            steady = (cpu_seconds(pid) - cpu0) / elapsed * 100
            if not wait_for(lambda: metric_sum(get(url), counter) >= LINES + 100_000, 60):
                raise RuntimeError(f"{who} did not count the steady lines")
            results.setdefault("live_steady", {})[who] = steady
        finally:
            daemon.stop()
    b = results.pop("live_burst")
    report("live_burst", "1M lines appended at once: seconds until all counted", b["exporter"][0],
           b["mtail"][0], "s", False, "<= 1 s")
    report("live_burst_cpu", "1M lines appended at once: CPU seconds", b["exporter"][1],
           b["mtail"][1], "CPU-s", False, "-")
    s = results.pop("live_steady")
    report("live_steady", "steady 10k lines/s: % of one core", s["exporter"], s["mtail"], "%",
           False, "<= 1%")
    i = results.pop("idle")
    report("idle", "idle, scraped: % of one core", i["exporter"], i["mtail"], "%", False,
           "<= 0.01%")


def bench_live_sampler(folder):
    """The live view's sampler at rest: no lines, services `pid: 1` (a process with many fds,
    the costly part of a scrape) and a missing pidfile; CPU of every thread over 60 s (30 s
    in --quick) from schedstat, no scrapes. This build sampling every 5 s (the default) beside
    the same with --web.live-interval=600 (the sampler asleep) and, with --baseline, an earlier
    build at 5 s, all started together and measured over the same seconds."""
    if not selected("live_sampler"):
        return
    body = f"""services:
  - name: init
    process: {{pid: 1}}
  - name: gone
    process: {{pidfile: {folder}/missing.pid}}
"""
    runs = [("exporter", EXPORTER, "5"), ("sampler_idle", EXPORTER, "600")]
    if BASELINE:
        runs.append(("baseline", BASELINE, "5"))
    daemons = []
    try:
        for who, binary, interval in runs:
            port = free_port()
            daemons.append((who, Daemon([binary, f"--config.file={exporter_config(folder, body)}",
                                         f"--web.listen-address=127.0.0.1:{port}",
                                         f"--web.live-interval={interval}"],
                                        f"http://127.0.0.1:{port}/healthz")))
        time.sleep(3)
        span = 30 if QUICK else 60
        before = {who: cpu_seconds(d.process.pid) for who, d in daemons}
        time.sleep(span)
        cpu = {who: (cpu_seconds(d.process.pid) - before[who]) / span * 100 for who, d in daemons}
    finally:
        for _, daemon in daemons:
            daemon.stop()
    report("live_sampler_idle", "live view's sampler, idle: % of one core", cpu["exporter"],
           cpu["sampler_idle"], "%", False, "-")
    if BASELINE:
        print(f"{'live_sampler_idle baseline':28} {cpu['baseline']:.4g} % ({BASELINE})", flush=True)
        results["live_sampler_idle"]["baseline"] = cpu["baseline"]


def bench_process(folder):
    if not selected("process_scrape"):
        return
    app_port = free_port()
    app = subprocess.Popen(["/usr/bin/python3", "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                            "--port", str(app_port), "--workers", "4", "--no-access-log"],
                           cwd=os.path.join(ROOT, "examples", "fastapi-app"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sleepers = []
    try:
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{app_port}/health"), 30)
        time.sleep(1)
        pidfile = os.path.join(folder, "uvicorn.pid")
        with open(pidfile, "w") as f:
            f.write(str(app.pid))
        for unrelated in (0, 500):
            while len(sleepers) < unrelated:
                sleepers.append(subprocess.Popen(["sleep", "600"]))
            exporter, our_url = start_exporter(folder, f"""services:
  - name: uvicorn_workload
    process: {{pidfile: {pidfile}, children: true}}
""")
            pe_port = free_port()
            pe_config = os.path.join(folder, "process-exporter.yml")
            with open(pe_config, "w") as f:
                f.write(f"process_names:\n  - name: uvicorn_workload\n    cmdline:\n"
                        f"    - 'uvicorn app:app .*--port {app_port}'\n")
            pe = Daemon(["prometheus-process-exporter", "-config.path", pe_config,
                         "-web.listen-address", f"127.0.0.1:{pe_port}"],
                        f"http://127.0.0.1:{pe_port}/metrics")
            try:
                per_scrape = {}
                for who, daemon, url in (("exporter", exporter, our_url),
                                         ("process-exporter", pe, f"http://127.0.0.1:{pe_port}/metrics")):
                    for _ in range(5):
                        get(url)
                    scrapes = 50 if QUICK else 200
                    cpu0 = cpu_seconds(daemon.process.pid)
                    for _ in range(scrapes):
                        get(url)
                    per_scrape[who] = (cpu_seconds(daemon.process.pid) - cpu0) / scrapes * 1000
                    if unrelated == 0:
                        results.setdefault("rss_idle_group", {})[who] = rss_bytes(daemon.process.pid)
                report(f"process_scrape_{unrelated}", f"CPU per scrape, uvicorn + 4 workers, "
                       f"{unrelated} unrelated processes", per_scrape["exporter"],
                       per_scrape["process-exporter"], "ms CPU", False, "<= 1/10 of the peer")
            finally:
                exporter.stop()
                pe.stop()
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        subprocess.run(["pkill", "-KILL", "-P", str(app.pid)])
        app.kill()
        app.wait()


def _http_ok(url):
    try:
        get(url, timeout=1)
        return True
    except OSError:
        return False


def bench_rss(folder, logs):
    if not selected("rss"):
        return
    # 800 request series (the nginx file's route mix) plus one process group.
    log = os.path.join(folder, "rss.log")
    shutil.copy(os.path.join(logs, "access.log"), log)
    exporter, url = start_exporter(folder, nginx_service(log).replace("start_at: end",
                                                                      "start_at: beginning")
                                   + "    process: {pid: 1}\n")
    mtail, mtail_url = start_mtail(folder, log)
    try:
        wait_for(lambda: metric_sum(get(url), "fastapi_requests_total") >= LINES, 120, 0.1)
        wait_for(lambda: metric_sum(get(mtail_url), "fastapi_requests_total") >= LINES, 120, 0.1)
        time.sleep(1)
        report("rss", "resident memory, ~800 request series (+ one process group)",
               rss_bytes(exporter.process.pid) / 1e6, rss_bytes(mtail.process.pid) / 1e6, "MB",
               False, "<= 10 MB")
        # What the resident set is made of: the process's own memory (heap, stacks) apart
        # from file pages (the binary and its shared libraries, shared with other processes).
        for name, pid in (("exporter", exporter.process.pid), ("mtail", mtail.process.pid)):
            with open(f"/proc/{pid}/status") as f:
                parts = {k: v.split()[0] for k, v in (l.split(":", 1) for l in f)
                         if k in ("RssAnon", "RssFile", "RssShmem")}
            print(f"  {name}: " + ", ".join(f"{k} {int(v) / 1000:.1f} MB"
                                            for k, v in parts.items()))
    finally:
        exporter.stop()
        mtail.stop()


def bench_cardinality(folder):
    if not selected("cardinality"):
        return
    paths = 200_000 if QUICK else 1_000_000
    logs = os.path.join(folder, "random")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "gen_logs.py"), str(paths),
                    logs, "--random-paths"], check=True)
    log = os.path.join(folder, "random.log")
    open(log, "w").close()
    exporter, url = start_exporter(folder, nginx_service(log))
    try:
        time.sleep(1)
        before = rss_bytes(exporter.process.pid)
        with open(os.path.join(logs, "access.log"), "rb") as src, open(log, "ab") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        wait_for(lambda: metric_sum(get(url), "fastapi_requests_total") >= paths, 300, 0.2)
        text = get(url)
        series = sum(1 for line in text.splitlines() if line.startswith("fastapi_requests_total{"))
        after = rss_bytes(exporter.process.pid)
        results["cardinality"] = {"what": f"{paths} distinct random paths",
                                  "series": series, "rss_before_mb": before / 1e6,
                                  "rss_after_mb": after / 1e6, "growth": after / before,
                                  "target": "series capped at max_paths, RSS <= 2x"}
        print(f"{'cardinality':28} {paths} random paths -> {series} series, RSS "
              f"{before / 1e6:.1f} -> {after / 1e6:.1f} MB ({after / before:.2f}x)", flush=True)
    finally:
        exporter.stop()


# What Prometheus 2.42 sends with every scrape.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}
SCRAPE_METHODS = [(m, s) for m in ("GET", "POST", "PUT", "DELETE") for s in (200, 201, 404, 500)]


def scrape_series_lines(label_sets, rounds=1, offset=0):
    """nginx lines touching `label_sets` label sets (8 method/status pairs on each of
    label_sets / 8 distinct paths, one route segment of letters and a numeric id, so that
    mtail's /{id} substitution and the exporter's id heuristics give the same label), each
    `rounds` times."""
    lines = []
    for r in range(rounds):
        for i in range(label_sets):
            path, pair = divmod(i, 8)
            method, status = SCRAPE_METHODS[(path + pair * 2) % 16]
            word = "".join("abcdefghijklmnopqrstuvwxyz"[(path // 26 ** k) % 26] for k in range(3))
            seconds = ((i * 7 + r * 13 + offset) % 1000) / 400 + 0.001
            lines.append(f'10.0.0.{i % 256} - - [27/Nov/2026:10:00:00 +0000] "{method} '
                         f'/api/res{word}/{1000 + i + r + offset} HTTP/1.1" {status} 512 "-" '
                         f'"curl/8.0" {seconds:.4f}\n')
    return "".join(lines)


def distinct_label_sets(label_sets):
    seen = set()
    for line in scrape_series_lines(label_sets).splitlines():
        parts = line.split('"')[1].split()
        seen.add((parts[0], parts[1].rsplit("/", 1)[0], line.split('"')[2].split()[0]))
    return len(seen)


class Scraper:
    """One keep-alive connection, as Prometheus keeps one per target."""

    def __init__(self, url):
        self.url = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=30)

    def get(self, headers):
        try:
            self.connection.request("GET", self.url.path, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # The server closed the idle connection (civetweb after 500 ms); so would Prometheus
            # find it, and connect again.
            self.connection.close()
            self.connection.request("GET", self.url.path, headers=headers)
            response = self.connection.getresponse()
        body = response.read()
        assert response.status == 200, response.status
        return body, response.getheader("Content-Encoding")

    def close(self):
        self.connection.close()


def scrape_cost(pid, scraper, headers, times, before_each=None, settle=0.0):
    """CPU seconds of `pid` per scrape and bytes per response, over `times` scrapes; with
    `before_each`, the CPU of the same loop without scrapes is measured first and taken away
    (what the lines themselves cost to count)."""
    def loop(scrape):
        cpu0 = cpu_seconds(pid)
        size = 0
        for _ in range(times):
            if before_each:
                before_each()
            if settle:
                time.sleep(settle)
            if scrape:
                size = len(scraper.get(headers)[0])
        return cpu_seconds(pid) - cpu0, size
    baseline = loop(False)[0] if before_each or settle else 0.0
    cpu, size = loop(True)
    return max(cpu - baseline, 0.0) / times, size


def bench_scrape(folder):
    if not selected("scrape"):
        return
    times = 5 if QUICK else 20
    for label_sets in (800, 5600):
        assert distinct_label_sets(label_sets) == label_sets
        figures = {}
        for who in ("exporter", "mtail"):
            log = os.path.join(folder, f"scrape-{who}-{label_sets}.log")
            open(log, "w").close()
            if who == "exporter":
                daemon, url = start_exporter(folder, nginx_service(log, "    max_paths: 10000\n"))
            else:
                daemon, url = start_mtail(folder, log)
            pid = daemon.process.pid
            scraper = Scraper(url)
            try:
                with open(log, "a") as f:
                    f.write(scrape_series_lines(label_sets, rounds=3))
                if not wait_for(lambda: metric_sum(get(url), "fastapi_requests_total")
                                >= 3 * label_sets, 60, 0.2):
                    raise RuntimeError(f"{who} did not count the lines")
                text = get(url)
                series = sum(1 for line in text.splitlines()
                             if line.startswith("fastapi_requests_total{"))
                assert series == label_sets, (who, series)
                lines = sum(1 for line in text.splitlines() if line and line[0] != "#")
                for headers in ({}, PROMETHEUS_HEADERS, {}, PROMETHEUS_HEADERS):
                    scraper.get(headers)  # warm: buffers grown, caches filled
                time.sleep(1)
                fig = {"samples": lines}
                fig["plain"] = scrape_cost(pid, scraper, {}, times)
                body, encoding = scraper.get(PROMETHEUS_HEADERS)
                assert encoding == "gzip", (who, encoding)
                fig["gzip_unchanged"] = scrape_cost(pid, scraper, PROMETHEUS_HEADERS, times)
                counter = iter(range(1_000_000))

                def one_line():
                    with open(log, "a") as f:
                        f.write(scrape_series_lines(1, offset=next(counter)))

                def every_series():
                    with open(log, "a") as f:
                        f.write(scrape_series_lines(label_sets, offset=next(counter)))
                fig["gzip_one_line"] = scrape_cost(pid, scraper, PROMETHEUS_HEADERS, times,
                                                   one_line, 0.3)
                fig["gzip_all_changed"] = scrape_cost(pid, scraper, PROMETHEUS_HEADERS,
                                                      max(times // 2, 3), every_series, 0.5)
                figures[who] = fig
            finally:
                scraper.close()
                daemon.stop()
        ours, theirs = figures["exporter"], figures["mtail"]
        print(f"{'scrape':28} {label_sets} label sets: exporter {ours['samples']} samples, "
              f"mtail {theirs['samples']}", flush=True)
        for kind, what in (("plain", "no Accept-Encoding, nothing changed"),
                           ("gzip_unchanged", "as Prometheus asks (gzip), nothing changed"),
                           ("gzip_one_line", "gzip, one new line before each scrape"),
                           ("gzip_all_changed", "gzip, every label set changed before each")):
            name = f"scrape_{label_sets}_{kind}"
            report(name, f"{label_sets} label sets, {what}: CPU ms per scrape",
                   ours[kind][0] * 1000, theirs[kind][0] * 1000, "ms CPU", False,
                   "<= 10 ms (new data), <= 1 ms (nothing changed)" if label_sets == 5600 else "-")
            results[name]["bytes"] = {"exporter": ours[kind][1], "mtail": theirs[kind][1]}
            print(f"{'':28} bytes per response: exporter {ours[kind][1]:,}, mtail "
                  f"{theirs[kind][1]:,}", flush=True)


def bench_scrape_prometheus(folder):
    """A real Prometheus scraping the exporter and mtail, 5,600 label sets each, every 15 s,
    with no new line: CPU of each while nothing but scrapes happens."""
    if not selected("scrape_prometheus"):
        return
    if not shutil.which("prometheus"):
        sys.exit("prometheus is missing: apt-get install prometheus")
    minutes = 1 if QUICK else 4
    label_sets = 5600
    daemons = {}
    prometheus = None
    try:
        for who in ("exporter", "mtail"):
            log = os.path.join(folder, f"prom-{who}.log")
            open(log, "w").close()
            if who == "exporter":
                daemons[who] = start_exporter(folder, nginx_service(log, "    max_paths: 10000\n"))
            else:
                daemons[who] = start_mtail(folder, log)
            with open(log, "a") as f:
                f.write(scrape_series_lines(label_sets, rounds=3))
        for who, (daemon, url) in daemons.items():
            if not wait_for(lambda: metric_sum(get(url), "fastapi_requests_total")
                            >= 3 * label_sets, 60, 0.2):
                raise RuntimeError(f"{who} did not count the lines")
        port = free_port()
        config = os.path.join(folder, "prometheus.yml")
        targets = {who: urllib.parse.urlsplit(url).netloc for who, (_, url) in daemons.items()}
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 15s\nscrape_configs:\n" + "".join(
                f"  - job_name: {who}\n    static_configs:\n      - targets: ['{target}']\n"
                for who, target in targets.items()))
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder}/tsdb",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        query = f"http://127.0.0.1:{port}/api/v1/query?query="

        def scraped_all():
            try:
                answer = json.loads(get(query + urllib.parse.quote(
                    "sum by (job) (scrape_samples_scraped) and on() (count(up == 1) == 2)")))
                return len(answer["data"]["result"]) == 2
            except (OSError, ValueError, KeyError):
                return False
        if not wait_for(scraped_all, 60, 1):
            raise RuntimeError("prometheus did not scrape both")
        cpu0 = {who: cpu_seconds(d.process.pid) for who, (d, _) in daemons.items()}
        time.sleep(minutes * 60)
        cpu = {who: cpu_seconds(d.process.pid) - cpu0[who] for who, (d, _) in daemons.items()}
        answer = json.loads(get(query + urllib.parse.quote("scrape_samples_scraped")))
        samples = {r["metric"]["job"]: r["value"][1] for r in answer["data"]["result"]}
        answer = json.loads(get(query + urllib.parse.quote(
            "sum by (job) (fastapi_requests_total)")))
        counted = {r["metric"]["job"]: float(r["value"][1]) for r in answer["data"]["result"]}
        assert counted == {"exporter": 3 * label_sets, "mtail": 3 * label_sets}, counted
        print(f"{'scrape_prometheus':28} samples per scrape {samples}", flush=True)
        report("scrape_prometheus", f"Prometheus scraping {label_sets} label sets every 15 s, "
               f"no new lines, {minutes} min: % of one core", cpu["exporter"] / minutes / 60 * 100,
               cpu["mtail"] / minutes / 60 * 100, "%", False, "<= 0.01%")
        results["scrape_prometheus"]["cpu_ms_per_minute"] = {
            who: value / minutes * 1000 for who, value in cpu.items()}
    finally:
        if prometheus:
            prometheus.terminate()
            prometheus.wait(30)
        for daemon, _ in daemons.values():
            daemon.stop()


def bench_render():
    if not selected("render"):
        return
    out = subprocess.run([MICRO, "--benchmark_filter=Render(PrometheusCpp|RequestStore)/10000",
                          "--benchmark_format=json", "--benchmark_repetitions=5",
                          "--benchmark_report_aggregates_only=true"],
                         capture_output=True, text=True, check=True)
    medians = {b["run_name"].split("/")[0]: b["real_time"] for b in json.loads(out.stdout)["benchmarks"]
               if b.get("aggregate_name") == "median"}
    report("render_10k", "rendering /metrics with 10,000 series", medians["BM_RenderRequestStore"],
           medians["BM_RenderPrometheusCpp"], "ms", False, "<= 3 ms")


def bench_stop(folder, logs):
    """SIGTERM to exit while lines are written at 10k/s: after a scrape on a connection that
    was closed, and with a scraper holding an idle keep-alive connection (the HTTP server's
    worst case)."""
    if not selected("stop"):
        return
    with open(os.path.join(logs, "access.log"), "rb") as src:
        lines = src.readlines()[:100_000]
    times = {}
    for who, keep_alive in (("exporter", False), ("exporter", True), ("mtail", True)):
        samples = []
        for _ in range(3 if QUICK else 10):
            log = os.path.join(folder, f"stop-{who}.log")
            open(log, "w").close()
            daemon, url = (start_exporter(folder, nginx_service(log)) if who == "exporter"
                           else start_mtail(folder, log))
            stop = threading.Event()

            def write():
                with open(log, "ab", buffering=0) as dst:
                    tick = 0
                    while not stop.is_set():
                        dst.write(b"".join(lines[(tick % 1000) * 10:(tick % 1000 + 1) * 10]))
                        tick += 1
                        time.sleep(0.001)
            writer = threading.Thread(target=write)
            writer.start()
            host, port = url.split("/")[2].split(":")
            scraper = http.client.HTTPConnection(host, int(port), timeout=5)
            scraper.request("GET", "/metrics")
            scraper.getresponse().read()
            if not keep_alive:
                scraper.close()
            time.sleep(0.3)
            start = time.monotonic()
            daemon.process.send_signal(signal.SIGTERM)
            daemon.process.wait(30)
            samples.append(time.monotonic() - start)
            stop.set()
            writer.join()
            scraper.close()
        times[(who, keep_alive)] = samples
        print(f"  stop {who}{' (keep-alive scraper)' if keep_alive else ''}: "
              f"{', '.join(f'{t * 1000:.0f} ms' for t in samples)}", flush=True)
    report("stop", "SIGTERM to exit while writing lines (max)", max(times[("exporter", False)]),
           None, "s", False, "<= 2 s")
    report("stop_keep_alive", "the same with an idle keep-alive scraper (max)",
           max(times[("exporter", True)]), max(times[("mtail", True)]), "s", False, "<= 2 s")


def bench_app_cost(folder):
    if not selected("app_cost"):
        return
    port = free_port()
    log = os.path.join(folder, "app-access.log")
    app = subprocess.Popen(["/usr/bin/python3", "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                            "--port", str(port), "--no-access-log"],
                           cwd=os.path.join(ROOT, "examples", "fastapi-app"),
                           env=dict(os.environ, ACCESS_LOG=log), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/health"), 30)
        rates = {"with": [], "without": []}
        seconds = 5 if QUICK else 10
        for _ in range(2 if QUICK else 4):
            for variant in ("without", "with"):
                exporter = None
                if variant == "with":
                    exporter, _ = start_exporter(folder, f"""services:
  - name: api
    process: {{pid: {app.pid}}}
    access_logs: [{{path: '{log}', format: json}}]
""")
                out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s",
                                      f"http://127.0.0.1:{port}/api/users/7"],
                                     capture_output=True, text=True).stdout
                rates[variant].append(float(next(line.split()[1] for line in out.splitlines()
                                                 if line.startswith("Requests/sec"))))
                if exporter:
                    exporter.stop()
        print(f"{'app_cost rounds':28} with {rates['with']} without {rates['without']}", flush=True)
        ratio = statistics.median(rates["with"]) / statistics.median(rates["without"])
        results["app_cost"] = {"what": "app requests/s with the exporter tailing its log, over "
                               "without", "with": statistics.median(rates["with"]),
                               "without": statistics.median(rates["without"]), "ratio": ratio,
                               "target": ">= 0.97"}
        print(f"{'app_cost':28} {statistics.median(rates['with']):.0f} req/s with, "
              f"{statistics.median(rates['without']):.0f} without: {ratio:.3f}", flush=True)
    finally:
        app.kill()
        app.wait()


def start_uvicorn(port, *extra):
    app = subprocess.Popen(["/usr/bin/python3", "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                            "--port", str(port), "--no-access-log", *extra],
                           cwd=os.path.join(ROOT, "examples", "fastapi-app"),
                           env=dict(os.environ, ACCESS_LOG=os.devnull), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    if not wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/health"), 30):
        raise RuntimeError("uvicorn did not come up")
    return app


def start_wire_capture(folder, port):
    """The exporter capturing `port` (wire source) and, beside it, tcpdump writing the same
    traffic to /dev/null: (exporter, its url, tcpdump's process), both capturing."""
    exporter, url = start_exporter(folder, f"""services:
  - name: api
    wire: {{ports: [{port}]}}
""")
    wait_for(lambda: metric_sum(get(url), "fastapi_exporter_wire_capture_up") == 1, 10)
    tcpdump = subprocess.Popen(["tcpdump", "-i", "any", "-s", "2048", "-w", "/dev/null",
                                f"tcp port {port}"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return exporter, url, tcpdump


def bench_wire(folder):
    """The wire source (needs root): CPU per 1,000 requests/s captured beside tcpdump writing
    the same traffic to /dev/null in the same run; kernel drops at the highest rate wrk
    reaches here; memory with 10,000 idle keep-alive connections."""
    if not selected("wire"):
        return
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        print("wire: skipped (needs root and tcpdump)", flush=True)
        return
    import resource
    # This process holds a descriptor per connection, and so do uvicorn's workers, each
    # under a limit of its own (inherited): the hard limit less a margin for the rest.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle = min(10_000, hard - 200)
    port = free_port()
    app = start_uvicorn(port, "--workers", "2", "--timeout-keep-alive", "600")
    try:
        exporter, url, tcpdump = start_wire_capture(folder, port)
        seconds = 5 if QUICK else 10
        before = (cpu_seconds(exporter.process.pid), cpu_seconds(tcpdump.pid),
                  metric_sum(get(url), "fastapi_exporter_wire_requests_total"))
        out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s",
                              f"http://127.0.0.1:{port}/api/users/7"],
                             capture_output=True, text=True).stdout
        rate = float(next(line.split()[1] for line in out.splitlines()
                          if line.startswith("Requests/sec")))
        time.sleep(0.5)
        after = (cpu_seconds(exporter.process.pid), cpu_seconds(tcpdump.pid),
                 metric_sum(get(url), "fastapi_exporter_wire_requests_total"))
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait()
        text = get(url)
        ours = (after[0] - before[0]) / seconds / (rate / 1000)
        peer = (after[1] - before[1]) / seconds / (rate / 1000)
        counted = after[2] - before[2]
        drops = metric_sum(text, "fastapi_exporter_wire_kernel_drops_total")
        resyncs = metric_sum(text, "fastapi_exporter_wire_resyncs_total")
        print(f"{'wire rate':28} wrk {rate:.0f} req/s over {seconds} s, counted "
              f"{counted:.0f} of ~{rate * seconds:.0f}, kernel drops {drops:.0f}, "
              f"resyncs {resyncs:.0f}", flush=True)
        report("wire_cpu", "CPU (cores) per 1,000 requests/s captured, beside tcpdump -w "
               "/dev/null on the same traffic", ours, peer, "cores/1k rps", False, "<= 3x tcpdump")
        results["wire_rate"] = {"rate": rate, "counted": counted, "kernel_drops": drops,
                                "resyncs": resyncs}

        # `idle` (10,000 where the fd limit allows) idle keep-alive connections, each after one
        # request.
        rss_before = rss_bytes(exporter.process.pid)
        sockets = []
        request = f"GET /api/users/7 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()
        for _ in range(idle):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            sockets.append(s)
        for s in sockets:
            s.settimeout(30)
            s.recv(65536)
        time.sleep(2.5)
        text = get(url)
        rss_after = rss_bytes(exporter.process.pid)
        tracked = metric_sum(text, "fastapi_exporter_wire_connections")
        print(f"{'wire idle connections':28} {tracked:.0f} tracked; RSS {rss_before / 1e6:.1f} -> "
              f"{rss_after / 1e6:.1f} MB ({(rss_after - rss_before) / max(tracked, 1):.0f} "
              f"bytes per connection)", flush=True)
        results["wire_idle"] = {"connections": tracked, "rss_before": rss_before,
                                "rss_after": rss_after}
        for s in sockets:
            s.close()
        exporter.stop()
    finally:
        kill = [app.pid] + [int(c) for c in open(f"/proc/{app.pid}/task/{app.pid}/children")
                            .read().split()]
        for pid in reversed(kill):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        app.wait()
    bench_wire_nginx(folder)


def bench_wire_nginx(folder):
    """The capture's own ceiling, which uvicorn hides (its 2 workers saturate first): nginx
    answering a tiny static response, wrk at its highest rate, the exporter capturing nginx's
    port beside tcpdump -w /dev/null on the same traffic, ROUNDS rounds."""
    if not shutil.which("nginx"):
        print("wire_nginx: skipped (needs nginx)", flush=True)
        return
    port = free_port()
    conf = os.path.join(folder, "nginx-wire.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {folder}/nginx-wire.pid;
error_log {folder}/nginx-wire-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {folder}/nginx-body;
    proxy_temp_path {folder}/nginx-proxy;
    fastcgi_temp_path {folder}/nginx-fastcgi;
    uwsgi_temp_path {folder}/nginx-uwsgi;
    scgi_temp_path {folder}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", conf, "-p", folder], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        if not wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/"), 10):
            raise RuntimeError("nginx did not come up")
        exporter, url, tcpdump = start_wire_capture(folder, port)
        seconds, connections = 5, 16
        rounds = []
        for _ in range(ROUNDS):
            text = get(url)
            before = (cpu_seconds(exporter.process.pid), cpu_seconds(tcpdump.pid),
                      metric_sum(text, "fastapi_exporter_wire_requests_total"),
                      metric_sum(text, "fastapi_exporter_wire_kernel_drops_total"))
            out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                                  f"http://127.0.0.1:{port}/"],
                                 capture_output=True, text=True).stdout
            rate = float(next(line.split()[1] for line in out.splitlines()
                              if line.startswith("Requests/sec")))
            answered = int(next(line.split()[0] for line in out.splitlines()
                                if "requests in" in line))
            # When wrk stops, each of its connections may have one request in flight: nginx
            # answers it on the wire, after wrk stopped counting. So the exporter counts
            # wrk's answered requests plus 0 to `connections`. Wait for the capture's counts
            # to settle (a block is handed over within 100 ms, drops once a second).
            time.sleep(1.5)
            text = get(url)
            after = (cpu_seconds(exporter.process.pid), cpu_seconds(tcpdump.pid),
                     metric_sum(text, "fastapi_exporter_wire_requests_total"),
                     metric_sum(text, "fastapi_exporter_wire_kernel_drops_total"))
            # CPU over the whole interval (wrk's run and the settling), per 1,000 req/s of
            # wrk's run.
            rounds.append({"rate": rate, "wrk_answered": answered,
                           "counted": after[2] - before[2], "kernel_drops": after[3] - before[3],
                           "exporter_cpu": (after[0] - before[0]) / seconds / (rate / 1000),
                           "tcpdump_cpu": (after[1] - before[1]) / seconds / (rate / 1000)})
            print(f"{'wire_nginx round':28} wrk {rate:.0f} req/s ({answered} answered), "
                  f"exporter counted {rounds[-1]['counted']:.0f}, kernel drops "
                  f"{rounds[-1]['kernel_drops']:.0f}; cores per 1k req/s: exporter "
                  f"{rounds[-1]['exporter_cpu']:.5f}, tcpdump {rounds[-1]['tcpdump_cpu']:.5f} "
                  f"({rounds[-1]['exporter_cpu'] / rounds[-1]['tcpdump_cpu']:.1f}x)", flush=True)
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait()
        exporter.stop()
        clean = [r["rate"] for r in rounds if r["kernel_drops"] == 0 and
                 0 <= r["counted"] - r["wrk_answered"] <= connections]
        results["wire_nginx"] = {"rounds": rounds,
                                 "highest_rate_zero_drops_all_counted": max(clean, default=None)}
        ours = [r["exporter_cpu"] for r in rounds]
        peer = [r["tcpdump_cpu"] for r in rounds]
        print(f"{'wire_nginx':28} highest rate with 0 drops and every answered request "
              f"counted: {max(clean, default=0):.0f} req/s; exporter {min(ours):.5f}-"
              f"{max(ours):.5f} (median {statistics.median(ours):.5f}), tcpdump "
              f"{min(peer):.5f}-{max(peer):.5f} (median {statistics.median(peer):.5f}) cores "
              f"per 1k req/s", flush=True)
    finally:
        nginx.terminate()
        nginx.wait()


def bench_tls(folder):
    """Scrape latency over HTTPS beside plain HTTP, same exporter build, same run (curl)."""
    if not selected("tls"):
        return
    key, cert, web = (os.path.join(folder, name) for name in ("key.pem", "cert.pem", "web.yml"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    with open(web, "w") as f:
        f.write(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    body = f"services:\n  - name: self\n    process: {{pid: {os.getpid()}}}\n"
    medians = {}
    for scheme in ("http", "https"):
        port = free_port()
        args = [EXPORTER, f"--config.file={exporter_config(folder, body)}",
                f"--web.listen-address=127.0.0.1:{port}"]
        if scheme == "https":
            args.append(f"--web.config.file={web}")
        daemon = Daemon(args)
        url = f"{scheme}://127.0.0.1:{port}/metrics"
        wait_for(lambda: subprocess.run(["curl", "-skf", "-o", "/dev/null", url]).returncode == 0, 30)
        write = ["-w", "%{time_total}\n", "-o", "/dev/null"]
        fresh = [float(subprocess.run(["curl", "-sk", *write, url], capture_output=True,
                                      text=True).stdout) for _ in range(31)][1:]
        # One connection, 31 scrapes: what Prometheus does (keep-alive).
        out = subprocess.run(["curl", "-sk", *[a for _ in range(31) for a in (*write, url)]],
                             capture_output=True, text=True).stdout.split()
        kept = [float(t) for t in out[1:]]
        medians[scheme] = (statistics.median(fresh) * 1e3, statistics.median(kept) * 1e3)
        daemon.stop()
    for index, kind in ((0, "new connection per scrape"), (1, "keep-alive connection")):
        https, http = medians["https"][index], medians["http"][index]
        report(f"tls_{'fresh' if index == 0 else 'keepalive'}",
               f"HTTPS scrape latency, {kind} (peer: plain HTTP, same build)", https, http, "ms",
               False, "within 2 ms of HTTP")
        print(f"{'':28} HTTPS - HTTP = {https - http:.2f} ms", flush=True)


def main():
    if ONLY in (["wire"], ["live_sampler"]):
        with tempfile.TemporaryDirectory(prefix="fe-bench-") as folder:
            bench_wire(folder)
            bench_live_sampler(folder)
        return
    for tool in ("mtail", "prometheus-process-exporter", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install mtail prometheus-process-exporter wrk")
    with tempfile.TemporaryDirectory(prefix="fe-bench-") as folder:
        logs = os.path.join(folder, "logs")
        if ONLY is None or any(not name.startswith(("scrape", "tls")) for name in ONLY):
            subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "gen_logs.py"),
                            str(LINES), logs], check=True)
        print(f"machine: {os.cpu_count()} cores, {os.uname().release}; {LINES} lines; "
              f"medians of {ROUNDS} rounds", flush=True)
        bench_ingest(folder, logs)
        bench_journal(folder, logs)
        bench_render()
        bench_scrape(folder)
        bench_scrape_prometheus(folder)
        bench_tls(folder)
        bench_live(folder, logs)
        bench_live_sampler(folder)
        bench_process(folder)
        bench_rss(folder, logs)
        bench_cardinality(folder)
        bench_stop(folder, logs)
        bench_app_cost(folder)
        bench_wire(folder)
    with open(os.path.join(ROOT, "build", "bench-results.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
