"""A small steady mix of requests over the example app's routes, for `make run`: mostly
successes, some 404s and 500s, some slow requests. Standard library only.

Usage: python3 traffic.py http://127.0.0.1:8000 [requests per second]"""

import random
import sys
import time
import urllib.error
import urllib.request

# (weight, method, path): about 8% 404s, 4% 500s, 6% slow.
MIX = [
    (40, "GET", lambda: f"/api/users/{random.randint(1, 1000)}"),
    (8, "GET", lambda: f"/api/users/{random.randint(2000, 9999)}"),  # 404
    (15, "POST", lambda: "/api/items"),
    (10, "GET", lambda: f"/api/items/{random.randint(1, 50)}/reviews/r{random.randint(1, 9)}"),
    (12, "GET", lambda: f"/api/orders/{random.randint(1, 500)}"),
    (5, "GET", lambda: f"/api/orders/{random.randint(1, 500)}/lines/{random.randint(1, 5)}"),
    (6, "GET", lambda: f"/api/slow?ms={random.choice((150, 300, 600))}"),
    (4, "GET", lambda: "/api/error"),  # 500
]


def main():
    base = sys.argv[1].rstrip("/")
    per_second = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    weights = [w for w, _, _ in MIX]
    while True:
        _, method, path = random.choices(MIX, weights)[0]
        request = urllib.request.Request(base + path(), method=method)
        try:
            urllib.request.urlopen(request, timeout=5).read()
        except urllib.error.HTTPError:
            pass  # 404 and 500 are part of the mix
        except OSError:
            time.sleep(1)  # the app is not up (yet, or any more)
        time.sleep(random.expovariate(per_second))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
