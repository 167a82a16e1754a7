#!/usr/bin/env python3
"""A PostgreSQL server that is not one: it completes the startup of every connection (no TLS,
no password), then answers every query in one odd shape, so that a test can check how walnotify
reads a server's answers it did not expect. It listens on 127.0.0.1, prints its port on the
first line of standard output, and serves until it is killed or --lifetime seconds pass.

Shapes (--shape):
  zero-columns   every query returns one row of zero columns
  one-column     every query returns one row of one text column, "logical"
  no-rows        every query returns zero rows of one text column
  control-text   every query fails with an error whose text holds terminal control sequences

With --tls-cert and --tls-key it accepts TLS (the client's SSLRequest) with that certificate.
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import threading
import time

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608
CONTROL_TEXT = "bad\x1b[31mred\x1b[0m\x07bell\rreturn\x08back"


def message(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def cstring(text):
    return text.encode() + b"\0"


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def startup(conn, tls):
    """Answers SSL requests (with TLS when there is a context) and GSS requests ('N') until the
    startup message; returns the connection to go on with, None on a cancel."""
    while True:
        length = struct.unpack("!I", recv_exact(conn, 4))[0]
        body = recv_exact(conn, length - 4)
        code = struct.unpack("!I", body[:4])[0]
        if code == SSL_REQUEST and tls is not None:
            conn.sendall(b"S")
            conn = tls.wrap_socket(conn, server_side=True)
            continue
        if code in (SSL_REQUEST, GSSENC_REQUEST):
            conn.sendall(b"N")
            continue
        if code == CANCEL_REQUEST:
            return None
        if code != PROTOCOL_3:
            raise EOFError
        break
    out = message(b"R", struct.pack("!I", 0))
    for name, value in (("server_version", "15.0"), ("server_encoding", "UTF8"),
                        ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                        ("integer_datetimes", "on"), ("standard_conforming_strings", "on")):
        out += message(b"S", cstring(name) + cstring(value))
    out += message(b"K", struct.pack("!II", 4242, 4242))
    out += message(b"Z", b"I")
    conn.sendall(out)
    return conn


def row_description(columns):
    payload = struct.pack("!H", len(columns))
    for name in columns:
        payload += cstring(name) + struct.pack("!IHIhiH", 0, 0, 25, -1, -1, 0)
    return message(b"T", payload)


def data_row(values):
    payload = struct.pack("!H", len(values))
    for value in values:
        raw = value.encode()
        payload += struct.pack("!I", len(raw)) + raw
    return message(b"D", payload)


def error(text):
    payload = b"SERROR\0" + b"VERROR\0" + b"CXX000\0" + b"M" + cstring(text) + b"\0"
    return message(b"E", payload)


def result(shape, described):
    """The answer to one query: (RowDescription unless the client described it already) rows."""
    if shape == "control-text":
        return error(CONTROL_TEXT)
    if shape == "zero-columns":
        head, rows = row_description([]), [data_row([])]
    elif shape == "one-column":
        head, rows = row_description(["x"]), [data_row(["logical"])]
    else:
        head, rows = row_description(["x"]), []
    out = b"" if described else head
    out += b"".join(rows) + message(b"C", cstring("SELECT %d" % len(rows)))
    return out


def serve(conn, shape, tls):
    try:
        conn = startup(conn, tls)
        if conn is None:
            return
        failed = False
        while True:
            kind = recv_exact(conn, 1)
            length = struct.unpack("!I", recv_exact(conn, 4))[0]
            recv_exact(conn, length - 4)
            if kind == b"X":
                return
            if kind == b"Q":
                conn.sendall(result(shape, False) + message(b"Z", b"I"))
            elif kind == b"P":
                if not failed:
                    conn.sendall(message(b"1"))
            elif kind == b"B":
                if not failed:
                    conn.sendall(message(b"2"))
            elif kind == b"D":
                if not failed and shape != "control-text":
                    conn.sendall(row_description([] if shape == "zero-columns" else ["x"]))
            elif kind == b"E":
                if not failed:
                    conn.sendall(result(shape, True))
                    failed = shape == "control-text"
            elif kind == b"S":
                conn.sendall(message(b"Z", b"I"))
                failed = False
            elif kind == b"C":
                conn.sendall(message(b"3"))
    except (EOFError, OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", required=True,
                        choices=["zero-columns", "one-column", "no-rows", "control-text"])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--lifetime", type=float, default=120.0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    with open(args.port_file + ".tmp", "w") as out:
        out.write("%d\n" % listener.getsockname()[1])
    os.rename(args.port_file + ".tmp", args.port_file)
    deadline = time.monotonic() + args.lifetime
    listener.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        conn.settimeout(30.0)
        threading.Thread(target=serve, args=(conn, args.shape, tls), daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
