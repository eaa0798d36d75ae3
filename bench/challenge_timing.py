#!/usr/bin/env python3
"""Can a caller tell an enrolled user name from an unknown one by a login challenge's
status, shape or timing? (issue 13: "known and unknown names indistinguishable in status
and timing").

Usage: bench/challenge_timing.py URL KNOWN_NAME [N]

Sends N (default 4000) POST /v1/login/challenge requests, alternating between
KNOWN_NAME and a made-up name of the same length, each on a fresh connection from one
of 200 loopback addresses in turn (127.0.3.1 ...), so that neither name meets a rate
limit more than the other. Prints, per name: the statuses, the challenge id's length,
and latency p50/p90/p99/mean; and the difference of the medians with a bootstrap 95%
interval. Standard library only; it connects to 127.0.0.1 only.
"""

import json
import random
import socket
import statistics
import sys
import time
import urllib.parse


def one(port, src, name):
    body = json.dumps({"user": name}).encode()
    req = (
        f"POST /v1/login/challenge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    t0 = time.perf_counter()
    s.sendall(req)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    dt = (time.perf_counter() - t0) * 1000
    s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    id_len = len(json.loads(payload).get("challenge_id", "")) if status == 200 else 0
    return status, id_len, dt


def main():
    url = urllib.parse.urlparse(sys.argv[1])
    if url.hostname != "127.0.0.1":
        sys.exit("challenge_timing.py: only http://127.0.0.1:PORT")
    known = sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
    unknown = "".join(random.choice("qxzvkj") for _ in known)
    res = {known: [], unknown: []}
    for i in range(n):
        name = known if i % 2 == 0 else unknown
        src = f"127.0.3.{1 + (i // 2) % 200}"
        res[name].append(one(url.port, src, name))
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1]  # noqa: E731
    for label, name in (("enrolled", known), ("unknown", unknown)):
        rows = res[name]
        lat = [r[2] for r in rows]
        statuses = sorted({r[0] for r in rows})
        ids = sorted({r[1] for r in rows})
        print(
            f"{label:9} {name:>10}: n {len(rows)}  statuses {statuses}  id length {ids}  "
            f"p50 {q(lat, 50):.2f} ms  p90 {q(lat, 90):.2f}  p99 {q(lat, 99):.2f}  mean {statistics.mean(lat):.2f}"
        )
    a = [r[2] for r in res[known]]
    b = [r[2] for r in res[unknown]]
    diff = statistics.median(a) - statistics.median(b)
    boots = []
    for _ in range(2000):
        boots.append(
            statistics.median(random.choices(a, k=len(a))) - statistics.median(random.choices(b, k=len(b)))
        )
    boots.sort()
    print(f"median(enrolled) - median(unknown) = {diff:+.3f} ms, 95% interval [{boots[50]:+.3f}, {boots[1949]:+.3f}]")


if __name__ == "__main__":
    main()
