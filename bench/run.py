#!/usr/bin/env python3
"""Whole-process benchmarks of fastapi-exporter beside its peers, measured in the same run.

usage: /usr/bin/python3 bench/run.py [--quick] [--only NAME,...]
Needs: a build (build/daemon/fastapi-exporter, build/bench/micro_bench) and, from Debian,
mtail, prometheus-process-exporter and wrk (make bench installs them).
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
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPORTER = os.path.join(ROOT, "build", "daemon", "fastapi-exporter")
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


def main():
    for tool in ("mtail", "prometheus-process-exporter", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install mtail prometheus-process-exporter wrk")
    with tempfile.TemporaryDirectory(prefix="fe-bench-") as folder:
        logs = os.path.join(folder, "logs")
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "gen_logs.py"), str(LINES),
                        logs], check=True)
        print(f"machine: {os.cpu_count()} cores, {os.uname().release}; {LINES} lines; "
              f"medians of {ROUNDS} rounds", flush=True)
        bench_ingest(folder, logs)
        bench_render()
        bench_live(folder, logs)
        bench_process(folder)
        bench_rss(folder, logs)
        bench_cardinality(folder)
        bench_stop(folder, logs)
        bench_app_cost(folder)
    with open(os.path.join(ROOT, "build", "bench-results.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
