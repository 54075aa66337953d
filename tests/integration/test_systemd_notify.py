"""Type=notify: what the daemon tells systemd, read from a NOTIFY_SOCKET of our own."""

import os
import signal
import socket

from exporter import Exporter, wait_until


class NotifySocket:
    """The datagram socket systemd would listen on; collects every message."""

    def __init__(self, path):
        self.path = str(path)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.socket.setblocking(False)
        self.messages = []

    def read(self):
        while True:
            try:
                self.messages.append(self.socket.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def count(self, field):
        return sum(field in message.split("\n") for message in self.read())


def test_ready_reloading_watchdog_and_stopping(tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    exporter = Exporter(tmp_path, f"positions_file: {tmp_path}/positions.yaml\nservices: []\n")
    exporter.env = dict(os.environ, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000")
    exporter.start()
    try:
        # READY only once listening: /healthz already answered when start() returned.
        wait_until(lambda: notify.count("READY=1") == 1, what="READY=1")
        wait_until(lambda: notify.count("WATCHDOG=1") >= 3, what="watchdog pings every 100 ms")

        exporter.process.send_signal(signal.SIGHUP)
        wait_until(lambda: notify.count("READY=1") == 2, what="READY=1 after the reload")
        messages = notify.read()
        reloading = [i for i, m in enumerate(messages) if "RELOADING=1" in m.split("\n")]
        readies = [i for i, m in enumerate(messages) if m == "READY=1"]
        assert len(reloading) == 1 and reloading[0] < readies[1]
        assert "MONOTONIC_USEC=" in messages[reloading[0]]

        assert exporter.stop() == 0
        assert notify.count("STOPPING=1") == 1
    finally:
        exporter.stop()
