"""--web.config.file: HTTPS and basic auth, scraped by a real Prometheus."""

import base64
import http.client
import re
import signal
import socket
import ssl
import subprocess
import time
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # libxcrypt, the library the exporter verifies with (deprecated in 3.11)

from exporter import Exporter, Prometheus, wait_until

PASSWORD = "s3cret-scraper"


def bcrypt(password):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{folder}/{name}.key", "-out", f"{folder}/{name}.crt",
            "-days", "2", "-subj", f"/CN={name}")


def make_cert(folder, name, ca, server=True):
    """A key and a certificate signed by `ca`; a server one is valid for 127.0.0.1."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{folder}/{name}.key", "-out", f"{folder}/{name}.csr",
            "-subj", f"/CN={name}")
    extensions = folder / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server
                          else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", f"{folder}/{name}.csr", "-CA", f"{folder}/{ca}.crt",
            "-CAkey", f"{folder}/{ca}.key", "-CAcreateserial", "-days", "2",
            "-extfile", str(extensions), "-out", f"{folder}/{name}.crt")


@pytest.fixture
def pki(tmp_path):
    folder = tmp_path / "pki"
    folder.mkdir()
    make_ca(folder, "ca")
    make_cert(folder, "server", "ca")
    make_cert(folder, "server2", "ca")
    make_cert(folder, "client", "ca", server=False)
    return folder


def config(tmp_path):
    return f"positions_file: {tmp_path}/positions.yaml\nservices: []\n"


def web_config(pki, users=None, extra_tls=""):
    users = users if users is not None else {"prometheus": bcrypt(PASSWORD)}
    text = f"""tls_server_config:
  cert_file: {pki}/server.crt
  key_file: {pki}/server.key
{extra_tls}"""
    if users:
        text += "basic_auth_users:\n" + "".join(f"  {u}: '{h}'\n" for u, h in users.items())
    return text


def https_get(port, path, pki, user=None, password=None, client_cert=False):
    """(status, headers, body, the server certificate's serial) over a fresh connection."""
    context = ssl.create_default_context(cafile=f"{pki}/ca.crt")
    if client_cert:
        context.load_cert_chain(f"{pki}/client.crt", f"{pki}/client.key")
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    headers = {}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    serial = connection.sock.getpeercert()["serialNumber"]
    result = (response.status, dict(response.getheaders()), response.read(), serial)
    connection.close()
    return result


def serial_of(pki, name):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", f"{pki}/{name}.crt"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().split("=")[1].upper()


def probe_over_https(exporter, pki):
    """Makes exporter.start() wait for /healthz over HTTPS (trusting the test CA)."""
    def healthy():
        if exporter.process.poll() is not None:
            raise AssertionError(exporter.log_path.read_text())
        try:
            return https_get(exporter.port, "/healthz", pki)[0] == 200
        except OSError:
            return False
    exporter._healthy = healthy


def start_https_exporter(tmp_path, pki):
    """The exporter with web.yml (returned too, to rewrite), once it answers over HTTPS."""
    web = tmp_path / "web.yml"
    web.write_text(web_config(pki))
    exporter = Exporter(tmp_path, config(tmp_path), [f"--web.config.file={web}"])
    probe_over_https(exporter, pki)
    return exporter.start(), web


def test_prometheus_scrapes_over_https_with_basic_auth(tmp_path, pki):
    exporter, _ = start_https_exporter(tmp_path, pki)
    prometheus = None
    try:
        prometheus = Prometheus(tmp_path, exporter.port, f"""    scheme: https
    tls_config:
      ca_file: {pki}/ca.crt
    basic_auth:
      username: prometheus
      password: {PASSWORD}
""")
        # A wrong password, no credentials, an unknown user: 401 with a challenge.
        for user, password in (("prometheus", "wrong"), (None, None), ("nobody", PASSWORD)):
            status, headers, _, _ = https_get(exporter.port, "/metrics", pki, user, password)
            assert status == 401
            assert headers["WWW-Authenticate"].startswith("Basic")
        curl = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %header{www-authenticate}",
             "--cacert", f"{pki}/ca.crt", "-u", "prometheus:wrong",
             f"https://127.0.0.1:{exporter.port}/metrics"], capture_output=True, text=True)
        assert curl.stdout == '401 Basic realm="fastapi-exporter"', curl
        # Plain HTTP to the TLS port: the connection fails, the daemon goes on.
        with pytest.raises((http.client.HTTPException, ConnectionError, socket.timeout)):
            connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=5)
            connection.request("GET", "/metrics")
            connection.getresponse().read()
        raw = socket.create_connection(("127.0.0.1", exporter.port))
        raw.sendall(b"\x16\x03\x01\x00\x05garbage-that-is-not-tls\r\n\r\n")
        raw.close()
        assert exporter.process.poll() is None

        def consecutive_up():
            result = prometheus.query('count_over_time(up{job="fastapi-exporter"}[60s]) * '
                                      '(min_over_time(up{job="fastapi-exporter"}[60s]) == 1)')
            return result and result[0][1] >= 20
        wait_until(consecutive_up, timeout=60, interval=1, what="20 scrapes with up == 1")
        (_, scraped), = prometheus.query(
            'max_over_time(scrape_samples_scraped{job="fastapi-exporter"}[60s])')
        assert scraped > 5  # the exporter's own metrics were read, not just a status
        status, _, body, _ = https_get(exporter.port, "/metrics", pki, "prometheus", PASSWORD)
        assert status == 200
        scrapes = re.search(rb"fastapi_exporter_scrapes_total (\d+)", body)
        assert int(scrapes.group(1)) >= 20
        # The live view's page and API are behind the same TLS and password.
        for path in ("/", "/api/v1/services", "/api/v1/series?range=300", "/api/v1/logs"):
            assert https_get(exporter.port, path, pki, "prometheus", "wrong")[0] == 401, path
            status, headers, body, _ = https_get(exporter.port, path, pki, "prometheus",
                                                 PASSWORD)
            assert status == 200, (path, body[:200])
            assert headers["Content-Type"].startswith(
                "text/html" if path == "/" else "application/json"), path
        assert exporter.process.poll() is None
    finally:
        if prometheus:
            prometheus.stop()
        exporter.stop()


def test_certificate_rotation_and_web_config_reload(tmp_path, pki):
    exporter, web = start_https_exporter(tmp_path, pki)
    try:
        assert https_get(exporter.port, "/metrics", pki, "prometheus", PASSWORD)[3] == \
            serial_of(pki, "server")
        # The files are replaced in place: the next handshake serves the new certificate.
        time.sleep(0.05)
        (pki / "server.key").write_bytes((pki / "server2.key").read_bytes())
        (pki / "server.crt").write_bytes((pki / "server2.crt").read_bytes())
        wait_until(lambda: https_get(exporter.port, "/metrics", pki, "prometheus", PASSWORD)[3]
                   == serial_of(pki, "server2"), what="rotated certificate served")

        def reload_successful():
            status, _, body, _ = https_get(exporter.port, "/metrics", pki, "prometheus", PASSWORD)
            assert status == 200
            return re.search(rb"fastapi_exporter_config_last_reload_successful (\d)", body).group(1)

        # A broken hash: refused, the old users still work.
        web.write_text(web_config(pki, {"prometheus": "$2y$10$tooshort"}))
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: reload_successful() == b"0", what="failed reload")
        assert "basic_auth_users.prometheus: must be a bcrypt hash" in exporter.log_path.read_text()
        # A missing certificate: refused the same way, naming the key and the file.
        web.write_text(web_config(pki).replace("server.crt", "missing.crt"))
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "tls_server_config.cert_file: cannot read" in
                   exporter.log_path.read_text(), what="missing certificate reported")
        assert reload_successful() == b"0"

        # A good one with another user: the old password stops working at once.
        web.write_text(web_config(pki, {"scraper": bcrypt("other")}))
        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: https_get(exporter.port, "/metrics", pki, "scraper", "other")[0] == 200,
                   what="new user accepted")
        assert https_get(exporter.port, "/metrics", pki, "prometheus", PASSWORD)[0] == 401

        # Client certificates required: without one the handshake fails; with one it passes.
        web.write_text(web_config(pki, {}, f"""  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {pki}/ca.crt
"""))
        exporter.process.send_signal(signal.SIGHUP)

        def refuses_without_client_cert():
            try:
                https_get(exporter.port, "/metrics", pki)
                return False
            except (ssl.SSLError, ConnectionError):
                return True
        wait_until(refuses_without_client_cert, what="client certificate required")
        assert https_get(exporter.port, "/metrics", pki, client_cert=True)[0] == 200
        assert exporter.stop() == 0
    finally:
        exporter.stop()


def test_hash_password_prints_a_hash_libxcrypt_verifies(tmp_path):
    exporter = Exporter(tmp_path, config(tmp_path))
    result = subprocess.run([exporter.args[0], "--web.hash-password"], input="pa ss:word\n",
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    hash_ = result.stdout.strip()
    assert hash_.startswith("$2b$10$") and crypt.crypt("pa ss:word", hash_) == hash_
    empty = subprocess.run([exporter.args[0], "--web.hash-password"], input="",
                           capture_output=True, text=True, timeout=10)
    assert empty.returncode == 1 and "no password" in empty.stderr


def test_missing_certificate_at_start_is_a_clear_error(tmp_path, pki):
    web = tmp_path / "web.yml"
    web.write_text(web_config(pki).replace("server.key", "nope.key"))
    exporter = Exporter(tmp_path, config(tmp_path), [f"--web.config.file={web}"])
    result = subprocess.run(exporter.args, capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert re.search(r"web\.yml:\d+:\d+: tls_server_config\.key_file: cannot read .*nope\.key: "
                     r"No such file or directory", result.stderr + result.stdout)
    check = subprocess.run([exporter.args[0], "--check-config", str(exporter.config_path),
                            f"--web.config.file={web}"], capture_output=True, text=True)
    assert check.returncode == 1 and "tls_server_config.key_file" in check.stderr
