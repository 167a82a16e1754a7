#!/usr/bin/env python3
"""A webhook receiver for walnotify's tests: loopback only, stops by itself.

Answers every POST with 200, except as told:
  --script A,B,...   the first requests get these answers, in order, then 200:
                     ok | 500 | 400 | 429:SECONDS (with Retry-After) | stall (read the request,
                     answer nothing for --stall-s, close) | close (read half the body, close)
  --reject ID,...    every request holding an event whose values.id is one of these gets 400
Writes:
  --port-file F      the port it listens on (written once it listens)
  --log F            for every request answered 2xx, before the answer leaves, one line per event:
                     "LSN SEQ TABLE OP ID" (the tests' fault log format)
  --requests F       one JSON line per request: what came and what it was answered
  --bodies           the requests' lines also hold each body's lines ("lines")
GET /idle answers once no other connection is open: once a client that was killed has had its
connections closed, everything it had sent is logged (or dropped) by then.
--redirect URL     every POST to /hook is answered 307 with Location: URL (a path elsewhere, or
                   another server), its body not read as events
Options: --tls-cert/--tls-key (HTTPS), --token (Authorization: Bearer expected; 401 otherwise),
--count-only (no parsing or logging: a benchmark sink), --max-seconds (lifetime bound).
It exits when its parent dies, after --max-seconds, or on SIGTERM.
"""
import argparse
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.script = [a for a in args.script.split(",") if a] if args.script else []
        self.requests = 0
        self.open = 0  # connections being served
        self.idle = threading.Condition(self.lock)
        self.connections = 0
        self.events = 0
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None
        self.reqlog = open(args.requests, "a", encoding="utf-8") if args.requests else None

    def next_action(self):
        with self.lock:
            self.requests += 1
            return self.requests, (self.script.pop(0) if self.script else "ok")

    def record(self, entry):
        if self.reqlog is None:
            return
        with self.lock:
            self.reqlog.write(json.dumps(entry, sort_keys=True) + "\n")
            self.reqlog.flush()


def events_of(body):
    """(lsn, seq, table, op, id) of every JSON line of the body; a message or a snapshot event
    (no seq, no table) shows its ordinal as seq and "-" as table."""
    out = []
    for line in body.decode("utf-8").splitlines():
        if not line.strip():
            continue
        ev = json.loads(line)
        values = ev.get("values") or {}
        out.append((ev.get("lsn", ev.get("snapshot")), ev.get("seq", ev.get("ordinal")),
                    ev.get("table", "-"), ev["op"], values.get("id")))
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self):
        super().setup()
        with STATE.lock:
            STATE.connections += 1
            STATE.open += 1
            self.conn_number = STATE.connections

    def finish(self):
        try:
            super().finish()
        finally:
            with STATE.lock:
                STATE.open -= 1
                STATE.idle.notify_all()

    def log_message(self, fmt, *args):  # quiet
        pass

    def answer(self, status, headers=()):
        body = b"refused\n" if status >= 400 else b"ok\n"
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        if self.path != "/idle":
            self.answer(404)
            return
        with STATE.lock:
            STATE.idle.wait_for(lambda: STATE.open <= 1, timeout=60)  # 1: this one
        self.answer(200)

    def do_POST(self):
        state = STATE
        length = int(self.headers.get("Content-Length", "0"))
        number, action = state.next_action()
        entry = {
            "n": number,
            "conn": self.conn_number,
            "action": action,
            "key": self.headers.get("Idempotency-Key"),
            "lsn": self.headers.get("Walnotify-Commit-LSN"),
            "part": self.headers.get("Walnotify-Part"),
            "last": self.headers.get("Walnotify-Last-Part"),
            "seq": self.headers.get("Walnotify-Seq"),
            "ordinal": self.headers.get("Walnotify-Ordinal"),
            "type": self.headers.get("Content-Type"),
            "extra": self.headers.get("X-Walnotify-Test"),
            "path": self.path,
            "api_key": self.headers.get("X-Api-Key"),
            "authorization": self.headers.get("Authorization"),
            "bytes": length,
        }
        if action == "close":
            self.rfile.read(max(1, length // 2))
            state.record(entry)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self.rfile.read(length)
        if state.args.redirect and self.path == "/hook":
            entry["status"] = 307
            state.record(entry)
            self.answer(307, [("Location", state.args.redirect)])
            return
        if action == "stall":
            state.record(entry)
            time.sleep(state.args.stall_s)
            self.close_connection = True
            return
        if state.args.count_only:
            with state.lock:
                state.events += body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
            self.answer(200)
            return
        events = events_of(body)
        if state.args.bodies:
            entry["lines"] = body.decode("utf-8").splitlines()
        entry["events"] = len(events)
        entry["ids"] = [e[4] for e in events]
        status, headers = 200, []
        if state.args.token is not None and \
                self.headers.get("Authorization") != "Bearer " + state.args.token:
            status = 401
        elif action.startswith("429"):
            status, headers = 429, [("Retry-After", action.split(":")[1] if ":" in action else "1")]
        elif action in ("500", "400"):
            status = int(action)
        elif state.args.reject is not None and \
                any(e[4] in state.args.reject.split(",") for e in events):
            status = 400
        entry["status"] = status
        with state.lock:
            if status == 200 and state.log is not None:
                for lsn, seq, table, op, ident in events:
                    state.log.write("%s %d %s %s %s\n" % (lsn, seq, table, op, ident))
                # Read by tests on this machine: the page cache is enough, and an fsync on a busy
                # disk could outlast the client's timeout.
                state.log.flush()
        state.record(entry)
        self.answer(status, headers)


def watchdog(parent, deadline):
    while True:
        if os.getppid() != parent or time.monotonic() > deadline:
            os._exit(0)
        time.sleep(0.2)


def main():
    global STATE
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--requests")
    p.add_argument("--script", default="")
    p.add_argument("--reject")
    p.add_argument("--bodies", action="store_true")
    p.add_argument("--redirect")
    p.add_argument("--stall-s", type=float, default=3.0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--token")
    p.add_argument("--count-only", action="store_true")
    p.add_argument("--max-seconds", type=float, default=300.0)
    args = p.parse_args()
    STATE = State(args)

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=watchdog, args=(os.getppid(), time.monotonic() + args.max_seconds),
                     daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)
    server.serve_forever()


STATE = None
if __name__ == "__main__":
    sys.exit(main())
