"""Lines as real deployments write them (issue #10), through the shipped daemon: each case is
one file read by --oneshot, with the exact requests, durations and reasons it must give.
Every kind is tried in more than one shape: other formats, other envelopes, other positions
of the odd bytes."""

import json
import os
import re
import subprocess

from exporter import BIN, parse_samples

ESC = "\x1b"


def oneshot(tmp_path, services):
    """services: {name: (format_yaml, lines or bytes, extra_service_yaml)}. Returns samples."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    text = f"positions_file: {tmp_path}/positions.yaml\nservices:\n"
    for name, (log_yaml, content, extra) in services.items():
        data = content if isinstance(content, bytes) else "".join(l + "\n" for l in content).encode()
        (logs / f"{name}.log").write_bytes(data)
        text += (f"  - name: {name}\n    access_logs:\n      - {{path: '{logs}/{name}.log', "
                 f"{log_yaml}}}\n    routes: ['/api/users/{{user_id}}']\n{extra}")
    (tmp_path / "config.yaml").write_text(text)
    result = subprocess.run([BIN, f"--config.file={tmp_path}/config.yaml", "--oneshot"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return parse_samples(result.stdout)


def requests(samples, service, **labels):
    return sum(v for (name, l), v in samples.items()
               if name == "fastapi_requests_total" and ("service", service) in l
               and all((k, str(val)) in l for k, val in labels.items()))


def observed(samples, service):
    return sum(v for (name, l), v in samples.items()
               if name == "fastapi_request_duration_seconds_count" and ("service", service) in l)


def duration_sum(samples, service):
    return sum(v for (name, l), v in samples.items()
               if name == "fastapi_request_duration_seconds_sum" and ("service", service) in l)


def errors(samples, service, reason):
    return sum(v for (name, l), v in samples.items()
               if name == "fastapi_exporter_log_parse_errors_total" and ("service", service) in l
               and ("reason", reason) in l)


def self_metric(samples, name, service):
    return sum(v for (n, l), v in samples.items() if n == name and ("service", service) in l)


def docker(log, stream="stdout"):
    return json.dumps({"log": log, "stream": stream, "time": "2026-11-11T12:45:18.240393806Z"})


def test_terminal_colours_are_stripped_in_every_format_and_envelope(tmp_path):
    green, bold, reset = f"{ESC}[32m", f"{ESC}[1m", f"{ESC}[0m"
    uvicorn = [
        f'{green}INFO{reset}:     172.20.0.1:57738 - "{bold}GET /api/users/5 HTTP/1.1{reset}" '
        f'{green}200 OK{reset}',
        f'{green}INFO{reset}:     172.20.0.1:57738 - "GET /api/users/6 HTTP/1.1" '
        f'{ESC}[31m500 Internal Server Error{reset}',
        f'{ESC}[38;5;196mINFO{ESC}[39m:     1.2.3.4:5 - "POST /api/users/7 HTTP/1.1" 201 Created',
    ]
    samples = oneshot(tmp_path, {
        "uvicorn": ("format: uvicorn", uvicorn, ""),
        # Inside a docker record the colours arrive JSON-escaped.
        "docker": ("format: uvicorn, envelope: docker", [docker(l + "\n") for l in uvicorn], ""),
        "cri": ("format: uvicorn, envelope: cri",
                [f"2026-11-27T10:00:00.1Z stdout F {l}" for l in uvicorn], ""),
        "nginx": ("format: nginx", [
            f'{green}10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/1 HTTP/1.1" 200 '
            f'5 "-" "curl/8"{reset}'], ""),
        "json": ("format: json", [
            f'{bold}{{"method":"GET","endpoint":"/api/users/9","status_code":404,'
            f'"duration_ms":12}}{reset}'], ""),
    })
    for service in ("uvicorn", "docker", "cri"):
        assert requests(samples, service) == 3, service
        assert requests(samples, service, status_code=500, path="/api/users/{user_id}") == 1
        assert requests(samples, service, method="POST", status_code=201) == 1
    assert requests(samples, "nginx", status_code=200) == 1
    assert requests(samples, "json", status_code=404) == 1
    assert observed(samples, "json") == 1


def test_spaces_inside_the_request_target(tmp_path):
    samples = oneshot(tmp_path, {
        "nginx": ("format: nginx", [
            '192.0.2.1 - - [14/Jun/2026:15:58:13 -0400] "GET /index.php?x=a b HTTP/1.1" 404 151 '
            '"-" "curl/8.0"',
            '192.0.2.1 - - [14/Jun/2026:15:58:13 -0400] "GET /a b c/d HTTP/1.1" 400 0 "-" "x"',
        ], ""),
        "gunicorn": ("format: gunicorn", [
            '10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /search?q=two words HTTP/1.1" 200 1 '
            '"-" "curl/8"'], ""),
        "uvicorn": ("format: uvicorn", [
            'INFO:     1.2.3.4:5 - "GET /api/users/5?q=a b HTTP/1.1" 502 Bad Gateway'], ""),
    })
    assert requests(samples, "nginx", status_code=404, path="/index.php") == 1
    assert requests(samples, "nginx", status_code=400) == 1
    assert requests(samples, "gunicorn", path="/search") == 1
    assert requests(samples, "uvicorn", status_code=502, path="/api/users/{user_id}") == 1


def test_partial_records_are_joined_per_stream(tmp_path):
    interleaved = [
        docker('INFO:     172.17.0.1:40001 - "GET /api/users/'),
        docker("Traceback (most recent call last):\n", "stderr"),
        docker('6 HTTP/1.1" 500 Internal Server Error\n'),
        # stderr split too, around a whole stdout line
        docker("INFO:     1.2.3.4:5 - \"GET /api/", "stderr"),
        docker('INFO:     1.2.3.4:5 - "GET /api/users/8 HTTP/1.1" 200 OK\n'),
        docker('users/9 HTTP/1.1" 503 Service Unavailable\n', "stderr"),
    ]
    cri = [
        '2026-11-27T10:00:00.1Z stdout P INFO:     172.17.0.1:40001 - "GET /api/users/',
        "2026-11-27T10:00:00.2Z stderr F Traceback (most recent call last):",
        '2026-11-27T10:00:00.3Z stdout F 6 HTTP/1.1" 500 Internal Server Error',
        '2026-11-27T10:00:00.4Z stderr P INFO:     1.2.3.4:5 - "GET /api/',
        '2026-11-27T10:00:00.5Z stdout F INFO:     1.2.3.4:5 - "GET /api/users/8 HTTP/1.1" 200 OK',
        '2026-11-27T10:00:00.6Z stderr F users/9 HTTP/1.1" 503 Service Unavailable',
    ]
    samples = oneshot(tmp_path, {
        "docker": ("format: uvicorn, envelope: docker", interleaved, ""),
        "cri": ("format: uvicorn, envelope: cri", cri, ""),
    })
    for service in ("docker", "cri"):
        assert requests(samples, service) == 3, service
        assert requests(samples, service, status_code=500) == 1, service
        assert requests(samples, service, status_code=503) == 1, service
        assert requests(samples, service, status_code=200) == 1, service
        assert errors(samples, service, "not_access_line") == 1, service  # the traceback
        assert errors(samples, service, "no_match") == 0, service


def test_json_durations_absent_empty_dash_or_lists(tmp_path):
    fields = "format: json, json: {method: method, path: request_uri, status: status, " \
             "duration: upstream_response_time, duration_unit: s}"
    line = '{{"method":"GET","request_uri":"/api/users/{i}","status":"{s}","upstream_response_time":{d}}}'
    samples = oneshot(tmp_path, {
        "nginx_json": (fields, [
            line.format(i=1, s=200, d='""'),
            line.format(i=2, s=502, d='"-"'),
            line.format(i=3, s=200, d='"0.010, 0.020 : 0.005"'),
            line.format(i=4, s=200, d='"0.250"'),
            line.format(i=5, s=504, d='"-, -"'),
            line.format(i=6, s=200, d="null"),
            line.format(i=7, s=200, d='"-1"'),  # not a duration: counted, no observation
            '{"method":"GET","request_uri":"/api/users/8","status":"200"}',
        ], ""),
    })
    assert requests(samples, "nginx_json") == 8
    assert requests(samples, "nginx_json", status_code=502) == 1
    assert observed(samples, "nginx_json") == 2
    assert abs(duration_sum(samples, "nginx_json") - 0.285) < 1e-9
    assert self_metric(samples, "fastapi_exporter_log_invalid_durations_total", "nginx_json") == 1


def test_unquoted_fields_with_spaces_find_the_one_split_that_fits(tmp_path):
    fmt = "format: nginx, nginx: {log_format: '$remote_addr \"$request\" $status " \
          "$sent_http_content_type $request_time'}"
    samples = oneshot(tmp_path, {
        "nginx": (fmt, [
            '192.0.2.4 "GET /foobar HTTP/1.1" 200 text/html; charset=utf-8 0.047',
            '192.0.2.4 "GET /api/users/3 HTTP/1.1" 500 application/json 1.5',
            '192.0.2.4 "GET /x HTTP/1.1" 200 multipart/form-data; boundary=a b c 0.003',
            '192.0.2.4 "GET /y HTTP/1.1" 200 text/plain; charset=utf-8 fast',  # no split fits
        ], ""),
        "gunicorn": ("format: gunicorn, gunicorn: {log_format: '%(h)s %(r)s %(s)s %(a)s %(D)s'}", [
            "10.0.0.1 GET /api/users/1 HTTP/1.1 200 Mozilla/5.0 (X11; Linux x86_64) 1500",
        ], ""),
    })
    assert requests(samples, "nginx") == 4
    assert observed(samples, "nginx") == 3
    assert abs(duration_sum(samples, "nginx") - 1.55) < 1e-9
    assert self_metric(samples, "fastapi_exporter_log_invalid_durations_total", "nginx") == 1
    assert requests(samples, "gunicorn", status_code=200, path="/api/users/{user_id}") == 1
    assert abs(duration_sum(samples, "gunicorn") - 0.0015) < 1e-12


def test_server_lines_mixed_into_the_access_log_are_not_parse_errors(tmp_path):
    uvicorn = [
        "INFO:     Started server process [3102]",
        "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete.",
        "INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)",
        'INFO:     1.2.3.4:5 - "GET /api/users/1 HTTP/1.1" 200 OK',
        "ERROR:    Exception in ASGI application",
        "Traceback (most recent call last):",
        '  File "/usr/lib/python3/dist-packages/uvicorn/protocols/http/h11_impl.py", line 408, in '
        "run_asgi",
        "    result = await app(  # type: ignore[func-returns-value]",
        "ZeroDivisionError: division by zero",
        'INFO:     1.2.3.4:5 - "GET /api/users/2 HTTP/1.1" 500 Internal Server Error',
        "WARNING:  Invalid HTTP request received.",
        "INFO:     ('127.0.0.1', 50000) - \"WebSocket /ws\" [accepted]",
        "INFO:     connection open",
        'INFO:     1.2.3.4:5 - "GET /x HTTP/1.1" abc OK',  # an access line, broken
    ]
    samples = oneshot(tmp_path, {
        "uvicorn": ("format: uvicorn", uvicorn, ""),
        "json": ("format: json", [
            "INFO:     Started server process [3102]",
            '{"level":"INFO","message":"Application startup complete."}',
            '{"method":"GET","endpoint":"/api/users/1","status_code":200,"duration_ms":3}',
            '{"method":"GET","endpoint":"/api/users/1",',  # broken: a parse error
        ], ""),
        "nginx": ("format: nginx", [
            "2026/11/27 10:00:00 [error] 12#12: *3 connect() failed (111: Connection refused)",
            '10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/1 HTTP/1.1" 200 5 "-" "x"',
            '10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/1 HTTP/1.1" 2x0 5 "-" "x"',
        ], ""),
    })
    assert requests(samples, "uvicorn") == 2
    assert errors(samples, "uvicorn", "not_access_line") == 12
    assert errors(samples, "uvicorn", "invalid_status") == 1
    assert requests(samples, "json") == 1
    assert errors(samples, "json", "not_access_line") == 2
    assert errors(samples, "json", "invalid_json") == 1
    assert requests(samples, "nginx") == 1
    assert errors(samples, "nginx", "not_access_line") == 1
    assert errors(samples, "nginx", "invalid_status") == 1


def test_exclude_paths_with_and_without_trailing_slash(tmp_path):
    samples = oneshot(tmp_path, {
        "api": ("format: uvicorn", [
            'INFO:     1.2.3.4:5 - "GET /health HTTP/1.1" 200 OK',
            'INFO:     1.2.3.4:5 - "GET /health/ HTTP/1.1" 200 OK',
            'INFO:     1.2.3.4:5 - "GET /metrics/?x=1 HTTP/1.1" 200 OK',
            'INFO:     1.2.3.4:5 - "GET /healthz HTTP/1.1" 200 OK',
            'INFO:     1.2.3.4:5 - "GET http://example.com/health HTTP/1.1" 200 OK',
        ], "    exclude_paths: [/health, /metrics/]\n"),
    })
    assert requests(samples, "api") == 1  # /healthz only
    assert self_metric(samples, "fastapi_exporter_log_excluded_total", "api") == 4


def test_gunicorn_uvicorn_worker_lines_are_uvicorns(tmp_path):
    """gunicorn -k uvicorn.workers.UvicornWorker --access-logfile F writes uvicorn's access
    message ('%s - "%s %s HTTP/%s" %d', uvicorn/protocols/http/h11_impl.py) through gunicorn's
    "%(message)s" handler, whatever --access-logformat says: no status phrase, no duration.
    docs/access-logs.md says to read such a file with `format: uvicorn`."""
    samples = oneshot(tmp_path, {
        "worker": ("format: uvicorn", [
            '127.0.0.1:54321 - "GET /api/users/3 HTTP/1.1" 200',
            '127.0.0.1:54322 - "GET /api/users/4?x=1 HTTP/1.1" 404',
            '[2026-11-30 08:00:00 +0000] [12] [INFO] Booting worker with pid: 12'], ""),
    })
    assert requests(samples, "worker", path="/api/users/{user_id}") == 2
    assert requests(samples, "worker", status_code=404) == 1
    assert observed(samples, "worker") == 0


def test_real_gunicorn_uvicorn_worker_ignores_access_logformat(tmp_path):
    """The same with a real gunicorn (Debian's) serving the example app through uvicorn's
    worker, asked for %(D)s: its access log has no duration, and reads as uvicorn's."""
    from exporter import EXAMPLE_APP, PYTHON, free_port, http_get, kill_tree, wait_until, \
        wait_serving
    access = tmp_path / "gunicorn-access.log"
    port = free_port()
    env = dict(os.environ, ACCESS_LOG=str(tmp_path / "app.log"))
    server = subprocess.Popen(
        [PYTHON, "-m", "gunicorn", "-k", "uvicorn.workers.UvicornWorker", "-w", "2",
         "-b", f"127.0.0.1:{port}", "--access-logfile", str(access),
         "--access-logformat", '%(h)s "%(r)s" %(s)s %(D)s', "app:app"],
        cwd=EXAMPLE_APP, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_serving(f"http://127.0.0.1:{port}", what="gunicorn serving")
        assert http_get(f"http://127.0.0.1:{port}/api/users/3")[0] == 200
        assert http_get(f"http://127.0.0.1:{port}/api/users/5000")[0] == 404
        wait_until(lambda: access.exists() and
                   len(access.read_text().splitlines()) >= 3, what="gunicorn's access lines")
    finally:
        kill_tree(server)
    lines = access.read_text().splitlines()
    # uvicorn's message ('127.0.0.1:PORT - "GET /api/users/3 HTTP/1.1" 200'): the client's
    # port after its address, and no duration after the status, whatever the format said.
    assert all(re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /\S+ HTTP/1\.1" \d{3}', line)
               for line in lines), lines
    samples = oneshot(tmp_path, {"worker": ("format: uvicorn", lines, "")})
    assert requests(samples, "worker", path="/api/users/{user_id}") == 2
    assert requests(samples, "worker", status_code=404) == 1
    assert requests(samples, "worker", path="/health") >= 1
    assert observed(samples, "worker") == 0
