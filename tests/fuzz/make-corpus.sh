#!/usr/bin/env bash
# Regenerates tests/fuzz/corpus: real pgoutput (protocol version 1) messages from a throwaway
# PostgreSQL 15, one file per distinct message, named NNN-Kind.
#
#   tests/fuzz/make-corpus.sh [OUT]     OUT defaults to tests/fuzz/corpus (replaced)
#
# Every message kind of protocol 1 is produced: Begin, Commit, Origin, Relation, Type, Insert,
# Update (no old row, key, full old row, unchanged TOAST), Delete (key, full), Truncate (one
# table, several, CASCADE, RESTART IDENTITY) and logical decoding Messages, in text and in binary
# mode. Needs the PostgreSQL 15 server (tests/pg-harness.sh) and perl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
OUT=${1:-$ROOT/tests/fuzz/corpus}
HARNESS=$ROOT/tests/pg-harness.sh
PGDIR=""
FRAME_MAX=4 # Begin and Commit messages kept

cleanup() {
    if [ -n "$PGDIR" ]; then
        "$HARNESS" stop "$PGDIR" || echo "make-corpus: could not stop the server in $PGDIR" >&2
    fi
}

sql() {
    psql -X -q -v ON_ERROR_STOP=1 -At "$@"
}

# The workload: every statement below becomes one or more messages.
workload() {
    sql <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE plain (id int PRIMARY KEY, name text, born date, score numeric(8, 2),
                    flags bool[], doc jsonb, feel mood, raw bytea);
CREATE TABLE fullrow (id bigint, note varchar(20));
ALTER TABLE fullrow REPLICA IDENTITY FULL;
CREATE TABLE big (id int PRIMARY KEY, blob text, small int);
ALTER TABLE big ALTER COLUMN blob SET STORAGE EXTERNAL;
CREATE TABLE parent (id serial PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
CREATE TABLE "Odd ""Name""" ("Col ""x""" text, "ü" int);
CREATE SCHEMA other;
CREATE TABLE other.t (k text PRIMARY KEY, v float8);
CREATE PUBLICATION pub FOR ALL TABLES;
SELECT 1 FROM pg_create_logical_replication_slot('slot_text', 'pgoutput');
SELECT 1 FROM pg_create_logical_replication_slot('slot_binary', 'pgoutput');
SELECT pg_replication_origin_create('upstream');

INSERT INTO plain VALUES (1, 'one', '2024-02-29', 12.5, '{t,f,NULL}', '{"a": [1, "x"]}', 'ok',
                          '\x00ff10');
INSERT INTO plain (id) VALUES (2);
INSERT INTO plain VALUES (3, E'tab\there "quoted" \\ back', '1999-12-31', -0.01, '{}',
                          '"é"', 'happy', '');
UPDATE plain SET name = 'uno' WHERE id = 1;
UPDATE plain SET id = 10 WHERE id = 2;
DELETE FROM plain WHERE id = 3;
INSERT INTO fullrow VALUES (1, 'a'), (2, NULL);
UPDATE fullrow SET note = 'b' WHERE id = 1;
DELETE FROM fullrow WHERE id = 2;
INSERT INTO big SELECT 1, string_agg(md5(g::text), '') , 0 FROM generate_series(1, 80) g;
UPDATE big SET small = 1 WHERE id = 1;
INSERT INTO parent DEFAULT VALUES;
INSERT INTO child VALUES (1, 1);
INSERT INTO "Odd ""Name""" VALUES ('x', 1);
INSERT INTO other.t VALUES ('k', 1.5), ('nan', 'NaN');
UPDATE other.t SET v = '-Infinity' WHERE k = 'k';
BEGIN;
INSERT INTO plain (id, name) VALUES (20, 'in a transaction');
SELECT 1 FROM pg_logical_emit_message(true, 'walnotify', 'transactional message');
ALTER TABLE plain ADD COLUMN extra int DEFAULT 7;
INSERT INTO plain (id) VALUES (21);
COMMIT;
SELECT 1 FROM pg_logical_emit_message(false, 'walnotify', '\x00010203'::bytea);
TRUNCATE fullrow;
TRUNCATE big, "Odd ""Name""" RESTART IDENTITY;
TRUNCATE parent CASCADE;
SELECT pg_replication_origin_session_setup('upstream');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/ABCDEF', now());
INSERT INTO other.t VALUES ('from upstream', 0);
COMMIT;
SELECT pg_replication_origin_session_reset();
SQL
}

# Writes every message of one slot as OUT/NNN-Kind, skipping byte-identical repeats and keeping
# only a few of the Begin and Commit messages, which differ only in their numbers.
capture() {
    local slot=$1 binary=$2 hex kind name sum
    local -A names=([B]=Begin [C]=Commit [O]=Origin [R]=Relation [Y]=Type [I]=Insert [U]=Update
                    [D]=Delete [T]=Truncate [M]=Message)
    while IFS= read -r hex; do
        [ -n "$hex" ] || continue
        sum=$(printf '%s' "$hex" | sha1sum | cut -c1-40)
        [ -z "${SEEN[$sum]:-}" ] || continue
        SEEN[$sum]=1
        kind=$(printf '%s' "${hex:0:2}" | perl -ne 'print chr(hex($_))')
        PER_KIND[$kind]=$((${PER_KIND[$kind]:-0} + 1))
        if [ "$kind" = B ] || [ "$kind" = C ]; then
            [ "${PER_KIND[$kind]}" -le "$FRAME_MAX" ] || continue
        fi
        name=$(printf '%03d-%s' "$COUNT" "${names[$kind]:-Unknown}")
        printf '%s' "$hex" | perl -ne 'print pack("H*", $_)' >"$OUT/$name"
        COUNT=$((COUNT + 1))
    done < <(sql -c "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes(
                        '$slot', NULL, NULL, 'proto_version', '1', 'publication_names', 'pub',
                        'messages', 'true', 'binary', '$binary')")
}

main() {
    local out
    command -v perl >/dev/null 2>&1 || { echo "make-corpus: perl is missing" >&2; exit 1; }
    trap cleanup EXIT
    PGDIR=$(mktemp -d /tmp/walnotify-corpus.XXXXXX)
    out=$("$HARNESS" start "$PGDIR")
    PGHOST=$(sed -n 's/^PGHOST=//p' <<<"$out")
    PGPORT=$(sed -n 's/^PGPORT=//p' <<<"$out")
    export PGHOST PGPORT PGUSER=postgres PGDATABASE=postgres

    workload >/dev/null
    rm -rf -- "$OUT"
    mkdir -p -- "$OUT"
    declare -gA SEEN=() PER_KIND=()
    COUNT=1
    capture slot_text false
    capture slot_binary true
    echo "make-corpus: $(find "$OUT" -type f | wc -l) messages, $(cat "$OUT"/* | wc -c) bytes, in $OUT"
}

main "$@"
