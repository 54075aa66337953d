#!/usr/bin/env python3
"""Deterministic access logs for the benchmarks, in four formats describing the same requests.

usage: gen_logs.py LINES OUTDIR [--random-paths]
writes OUTDIR/access.log    nginx, with a trailing $request_time (seconds)
       OUTDIR/access.jsonl  JSON in the reference guide's schema (duration_ms)
       OUTDIR/gunicorn.log  gunicorn's default format plus %(D)s (microseconds)
       OUTDIR/uvicorn.log   uvicorn's default access line (no duration)
The request mix is the one of ../shared/peers/gen_logs.py (seed 42): 4 methods, 50 route
templates with numeric ids 1-9999, statuses 200/201/404/500, durations skewed toward small
values; the nginx and JSON files are byte-identical to that generator's. --random-paths makes
every path a distinct random word instead (for the cardinality benchmark).
"""
import os
import random
import string
import sys

n = int(sys.argv[1])
out = sys.argv[2]
random_paths = "--random-paths" in sys.argv
os.makedirs(out, exist_ok=True)
random.seed(42)
methods, method_weights = ["GET", "POST", "PUT", "DELETE"], [70, 15, 10, 5]
bases = ["users", "orders", "items", "products", "carts", "payments", "invoices", "sessions",
         "accounts", "reviews"]
subs = ["", "/details", "/history", "/settings", "/status"]
routes = [f"/api/{b}/{{id}}{s}" for b in bases for s in subs]
statuses, status_weights = [200, 201, 404, 500], [80, 10, 7, 3]
agents = ["curl/8.0", "Mozilla/5.0 (X11; Linux x86_64)", "python-requests/2.31"]
words = random.Random(7)
reasons = {200: "OK", 201: "Created", 404: "Not Found", 500: "Internal Server Error"}
files = {name: open(os.path.join(out, name), "w")
         for name in ("access.log", "access.jsonl", "gunicorn.log", "uvicorn.log")}
for i in range(n):
    method = random.choices(methods, method_weights)[0]
    path = random.choice(routes).replace("{id}", str(random.randint(1, 9999)))
    if random_paths:
        path = "/" + "".join(words.choice(string.ascii_lowercase) for _ in range(12))
    status = random.choices(statuses, status_weights)[0]
    seconds = round(random.uniform(0.001, 2.0) ** 2 / 2.0 + 0.001, 4)
    sec = i // 1000
    hh, mm, ss = 10 + sec // 3600, (sec // 60) % 60, sec % 60
    ip = f"10.0.{i % 256}.{(i // 256) % 256}"
    size = random.randint(100, 9000)
    agent = random.choice(agents)
    files["access.log"].write(
        f'{ip} - - [27/Nov/2026:{hh:02d}:{mm:02d}:{ss:02d} +0000] "{method} {path} HTTP/1.1" '
        f'{status} {size} "-" "{agent}" {seconds}\n')
    level = "ERROR" if status == 500 else "INFO"
    files["access.jsonl"].write(
        f'{{"timestamp":"2026-11-27T{hh:02d}:{mm:02d}:{ss:02d}.{i % 1000:03d}Z","level":"{level}",'
        f'"service":"fastapi-backend","endpoint":"{path}","method":"{method}",'
        f'"status_code":{status},"duration_ms":{int(seconds * 1000)},'
        f'"message":"Request completed"}}\n')
    files["gunicorn.log"].write(
        f'{ip} - - [27/Nov/2026:{hh:02d}:{mm:02d}:{ss:02d} +0000] "{method} {path} HTTP/1.1" '
        f'{status} {size} "-" "{agent}" {int(seconds * 1e6)}\n')
    files["uvicorn.log"].write(
        f'INFO:     {ip}:{40000 + i % 20000} - "{method} {path} HTTP/1.1" {status} '
        f'{reasons[status]}\n')
for f in files.values():
    f.close()
