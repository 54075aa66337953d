"""Scrapes served from the exporter's cache: never stale, and a gzip body joined from pieces
deflated apart (one per block of series) that Prometheus, curl and Python all read."""

import gzip
import subprocess
import threading
import zlib

from exporter import Exporter, Prometheus, http_get, parse_samples, wait_until

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def config(tmp_path):
    return f"""
positions_file: {tmp_path}/positions.yaml
services:
  - name: api
    max_paths: 5000
    access_logs:
      - path: {tmp_path}/access.jsonl
        format: json
"""


def json_line(i, path, status=200, ms=5):
    return ('{"timestamp":"2026-11-27T10:00:00.000Z","level":"INFO","service":"api",'
            f'"endpoint":"{path}","method":"GET","status_code":{status},'
            f'"duration_ms":{ms},"message":"Request completed","seq":{i}}}\n')


def route(i):
    """A path label of letters only (ids would become {id})."""
    return "/api/r" + "".join("abcdefghijklmnopqrstuvwxyz"[(i // 26 ** k) % 26] for k in range(3))


def total(text):
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("fastapi_requests_total{"))


def scrape(exporter, gzipped):
    status, headers, body = http_get(exporter.url + "/metrics",
                                     PROMETHEUS_HEADERS if gzipped else {})
    assert status == 200
    if gzipped:
        assert headers.get("Content-Encoding") == "gzip"
        return gzip.decompress(body).decode()
    return body.decode()


def members(body):
    """How many gzip members follow one another in body."""
    count = 0
    while body:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        decompressor.decompress(body)
        assert decompressor.eof
        body = decompressor.unused_data
        count += 1
    return count


def test_a_line_counted_before_a_scrape_is_in_it_under_concurrent_scrapes(tmp_path):
    log = tmp_path / "access.jsonl"
    log.write_text("")
    with Exporter(tmp_path, config(tmp_path)) as exporter:
        # Enough series for several blocks: a line changes one block, the others are served
        # from the cache.
        with open(log, "a") as f:
            f.write("".join(json_line(i, route(i)) for i in range(700)))
        wait_until(lambda: total(scrape(exporter, False)) == 700, what="700 lines counted")
        counted = [700]
        stop = threading.Event()
        problems = []

        def scraper(gzipped):
            seen = 0
            while not stop.is_set():
                before = counted[0]
                shown = total(scrape(exporter, gzipped))
                if shown < before or shown < seen:
                    problems.append((gzipped, before, seen, shown))
                seen = shown
        threads = [threading.Thread(target=scraper, args=(i % 2 == 0,)) for i in range(4)]
        for thread in threads:
            thread.start()
        try:
            for i in range(700, 760):
                with open(log, "a") as f:
                    f.write(json_line(i, route(i % 700)))
                # Counted: a scrape showed it. Every scrape starting after this must show it.
                wait_until(lambda: total(scrape(exporter, i % 2 == 0)) == i + 1,
                           what=f"line {i} counted")
                counted[0] = i + 1
                assert total(scrape(exporter, True)) == i + 1
                assert total(scrape(exporter, False)) == i + 1
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert problems == []


def test_prometheus_reads_the_gzip_members_as_one_text(tmp_path):
    log = tmp_path / "access.jsonl"
    log.write_text("")
    lines = 1000  # four blocks of series: eight pieces and the collectors' one
    with Exporter(tmp_path, config(tmp_path)) as exporter:
        with open(log, "a") as f:
            f.write("".join(json_line(i, route(i), ms=i % 300) for i in range(lines)))
        wait_until(lambda: total(scrape(exporter, False)) == lines, what="lines counted")
        status, headers, body = http_get(exporter.url + "/metrics", PROMETHEUS_HEADERS)
        assert headers["Content-Encoding"] == "gzip"
        assert members(body) == 1  # curl reads no more than one
        gzipped = gzip.decompress(body).decode()
        plain = scrape(exporter, False)
        # The request series are identical; process and self metrics move between scrapes.
        requests = [line for line in plain.splitlines() if "fastapi_request" in line]
        assert [line for line in gzipped.splitlines() if "fastapi_request" in line] == requests
        assert len(requests) == 2 + lines + 2 + lines * 13  # 11 buckets, sum, count
        curl = subprocess.run(["curl", "-sf", "--compressed", exporter.url + "/metrics"],
                              capture_output=True, text=True, timeout=30, check=True)
        assert [line for line in curl.stdout.splitlines() if "fastapi_request" in line] == requests
        check = subprocess.run(["promtool", "check", "metrics"], input=gzipped,
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr

        prometheus = Prometheus(tmp_path, exporter.port)
        try:
            samples = len(parse_samples(gzipped))

            def scraped():
                up = prometheus.query('up{job="fastapi-exporter"}')
                counted = prometheus.query("sum(fastapi_requests_total)")
                scraped = prometheus.query('scrape_samples_scraped{job="fastapi-exporter"}')
                return (up and up[0][1] == 1 and counted and counted[0][1] == lines
                        and scraped and scraped[0][1] == samples)
            wait_until(scraped, timeout=30, what="Prometheus scraping every sample")
            # Counted after Prometheus's first scrape, seen by a later one.
            with open(log, "a") as f:
                f.write(json_line(lines, route(0)))
            wait_until(lambda: prometheus.query("sum(fastapi_requests_total)")[0][1] == lines + 1,
                       timeout=30, what="Prometheus seeing the new line")
        finally:
            prometheus.stop()
