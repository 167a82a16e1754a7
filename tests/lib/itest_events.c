/* itest_events: the jsonl output read back; see itest_events.h. */
#include "itest_events.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest_files.h"

static const char *const fixed_keys[] = {"lsn", "seq", "xid", "commit_time", "table", "op"};
#define NFIXED (sizeof fixed_keys / sizeof fixed_keys[0])

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" */
static bool is_commit_time(const char *s, size_t n)
{
    size_t frac;

    if (n < 20 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) || s[7] != '-' ||
        !is_digits(s + 8, 2) || s[10] != 'T' || !is_digits(s + 11, 2) || s[13] != ':' ||
        !is_digits(s + 14, 2) || s[16] != ':' || !is_digits(s + 17, 2) || s[n - 1] != 'Z')
        return false;
    if (n == 20)
        return true;
    frac = n - 21;
    return s[19] == '.' && frac >= 1 && frac <= 6 && is_digits(s + 20, frac);
}

static const jl_value *typed_member(const jl_value *json, size_t i, jl_kind kind,
                                    const char *line)
{
    ck_assert_msg(json->items[i]->kind == kind, "member %s has the wrong type in: %.400s",
                  json->keys[i], line);
    return json->items[i];
}

static void check_tail(itest_event *event, const char *line)
{
    const jl_value *json = event->json;

    for (size_t i = NFIXED; i < json->count; i++) {
        const char *key = json->keys[i];
        const jl_value **slot = NULL;
        jl_kind kind = JL_OBJECT;

        if (strcmp(key, "values") == 0)
            slot = &event->values;
        else if (strcmp(key, "old") == 0)
            slot = &event->old;
        else if (strcmp(key, "unchanged") == 0) {
            slot = &event->unchanged;
            kind = JL_ARRAY;
        } else if (strcmp(key, "options") == 0) {
            slot = &event->options;
            kind = JL_ARRAY;
        }
        ck_assert_msg(slot != NULL, "unexpected key %s in: %.400s", key, line);
        ck_assert_msg(*slot == NULL, "key %s twice in: %.400s", key, line);
        *slot = typed_member(json, i, kind, line);
    }
    if (strcmp(event->op, "insert") == 0 || strcmp(event->op, "update") == 0)
        ck_assert_msg(event->values != NULL, "no values in: %.400s", line);
    if (strcmp(event->op, "truncate") == 0)
        ck_assert_msg(event->values == NULL && event->options != NULL,
                      "a truncate needs options and no values: %.400s", line);
    else
        ck_assert_msg(event->options == NULL, "options outside a truncate: %.400s", line);
    if (event->unchanged != NULL)
        ck_assert_msg(strcmp(event->op, "update") == 0, "unchanged outside an update: %.400s",
                      line);
}

static itest_event parse_event(const char *path, size_t number, const char *line, size_t length)
{
    char err[256];
    itest_event event = {0};
    const jl_value *json, *v;
    char *end;

    event.json = jl_parse(line, length, err, sizeof err);
    ck_assert_msg(event.json != NULL, "%s line %zu is not valid JSON (%s): %.400s", path, number,
                  err, line);
    json = event.json;
    ck_assert_msg(json->kind == JL_OBJECT && json->count > NFIXED,
                  "%s line %zu is not an event: %.400s", path, number, line);
    for (size_t i = 0; i < NFIXED; i++)
        ck_assert_msg(strcmp(json->keys[i], fixed_keys[i]) == 0,
                      "%s line %zu: key %zu is %s, expected %s: %.400s", path, number, i,
                      json->keys[i], fixed_keys[i], line);
    v = typed_member(json, 0, JL_STRING, line);
    ck_assert_msg(wn_lsn_parse(v->text, &event.lsn), "bad lsn %s", v->text);
    v = typed_member(json, 1, JL_NUMBER, line);
    event.seq = strtol(v->text, &end, 10);
    ck_assert_msg(*end == '\0' && event.seq >= 0, "bad seq %s", v->text);
    v = typed_member(json, 2, JL_NUMBER, line);
    event.xid = strtoll(v->text, &end, 10);
    ck_assert_msg(*end == '\0' && event.xid > 0, "bad xid %s", v->text);
    v = typed_member(json, 3, JL_STRING, line);
    ck_assert_msg(is_commit_time(v->text, v->length), "bad commit_time %s", v->text);
    event.table = typed_member(json, 4, JL_STRING, line)->text;
    event.op = typed_member(json, 5, JL_STRING, line)->text;
    ck_assert_msg(strcmp(event.op, "insert") == 0 || strcmp(event.op, "update") == 0 ||
                      strcmp(event.op, "delete") == 0 || strcmp(event.op, "truncate") == 0,
                  "bad op %s", event.op);
    check_tail(&event, line);
    return event;
}

itest_events itest_read_events(const char *path)
{
    itest_lines lines = itest_read_lines(path);
    itest_events events = {0};

    events.event = calloc(lines.count + 1, sizeof *events.event);
    ck_assert_msg(events.event != NULL, "out of memory");
    for (size_t i = 0; i < lines.count; i++)
        events.event[events.count++] = parse_event(path, i + 1, lines.line[i], lines.length[i]);
    itest_lines_free(&lines);
    return events;
}

void itest_events_free(itest_events *events)
{
    for (size_t i = 0; i < events->count; i++)
        jl_free(events->event[i].json);
    free(events->event);
    memset(events, 0, sizeof *events);
}

const char *itest_value(const itest_event *event, const char *column)
{
    const jl_value *v = jl_get(event->values, column);

    ck_assert_msg(v != NULL, "event %s %ld of %s has no column %s", event->op, event->seq,
                  event->table, column);
    if (v->kind == JL_NULL)
        return NULL;
    ck_assert_msg(v->kind == JL_STRING, "column %s is neither a string nor null", column);
    return v->text;
}

static void append(char **out, size_t *length, const char *bytes, size_t n)
{
    char *grown = realloc(*out, *length + n + 1);

    ck_assert_msg(grown != NULL, "out of memory");
    memcpy(grown + *length, bytes, n);
    *length += n;
    grown[*length] = '\0';
    *out = grown;
}

static void append_str(char **out, size_t *length, const char *text)
{
    append(out, length, text, strlen(text));
}

static void describe_value(char **out, size_t *length, const jl_value *v)
{
    char note[64];

    if (v->kind == JL_NULL) {
        append_str(out, length, "null");
    } else if (v->length > 64) {
        snprintf(note, sizeof note, "<%zu bytes>", v->length);
        append_str(out, length, note);
    } else {
        append(out, length, v->text, v->length);
    }
}

/* "name{k:v,...}" for an object, "name[a,b]" for an array. */
static void describe_member(char **out, size_t *length, const char *name, const jl_value *v)
{
    bool object = v->kind == JL_OBJECT;

    append_str(out, length, name);
    append_str(out, length, object ? "{" : "[");
    for (size_t i = 0; i < v->count; i++) {
        if (i > 0)
            append_str(out, length, ",");
        if (object) {
            append_str(out, length, v->keys[i]);
            append_str(out, length, ":");
        }
        describe_value(out, length, v->items[i]);
    }
    append_str(out, length, object ? "}" : "]");
}

char *itest_describe(const itest_event *event)
{
    char *out = NULL;
    size_t length = 0;
    char head[256];

    snprintf(head, sizeof head, "%s %s %ld", event->table, event->op, event->seq);
    append_str(&out, &length, head);
    if (event->values != NULL)
        describe_member(&out, &length, " ", event->values);
    if (event->unchanged != NULL)
        describe_member(&out, &length, " unchanged", event->unchanged);
    if (event->old != NULL)
        describe_member(&out, &length, " old", event->old);
    if (event->options != NULL)
        describe_member(&out, &length, " options", event->options);
    return out;
}

void itest_assert_described(const itest_events *events, const char *const *want, size_t count,
                            const char *what)
{
    for (size_t i = 0; i < events->count && i < count; i++) {
        char *got = itest_describe(&events->event[i]);
        ck_assert_msg(strcmp(got, want[i]) == 0, "%s event %zu is\n  %s\nexpected\n  %s", what, i,
                      got, want[i]);
        free(got);
    }
    if (events->count > count) {
        char *extra = itest_describe(&events->event[count]);
        ck_abort_msg("%s has %zu events, expected %zu; the first extra one: %s", what,
                     events->count, count, extra);
    }
    ck_assert_msg(events->count == count, "%s has %zu events, expected %zu; the first missing: %s",
                  what, events->count, count, count > events->count ? want[events->count] : "");
}

void itest_assert_commit_order(const itest_events *events)
{
    for (size_t i = 1; i < events->count; i++) {
        const itest_event *a = &events->event[i - 1], *b = &events->event[i];
        if (a->lsn == b->lsn)
            ck_assert_msg(b->seq > a->seq, "event %zu: seq %ld after %ld in one transaction", i,
                          b->seq, a->seq);
        else
            ck_assert_msg(b->lsn > a->lsn, "event %zu: lsn %llX after %llX", i,
                          (unsigned long long)b->lsn, (unsigned long long)a->lsn);
    }
}
