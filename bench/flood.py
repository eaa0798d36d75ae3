#!/usr/bin/env python3
"""bench/flood.py: the load generator and the meters behind bench/flood.sh.

Python 3.11 standard library only. It only ever connects to 127.0.0.1: every URL it is
given must be http://127.0.0.1:PORT.

Subcommands (flood.sh calls them; each writes one JSON document to OUT, or stdout):

  legit URL TOKEN_FILE SECONDS GAP OUT
      The legitimate user's cheap authenticated request, in a loop for SECONDS: a fresh
      connection (as vault-cli makes one per command), `GET /v1/cases` with
      `Authorization: Bearer TOKEN`, the whole answer read; then GAP seconds of pause.
      TOKEN_FILE is vault-cli's token cache ({"token": ...}). Records each latency and
      each failure (an answer other than 200, a connection error, a timeout).

  flood --url URL --seconds S --conc N --slow M --known NAME --server-pid PID OUT
      Unauthenticated floods from N concurrent keep-alive connections, shared out over
      the request kinds in KINDS below, and up to M slow connections that send a partial
      request head and then trickle one byte every --trickle seconds. At the end it
      looks at each slow connection: still open, answered by the server, or closed by
      it; and counts the server's open file descriptors (/proc/PID/fd) while they are
      all still held.

  logsize DB [--since-seq N]
      The access log: rows, highest seq, bytes of the database files (db, -wal, -shm),
      and with --since-seq the rows after N and their size (read-only).

  summary DIR
      Reads what flood.sh left in DIR and prints the readable summary, then one JSON line.
"""

import argparse
import asyncio
import base64
import collections
import errno
import http.client
import json
import os
import resource
import socket
import sqlite3
import statistics
import sys
import time
import urllib.parse

# --- common --------------------------------------------------------------------------------


def loopback_port(url):
    """The port of http://127.0.0.1:PORT; anything else is refused."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or u.hostname != "127.0.0.1" or not u.port:
        sys.exit(f"flood.py: only http://127.0.0.1:PORT is allowed, got {url!r}")
    return u.port


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def err_name(e):
    """A short, stable name for an exception, for counting."""
    if isinstance(e, asyncio.TimeoutError | TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(e, asyncio.IncompleteReadError | EOFError):
        return "closed-before-answer"
    if isinstance(e, OSError) and e.errno is not None:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def pct(values, p):
    """Nearest-rank percentile (the ceil(p/100 * n)-th smallest), or None."""
    if not values:
        return None
    v = sorted(values)
    k = max(1, -(-len(v) * p // 100))
    return v[int(k) - 1]


def write_json(path, doc):
    text = json.dumps(doc)
    if path in (None, "-"):
        print(text)
    else:
        with open(path, "w") as f:
            f.write(text)


# --- legit ---------------------------------------------------------------------------------


def cmd_legit(a):
    port = loopback_port(a.url)
    with open(a.token_file) as f:
        token = json.load(f)["token"]
    start = time.monotonic()
    deadline = start + a.seconds
    lat_ms, failures, failed_at, ok_at = [], collections.Counter(), [], []
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        at = time.monotonic() - start
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=a.timeout)
            c.request("GET", "/v1/cases", headers={"Authorization": f"Bearer {token}"})
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                lat_ms.append((time.perf_counter() - t0) * 1000)
                ok_at.append(at)
            else:
                failures[f"status {r.status}"] += 1
                failed_at.append(at)
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            failures[err_name(e)] += 1
            failed_at.append(at)
        time.sleep(a.gap)
    write_json(a.out, {"ok": len(lat_ms), "lat_ms": lat_ms, "failures": dict(failures), "failed_at_s": failed_at, "ok_at_s": ok_at})


# --- flood ---------------------------------------------------------------------------------


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def big_alg_token(alg_bytes):
    """A JWT whose header's `alg` is alg_bytes long: unparseable, and large."""
    header = b64url(json.dumps({"alg": "A" * alg_bytes, "typ": "JWT"}).encode())
    payload = b64url(b'{"sub":"alice","exp":4102444800}')
    return header + b"." + payload + b"." + b64url(b"\0" * 64)


class Kinds:
    """The request each kind of flood sends; random parts differ per request."""

    def __init__(self, known, alg_bytes):
        self.known = known
        self.big_token = big_alg_token(alg_bytes)

    @staticmethod
    def req(method, path, headers=(), body=b""):
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
        head += [h if isinstance(h, bytes) else h.encode() for h in headers]
        if body or method in ("POST", "PUT"):
            head += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
        return b"\r\n".join(head) + b"\r\n\r\n" + body

    def build(self, kind):
        rnd = os.urandom(8).hex()
        if kind == "challenge_known":
            return self.req("POST", "/v1/login/challenge", body=json.dumps({"user": self.known}).encode())
        if kind == "challenge_unknown":
            return self.req("POST", "/v1/login/challenge", body=json.dumps({"user": "x" + rnd}).encode())
        if kind == "login_garbage":
            body = json.dumps({"challenge_id": os.urandom(16).hex(), "response": "garbage" + rnd}).encode()
            return self.req("POST", "/v1/login", body=body)
        if kind == "cases_no_token":
            return self.req("GET", "/v1/cases")
        if kind == "cases_bogus_token":
            return self.req("GET", "/v1/cases", headers=[b"Authorization: Bearer " + self.big_token])
        if kind == "malformed_json":
            return self.req("POST", "/v1/login/challenge", body=b'{"user": "' + rnd.encode())
        if kind == "unknown_route":
            return self.req("GET", f"/v1/no-such-route/{rnd}")
        if kind == "wrong_method":
            return self.req("DELETE", "/v1/cases")
        raise ValueError(kind)


ALL_KINDS = [
    "challenge_known",
    "challenge_unknown",
    "login_garbage",
    "cases_no_token",
    "cases_bogus_token",
    "malformed_json",
    "unknown_route",
    "wrong_method",
]


async def read_response(reader):
    """Reads one HTTP/1.1 response; returns (status, server_will_close)."""
    line = await reader.readline()
    if not line:
        raise EOFError
    status = int(line.split(None, 2)[1])
    length, chunked, close = None, False, False
    while True:
        h = await reader.readline()
        if not h:
            raise EOFError
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.partition(b":")
        k, v = k.strip().lower(), v.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v:
            chunked = True
        elif k == b"connection" and v == b"close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        close = True
    return status, close


class KindStats:
    def __init__(self):
        self.sent = 0
        self.status = collections.Counter()
        self.errors = collections.Counter()
        self.connects = 0
        self.lat_ms = []

    def doc(self):
        return {
            "sent": self.sent,
            "answered": sum(self.status.values()),
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "errors": dict(self.errors),
            "connections": self.connects,
            "p50_ms": pct(self.lat_ms, 50),
            "p99_ms": pct(self.lat_ms, 99),
        }


def attacker_addr(i):
    """The loopback address the i-th attacking connection comes from: FLOOD_ADDRS
    addresses from 127.0.1.1 on (default 1), never the legitimate user's 127.0.0.1."""
    n = max(1, int(os.environ.get("FLOOD_ADDRS", "1")))
    k = i % n
    return (f"127.0.{1 + k // 250}.{1 + k % 250}", 0)


async def flood_worker(port, kinds, kind, st, deadline, timeout, i=0):
    reader = writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=attacker_addr(i)), timeout
                )
                st.connects += 1
            req = kinds.build(kind)
            t0 = time.perf_counter()
            st.sent += 1
            writer.write(req)
            await asyncio.wait_for(writer.drain(), timeout)
            status, close = await asyncio.wait_for(read_response(reader), timeout)
            st.lat_ms.append((time.perf_counter() - t0) * 1000)
            st.status[status] += 1
            if close:
                writer.close()
                writer = None
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            st.errors[err_name(e)] += 1
            if writer is not None:
                writer.close()
                writer = None
            await asyncio.sleep(0.05)  # no tight loop on a refused connect
    if writer is not None:
        writer.close()


class Slow:
    """One slow connection and what became of it."""

    __slots__ = ("state", "opened_at", "closed_after", "answer", "error", "writer")

    def __init__(self):
        self.state = "connecting"  # connecting, open, answered, closed, failed
        self.opened_at = None
        self.closed_after = None
        self.answer = None
        self.error = None
        self.writer = None


SLOW_HEAD = b"GET /v1/cases HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def slow_conn(port, s, sem, deadline, trickle, timeout, i=0):
    async with sem:
        if time.monotonic() >= deadline:
            s.state = "not-tried"
            return
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=attacker_addr(i)), timeout
            )
        except Exception as e:  # noqa: BLE001
            s.state, s.error = "failed", err_name(e)
            return
    s.writer = writer
    s.opened_at = time.monotonic()
    s.state = "open"
    try:
        writer.write(SLOW_HEAD)
        await writer.drain()
        got = b""
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), trickle)
            except asyncio.TimeoutError:
                writer.write(b"a")  # one more byte of a header value that never ends
                await writer.drain()
                continue
            if not chunk:
                break
            got += chunk
            if s.answer is None and b" " in got:
                s.answer = got.split(b"\r\n", 1)[0].decode(errors="replace")[:40]
        s.state = "answered" if s.answer else "closed"
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001
        s.state, s.error = ("answered" if s.answer else "closed"), err_name(e)
    s.closed_after = time.monotonic() - s.opened_at


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


async def run_flood(a):
    port = loopback_port(a.url)
    kinds_enabled = [k for k in a.kinds.split(",") if k]
    for k in kinds_enabled:
        if k not in ALL_KINDS:
            sys.exit(f"flood.py: unknown kind {k!r}; known: {','.join(ALL_KINDS)}")
    kinds = Kinds(a.known, a.alg_bytes)
    stats = {k: KindStats() for k in kinds_enabled}
    start = time.monotonic()
    deadline = start + a.seconds
    tasks = []
    if kinds_enabled:
        for i in range(a.conc):
            k = kinds_enabled[i % len(kinds_enabled)]
            tasks.append(asyncio.create_task(flood_worker(port, kinds, k, stats[k], deadline, a.timeout, i)))
    slows = [Slow() for _ in range(a.slow)]
    sem = asyncio.Semaphore(a.slow_open_conc)
    slow_tasks = [
        asyncio.create_task(slow_conn(port, s, sem, deadline, a.trickle, a.timeout, i)) for i, s in enumerate(slows)
    ]
    fds_max = 0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        n = fd_count(a.server_pid) if a.server_pid else None
        fds_max = max(fds_max, n or 0)
    # The check: each slow connection as it is now, while all are still held.
    fds_at_end = fd_count(a.server_pid) if a.server_pid else None
    await asyncio.sleep(0)  # let pending EOFs land
    elapsed = time.monotonic() - start
    states = collections.Counter(s.state for s in slows)
    answers = collections.Counter(s.answer for s in slows if s.answer)
    slow_errors = collections.Counter(s.error for s in slows if s.error)
    closed_after = [s.closed_after for s in slows if s.closed_after is not None]
    held_for = [time.monotonic() - s.opened_at for s in slows if s.state == "open"]
    for t in slow_tasks:
        t.cancel()
    for s in slows:
        if s.writer is not None:
            s.writer.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*slow_tasks, return_exceptions=True)
    return {
        "seconds": elapsed,
        "conc": a.conc,
        "kinds": {k: v.doc() for k, v in stats.items()},
        "slow": {
            "wanted": a.slow,
            "opened": sum(1 for s in slows if s.opened_at is not None),
            "held_at_end": states["open"],
            "closed_by_server": states["closed"],
            "answered_by_server": states["answered"],
            "answers": dict(answers),
            "connect_failed": states["failed"],
            "not_tried": states["not-tried"] + states["connecting"],
            "errors": dict(slow_errors),
            "closed_after_s": {
                "min": min(closed_after) if closed_after else None,
                "median": statistics.median(closed_after) if closed_after else None,
                "max": max(closed_after) if closed_after else None,
            },
            "held_for_s_min": min(held_for) if held_for else None,
            "trickle_s": a.trickle,
        },
        "server_fds": {"max_seen": fds_max or None, "at_end": fds_at_end},
        "client_fd_limit": raise_fd_limit(),
    }


def cmd_flood(a):
    raise_fd_limit()
    doc = asyncio.run(run_flood(a))
    write_json(a.out, doc)


# --- logsize -------------------------------------------------------------------------------


def cmd_logsize(a):
    files = sum(os.path.getsize(a.db + x) for x in ("", "-wal", "-shm") if os.path.exists(a.db + x))
    c = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True, timeout=30)
    rows, max_seq = c.execute("SELECT count(*), coalesce(max(seq), -1) FROM access_log").fetchone()
    doc = {"time": time.time(), "rows": rows, "max_seq": max_seq, "db_file_bytes": files}
    if a.since_seq is not None:
        # Bytes of the text and hash columns of each new row, plus 16 for seq and time_ms.
        n, b, biggest = c.execute(
            """SELECT count(*), coalesce(sum(b), 0), coalesce(max(b), 0) FROM (
                 SELECT length(CAST(actor AS BLOB)) + length(CAST(action AS BLOB))
                      + length(CAST(case_id AS BLOB)) + length(CAST(recording_id AS BLOB))
                      + length(CAST(reason AS BLOB)) + length(CAST(outcome AS BLOB))
                      + length(CAST(details AS BLOB)) + length(prev) + length(hash) + 16 AS b
                 FROM access_log WHERE seq > ?)""",
            (a.since_seq,),
        ).fetchone()
        doc.update(new_rows=n, new_row_bytes=b, biggest_new_row_bytes=biggest)
        doc["new_by_action_outcome"] = {
            f"{act}/{out}": cnt
            for act, out, cnt in c.execute(
                "SELECT action, outcome, count(*) FROM access_log WHERE seq > ? "
                "GROUP BY action, outcome ORDER BY count(*) DESC",
                (a.since_seq,),
            )
        }
    c.close()
    write_json(None, doc)


# --- summary -------------------------------------------------------------------------------


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def load_logins(path):
    """Lines 'START_US MICROSECONDS EXIT_STATUS' from flood.sh's login loop (START_US:
    when the login started, from the start of the loop)."""
    lat, fail, failed_at, ok_at = [], collections.Counter(), [], []
    try:
        with open(path) as f:
            for line in f:
                at, us, rc = line.split()
                if rc == "0":
                    lat.append(int(us) / 1000)
                    ok_at.append(int(at) / 1e6)
                else:
                    fail[f"exit {rc}"] += 1
                    failed_at.append(int(at) / 1e6)
    except OSError:
        pass
    return lat, fail, failed_at, ok_at


def first_failure(failed_at, ok_at):
    """When the first failure came (seconds into the measurement), and how many attempts
    started from then on."""
    if not failed_at:
        return {"first_failure_s": None, "attempts_from_first_failure": None}
    t = min(failed_at)
    return {
        "first_failure_s": t,
        "attempts_from_first_failure": sum(1 for x in failed_at + ok_at if x >= t),
    }


def fmt(x, unit="", nd=1):
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}{unit}"


def cmd_summary(a):
    d = a.dir
    meta = load(os.path.join(d, "meta.json"), {})
    out = {"label": meta.get("label"), "meta": meta, "phases": {}}
    lines = []
    p = lines.append
    p(f"== flood.sh: {meta.get('label')} ({meta.get('trust')}), server pid {meta.get('server_pid')}, "
      f"nofile server {meta.get('server_nofile')} / client {meta.get('client_nofile')}, "
      f"{meta.get('cpus')} CPUs")
    for phase in ("baseline", "flood"):
        http_doc = load(os.path.join(d, f"{phase}-http.json"), {"lat_ms": [], "failures": {}, "ok": 0})
        login_lat, login_fail, login_failed_at, login_ok_at = load_logins(os.path.join(d, f"{phase}-login.txt"))
        log0 = load(os.path.join(d, f"{phase}-log0.json"), {})
        log1 = load(os.path.join(d, f"{phase}-log1.json"), {})
        secs = (log1.get("time", 0) - log0.get("time", 0)) or None
        per_min = (60 / secs) if secs else None
        srv_log = meta.get(f"{phase}_server_log_bytes")
        ph = {
            "http": {
                "ok": http_doc["ok"],
                "p50_ms": pct(http_doc["lat_ms"], 50),
                "p99_ms": pct(http_doc["lat_ms"], 99),
                "max_ms": max(http_doc["lat_ms"]) if http_doc["lat_ms"] else None,
                "failures": http_doc["failures"],
                **first_failure(http_doc.get("failed_at_s", []), http_doc.get("ok_at_s", [])),
            },
            "login": {
                "ok": len(login_lat),
                "p50_ms": pct(login_lat, 50),
                "p99_ms": pct(login_lat, 99),
                "max_ms": max(login_lat) if login_lat else None,
                "failures": dict(login_fail),
                **first_failure(login_failed_at, login_ok_at),
            },
            "log": {
                "seconds": secs,
                "rows_added": log1.get("new_rows"),
                "row_bytes_added": log1.get("new_row_bytes"),
                "biggest_row_bytes": log1.get("biggest_new_row_bytes"),
                "db_file_bytes_added": (log1.get("db_file_bytes", 0) - log0.get("db_file_bytes", 0)) if log1 else None,
                "rows_per_min": log1.get("new_rows", 0) * per_min if per_min else None,
                "row_bytes_per_min": log1.get("new_row_bytes", 0) * per_min if per_min else None,
                "db_file_bytes_per_min": ((log1.get("db_file_bytes", 0) - log0.get("db_file_bytes", 0)) * per_min)
                if per_min else None,
                "server_stderr_bytes_added": srv_log,
                "by_action_outcome": log1.get("new_by_action_outcome"),
            },
        }
        out["phases"][phase] = ph
    base, fl = out["phases"]["baseline"], out["phases"]["flood"]
    p("")
    p("legitimate user (alice)                      baseline            during flood")
    for key, name in (("http", "GET /v1/cases (direct, token)"), ("login", "vault-cli login (process)")):
        b, f = base[key], fl[key]
        p(f"  {name:<42} p50 {fmt(b['p50_ms'], ' ms'):>10}  p50 {fmt(f['p50_ms'], ' ms'):>10}")
        p(f"  {'':<42} p99 {fmt(b['p99_ms'], ' ms'):>10}  p99 {fmt(f['p99_ms'], ' ms'):>10}")
        p(f"  {'':<42} ok  {b['ok']:>10}     ok  {f['ok']:>10}")
        p(f"  {'':<42} failures {json.dumps(b['failures'])} / {json.dumps(f['failures'])}")
        if f["first_failure_s"] is not None:
            p(f"  {'':<42} first failure during the flood {fmt(f['first_failure_s'], ' s')} into the measurement; "
              f"{f['attempts_from_first_failure']} attempts from then on, of which "
              f"{sum(f['failures'].values())} failed")
    p("")
    p("access log (rows and bytes added)            baseline            during flood")
    for key, name, unit in (
        ("rows_per_min", "rows per minute", ""),
        ("row_bytes_per_min", "row bytes per minute", " B"),
        ("db_file_bytes_per_min", "db+wal file growth per minute", " B"),
    ):
        p(f"  {name:<42} {fmt(base['log'][key], unit, 0):>18}  {fmt(fl['log'][key], unit, 0):>18}")
    p(f"  {'largest row added':<42} {fmt(base['log']['biggest_row_bytes'], ' B', 0):>18}  "
      f"{fmt(fl['log']['biggest_row_bytes'], ' B', 0):>18}")
    p(f"  {'server stderr bytes added':<42} {fmt(base['log']['server_stderr_bytes_added'], ' B', 0):>18}  "
      f"{fmt(fl['log']['server_stderr_bytes_added'], ' B', 0):>18}")
    p(f"  flood rows by action/outcome: {json.dumps(fl['log']['by_action_outcome'])}")
    fd = load(os.path.join(d, "flood-flood.json"), {})
    out["flood"] = fd
    if fd:
        p("")
        p(f"flood requests ({fd['conc']} connections, {fmt(fd['seconds'], ' s')}):")
        tot_sent = tot_ans = 0
        for k, v in fd["kinds"].items():
            tot_sent += v["sent"]
            tot_ans += v["answered"]
            p(f"  {k:<20} sent {v['sent']:>8}  answered {v['answered']:>8}  by status {json.dumps(v['status'])}"
              f"  p50 {fmt(v['p50_ms'], ' ms')}  conns {v['connections']}  errors {json.dumps(v['errors'])}")
        p(f"  {'total':<20} sent {tot_sent:>8}  answered {tot_ans:>8}  ({fmt(tot_ans / fd['seconds'], '/s', 0)})")
        s = fd["slow"]
        p(f"slow connections (partial head, one byte every {s['trickle_s']} s): wanted {s['wanted']}, "
          f"opened {s['opened']}, still held at the end {s['held_at_end']}, closed by server "
          f"{s['closed_by_server']}, answered by server {s['answered_by_server']} {json.dumps(s['answers'])}, "
          f"connect failed {s['connect_failed']}, not tried {s['not_tried']}, errors {json.dumps(s['errors'])}")
        if s["held_for_s_min"] is not None:
            p(f"  those still held had been open for at least {fmt(s['held_for_s_min'], ' s')}")
        ca = s["closed_after_s"]
        if ca["max"] is not None:
            p(f"  server closed them after {fmt(ca['min'], ' s')} .. median {fmt(ca['median'], ' s')} .. "
              f"{fmt(ca['max'], ' s')}")
        p(f"server open fds: max seen {fd['server_fds']['max_seen']}, with all slow connections held "
          f"{fd['server_fds']['at_end']}")
    p(f"server: alive after the flood: {meta.get('alive_after_flood')}, answers after the flood: "
      f"{meta.get('answers_after_flood')}, VmHWM {meta.get('vmhwm_kib')} KiB, VmRSS {meta.get('vmrss_kib')} KiB, "
      f"fds now {meta.get('fds_after')}")
    print("\n".join(lines))
    # The JSON line: everything but the raw latency lists.
    print("FLOOD_JSON " + json.dumps(out, separators=(",", ":")))


# --- main ----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    lg = sub.add_parser("legit")
    lg.add_argument("url")
    lg.add_argument("token_file")
    lg.add_argument("seconds", type=float)
    lg.add_argument("gap", type=float)
    lg.add_argument("out")
    lg.add_argument("--timeout", type=float, default=10.0)
    lg.set_defaults(fn=cmd_legit)

    fl = sub.add_parser("flood")
    fl.add_argument("out")
    fl.add_argument("--url", required=True)
    fl.add_argument("--seconds", type=float, required=True)
    fl.add_argument("--conc", type=int, default=256)
    fl.add_argument("--kinds", default=",".join(ALL_KINDS))
    fl.add_argument("--known", default="alice")
    fl.add_argument("--alg-bytes", type=int, default=300_000)
    fl.add_argument("--slow", type=int, default=5000)
    fl.add_argument("--slow-open-conc", type=int, default=200)
    fl.add_argument("--trickle", type=float, default=5.0)
    fl.add_argument("--timeout", type=float, default=10.0)
    fl.add_argument("--server-pid", type=int)
    fl.set_defaults(fn=cmd_flood)

    ls = sub.add_parser("logsize")
    ls.add_argument("db")
    ls.add_argument("--since-seq", type=int)
    ls.set_defaults(fn=cmd_logsize)

    sm = sub.add_parser("summary")
    sm.add_argument("dir")
    sm.set_defaults(fn=cmd_summary)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
