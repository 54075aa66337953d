"""A config file whose YAML aliases multiply its lists (issue #17): refused by --check-config
quickly and in little memory, naming the limit, instead of expanding to millions of entries
(51 s and 1.7 GB before). The bounds below only tell a bounded answer from that blow-up."""

import resource
import subprocess
import time

from exporter import BIN


def test_alias_multiplied_lists_are_refused_within_bounds(tmp_path):
    entry = "e: &e {path: /var/log/a.log, format: regex, regex: {pattern: '(?P<method>x)(?P<path>y)(?P<status>z)'}}\n"
    logs = "l: &l [" + ",".join(["*e"] * 4000) + "]\n"
    service = "s: &s {name: a, access_logs: *l, routes: [/a]}\n"
    services = "services: [" + ",".join(["*s"] * 1000) + "]\n"
    config = tmp_path / "bomb.yaml"
    config.write_text(entry + logs + service + services)
    assert config.stat().st_size < 20_000
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    result = subprocess.run([BIN, "--check-config", str(config)], capture_output=True, text=True,
                            timeout=60)
    elapsed = time.monotonic() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert result.returncode == 1
    assert (f"{config}:4:1: services[*].access_logs: too many entries: 4000000 over all "
            "services, at most 1000") in result.stdout + result.stderr
    assert elapsed < 20, elapsed
    # ru_maxrss is the largest child so far; a sanitizer build adds its shadow memory.
    assert peak_kb < 400_000 or before >= peak_kb, peak_kb
