#!/usr/bin/env python3
"""A walnotify exec sink: appends every event to a SQLite database, dropping replays.

    command = [ "python3", "sqlite_sink.py", "events.db" ];

It speaks the protocol of walnotify's exec plugin (README, "The exec plugin"): it reads one JSON
line per event and marker on standard input, and writes one reply line on standard output. Each
walnotify transaction becomes a savepoint of one open SQLite transaction, which is committed
(and every transaction in it acknowledged with one `ack`) when walnotify asks for a flush, or
after COMMIT_EVERY transactions. The highest identity stored, (commit LSN, seq), is kept in the
database with the rows, so an event that comes again after a crash or a rewind is dropped.

Tables:
    events(lsn, lsn_num, seq, tbl, op, data)   data: the event's JSON line, as walnotify wrote it
    walnotify_progress(lsn_num, seq)            one row: the highest identity stored
"""
import json
import sqlite3
import sys

COMMIT_EVERY = 1000  # walnotify transactions per SQLite commit, at most


def lsn_number(text):
    """'16/B374D848' -> 0x16B374D848."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def reply(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Sink:
    def __init__(self, path):
        # Another copy may be running on the same database (one a killed walnotify left to
        # finish its input): it holds the lock for a moment only.
        self.db = sqlite3.connect(path, isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS events (lsn TEXT NOT NULL, lsn_num INTEGER NOT NULL,"
            " seq INTEGER NOT NULL, tbl TEXT, op TEXT NOT NULL, data TEXT NOT NULL,"
            " PRIMARY KEY (lsn_num, seq))")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS walnotify_progress (lsn_num INTEGER NOT NULL,"
            " seq INTEGER NOT NULL)")
        row = self.db.execute("SELECT lsn_num, seq FROM walnotify_progress").fetchone()
        if row is None:
            self.db.execute("INSERT INTO walnotify_progress VALUES (0, -1)")
            row = (0, -1)
        self.stored = tuple(row)  # the highest identity stored, committed or not
        self.open = None          # the walnotify transaction in hand: its commit LSN text
        self.stored_before = self.stored  # self.stored when it began
        self.unacked = None       # the last walnotify transaction ended but not acknowledged
        self.pending = 0          # walnotify transactions in the open SQLite transaction
        self.skipping = False     # after a reported failure, until walnotify's rewind line

    def sqlite_begin(self):
        if not self.db.in_transaction:
            # The write lock first, then the identity stored: a copy that ran meanwhile may have
            # stored more.
            self.db.execute("BEGIN IMMEDIATE")
            row = self.db.execute("SELECT lsn_num, seq FROM walnotify_progress").fetchone()
            self.stored = tuple(row)

    def durable(self):
        """Commits and acknowledges every transaction ended. A flush may come while a
        transaction is open (a large one): its part so far is committed too, and its savepoint
        starts again; if it is aborted later, that part stays, and is dropped as a replay when
        the transaction comes again."""
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        if self.unacked is not None:
            reply("ack " + self.unacked)
            self.unacked = None
        self.pending = 0
        if self.open is not None:
            self.sqlite_begin()
            self.db.execute("SAVEPOINT txn")
            self.stored_before = self.stored

    def drop_open(self):
        if self.open is not None:
            self.db.execute("ROLLBACK TO txn")
            self.db.execute("RELEASE txn")
            self.stored = self.stored_before
            self.open = None

    def marker(self, msg):
        kind = msg["walnotify"]
        if kind == "rewind":
            self.skipping = False
            self.drop_open()
        elif self.skipping:
            return
        elif kind == "begin":
            self.sqlite_begin()
            self.db.execute("SAVEPOINT txn")
            self.open = msg["lsn"]
            self.stored_before = self.stored
        elif kind == "commit":
            self.db.execute("RELEASE txn")
            self.open = None
            self.unacked = msg["lsn"]
            self.pending += 1
            if self.pending >= COMMIT_EVERY:
                self.durable()
        elif kind == "abort":
            self.drop_open()
        elif kind == "flush":
            self.durable()
        # Markers this sink does not know are ignored: later versions may add some.

    def event(self, line, msg):
        if self.skipping:
            return
        ident = (lsn_number(msg["lsn"]), msg["seq"])
        if ident <= self.stored:
            return  # delivered again: stored already
        try:
            self.db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                (msg["lsn"], ident[0], ident[1], msg.get("table"), msg["op"], line))
            self.db.execute("UPDATE walnotify_progress SET lsn_num = ?, seq = ?", ident)
        except sqlite3.OperationalError as e:  # locked, disk full: may pass
            self.fail("retry " + str(e))
            return
        except sqlite3.DatabaseError as e:  # this row will never go in
            self.fail("fail permanent %s %d %s" % (msg["lsn"], msg["seq"], e))
            return
        self.stored = ident

    def fail(self, text):
        """Reports a failure; nothing counts until walnotify's rewind line."""
        self.drop_open()
        reply(text.replace("\n", " "))
        self.skipping = True

    def run(self):
        for line in sys.stdin:
            line = line.rstrip("\n")
            if not line:
                continue
            msg = json.loads(line)
            if "walnotify" in msg:
                self.marker(msg)
            else:
                self.event(line, msg)
        # End of input: walnotify is stopping. Keep what is complete, and go.
        self.drop_open()
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self.db.close()


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "events.db"
    Sink(path).run()
    print("sqlite sink: end of input, %s closed" % path, file=sys.stderr)


if __name__ == "__main__":
    main()
