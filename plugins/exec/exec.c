/*
 * exec: a walnotify sink in any language. The plugin runs one child process (no shell), writes
 * every event's canonical JSON as one line on its standard input, marks each transaction's end
 * with its commit LSN, and reads back one line per transaction the child has made durable. A
 * transaction is acknowledged to PostgreSQL only after the child acknowledged it: flush waits for
 * every acknowledgement, bounded by ack_timeout_ms. Logical decoding messages are events of
 * their transaction (one sent on its own comes in a transaction of its own); a batch of snapshot
 * rows is framed like a transaction, and since every batch of a snapshot has the same LSN, the
 * child names snapshot events, and acknowledges a batch, by their ordinals.
 *
 * Nothing of a transaction is kept here beyond a bounded output buffer: when the child fails
 * (exits, hangs, writes what is not the protocol, or reports a failure), the host is asked to
 * rewind, and everything the child had not acknowledged comes again, in order. The protocol is
 * specified in the README ("The exec plugin"); the replies are parsed in reply_line().
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <walnotify/plugin.h>

#include "child.h"
#include "settings.h"

#define OUT_CAP (64 * 1024) /* bytes of output gathered before they go to the child */
#define REPLY_MAX 4096      /* bytes of one reply line, newline included */
#define READS_MAX 16        /* reads of replies in a row, before the deadline is looked at */
#define INFLIGHT_MAX 1024   /* transactions sent and not yet acknowledged */
#define EXIT_GRACE_MS 200   /* a child whose pipes closed: time to learn its exit status */
#define REASON_MAX 512

/* A transaction (or a batch of snapshot rows) written to the child: enough to check an
 * acknowledgement and to name its events in a failure, never its events. */
typedef struct txn_record {
    uint64_t lsn; /* commit LSN; a snapshot batch's: the snapshot's consistent point */
    uint32_t xid;
    unsigned kind;      /* WALNOTIFY_TXN_* */
    bool has_change;    /* it holds a change: first_seq and last_seq mean something */
    uint32_t first_seq; /* seq of its first and last change written */
    uint32_t last_seq;
    walnotify_id first; /* identities of its first and last event written */
    walnotify_id last;
    uint64_t events; /* events written */
} txn_record;

/* What a callback that may rewind has to do next. */
typedef enum pending_kind {
    PENDING_NONE = 0,
    PENDING_CHILD, /* the child broke: stop it, rewind */
    PENDING_RETRY, /* the child reported a transient failure naming nothing: rewind */
    PENDING_NAMED  /* the child named failed events: fail_events */
} pending_kind;

typedef struct pending {
    pending_kind kind;
    int grace_ms;              /* PENDING_CHILD: how long it may take to exit by itself */
    walnotify_id first, last;  /* PENDING_NAMED */
    walnotify_failure failure; /* PENDING_NAMED */
    char reason[REASON_MAX];
} pending;

typedef struct exec_state {
    const walnotify_host *host; /* lent until shutdown returns */
    char program[PATH_MAX];     /* argv[0] resolved: the absolute path that is run */
    char **argv;                /* NULL-terminated; strings are the host's */
    char **envp;                /* NULL-terminated; strings are the environment's or the host's */
    const char *cwd;            /* the host's */
    int ack_timeout_ms;
    exec_child child;

    pending pending;
    bool say_rewind; /* the running child reported a failure: tell it where the
                        transactions come again */

    bool in_txn;        /* between begin and commit or abort */
    bool begin_written; /* the open transaction's begin line is written */
    txn_record open;

    txn_record inflight[INFLIGHT_MAX]; /* a ring, oldest at head */
    size_t head;
    size_t count;
    walnotify_id min_sent; /* the oldest and newest ends (record_end) on this child's input: */
    walnotify_id max_sent; /* an acknowledgement between them of one not in flight is harmless */

    char *out; /* OUT_CAP bytes: out[written..used) is still to write */
    size_t used;
    size_t written;

    char reply[REPLY_MAX]; /* a reply line being read */
    size_t reply_len;
} exec_state;

/* ---- WAL positions, as the protocol writes them ("16/B374D848") ----------------------------- */

#define LSN_TEXT_MAX 18 /* "FFFFFFFF/FFFFFFFF" and NUL */

static char *lsn_format(uint64_t lsn, char *text)
{
    snprintf(text, LSN_TEXT_MAX, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return text;
}

/* One to eight hex digits; advances *p past them. */
static bool lsn_half(const char **p, uint64_t *half)
{
    int digits = 0;

    *half = 0;
    for (; digits < 8; digits++, (*p)++) {
        char c = **p;
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;

        if (v < 0)
            break;
        *half = *half << 4 | (uint64_t)v;
    }
    return digits > 0;
}

static bool lsn_parse(const char *text, uint64_t *lsn)
{
    uint64_t high, low;

    if (text == NULL || !lsn_half(&text, &high) || *text++ != '/' || !lsn_half(&text, &low) ||
        *text != '\0')
        return false;
    *lsn = high << 32 | low;
    return true;
}

/* ---- identities ------------------------------------------------------------------------------ */

static int id_cmp(walnotify_id a, walnotify_id b)
{
    if (a.position != b.position)
        return a.position < b.position ? -1 : 1;
    return a.ordinal < b.ordinal ? -1 : a.ordinal > b.ordinal ? 1 : 0;
}

/* What acknowledges a record: "ack LSN" names a transaction past its last event, "ack snapshot
 * LSN ORDINAL" a snapshot batch by its last event. The ring is in this order. */
static walnotify_id record_end(const txn_record *r)
{
    if (r->kind == WALNOTIFY_TXN_SNAPSHOT)
        return r->last;
    return (walnotify_id){.position = r->lsn, .ordinal = UINT64_MAX};
}

static bool record_holds(const txn_record *r, walnotify_id id)
{
    return r->events > 0 && id_cmp(r->first, id) <= 0 && id_cmp(id, r->last) <= 0;
}

/* How messages name a record: "transaction 0/1A2B3C8", "snapshot 0/3000060 up to ordinal 7". */
static const char *record_name(const txn_record *r, char *text, size_t size)
{
    char lsn[LSN_TEXT_MAX];

    if (r->kind == WALNOTIFY_TXN_SNAPSHOT)
        snprintf(text, size, "snapshot %s up to ordinal %" PRIu64, lsn_format(r->lsn, lsn),
                 r->last.ordinal);
    else
        snprintf(text, size, "transaction %s", lsn_format(r->lsn, lsn));
    return text;
}

/* ---- time ------------------------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what goes wrong ------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void child_broke(exec_state *st, int grace_ms,
                                                              const char *format, ...)
{
    va_list args;

    if (st->pending.kind != PENDING_NONE)
        return; /* the first cause is the one that counts */
    st->pending.kind = PENDING_CHILD;
    st->pending.grace_ms = grace_ms;
    va_start(args, format);
    vsnprintf(st->pending.reason, sizeof st->pending.reason, format, args);
    va_end(args);
}

/* A copy of text fit for a log line: control characters shown as '?', cut at max bytes. */
static void printable(char *dst, size_t dstlen, const char *src, size_t srclen)
{
    size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];

        dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[n] = '\0';
}

static void not_protocol(exec_state *st, const char *line, size_t len, const char *why)
{
    char shown[120];

    printable(shown, sizeof shown, line, len);
    child_broke(st, 0, "the child wrote \"%s%s\", which is not the protocol (%s)", shown,
                len >= sizeof shown ? "..." : "", why);
}

/* Forgets every transaction in flight: after a rewind they all come again. */
static void forget_inflight(exec_state *st)
{
    st->head = st->count = 0;
    st->in_txn = false;
    st->begin_written = false;
    memset(&st->open, 0, sizeof st->open);
    st->reply_len = 0;
}

/* ---- replies --------------------------------------------------------------------------------- */

static const txn_record *inflight_at(const exec_state *st, size_t i)
{
    return &st->inflight[(st->head + i) % INFLIGHT_MAX];
}

/* Splits off the next space-separated word of *rest (NUL-terminating it); NULL when none. */
static char *next_word(char **rest)
{
    char *word = *rest, *space;

    if (word == NULL || *word == '\0')
        return NULL;
    space = strchr(word, ' ');
    if (space == NULL) {
        *rest = NULL;
    } else {
        *space = '\0';
        *rest = space + 1;
    }
    return word;
}

static bool parse_u64(const char *text, uint64_t *value)
{
    char *end;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    *value = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0';
}

/*
 * "ack LSN": that transaction and every one before it are durable on the child's side.
 * "ack snapshot LSN ORDINAL": the same for the snapshot batch whose last event is ORDINAL.
 */
static void reply_ack(exec_state *st, const char *line, size_t len, char *rest)
{
    char *first = next_word(&rest), *lsn_text = first, *ordinal_text = NULL;
    walnotify_id end;
    uint64_t lsn, ordinal = 0;
    size_t upto = 0;

    if (first != NULL && strcmp(first, "snapshot") == 0) {
        lsn_text = next_word(&rest);
        ordinal_text = next_word(&rest);
        if (rest != NULL || !lsn_parse(lsn_text, &lsn) || lsn == 0 ||
            !parse_u64(ordinal_text, &ordinal))
            return not_protocol(st, line, len,
                                "ack snapshot takes the snapshot's LSN and the ordinal of a "
                                "batch's last event");
        end = (walnotify_id){.position = lsn - 1, .ordinal = ordinal};
    } else {
        if (rest != NULL || !lsn_parse(lsn_text, &lsn))
            return not_protocol(st, line, len, "ack takes a commit LSN like 0/1A2B3C8");
        end = (walnotify_id){.position = lsn, .ordinal = UINT64_MAX};
    }
    /* The ring grows in delivery order (write_begin sees to it). */
    while (upto < st->count && id_cmp(record_end(inflight_at(st, upto)), end) < 0)
        upto++;
    if (upto < st->count && id_cmp(record_end(inflight_at(st, upto)), end) == 0) {
        st->head = (st->head + upto + 1) % INFLIGHT_MAX;
        st->count -= upto + 1;
        return;
    }
    if (id_cmp(end, st->min_sent) < 0 || id_cmp(end, st->max_sent) > 0)
        not_protocol(st, line, len,
                     "it acknowledges a transaction walnotify has not ended on the child's "
                     "input");
    /* else: acknowledged already, harmless */
}

/* The transaction a failure names by its commit LSN: one in flight, or the open one if it has
 * events written. */
static const txn_record *named_txn(const exec_state *st, uint64_t lsn)
{
    for (size_t i = 0; i < st->count; i++) {
        const txn_record *r = inflight_at(st, i);

        if (r->kind == WALNOTIFY_TXN_CHANGES && r->lsn == lsn)
            return r;
    }
    if (st->in_txn && st->open.events > 0 && st->open.kind == WALNOTIFY_TXN_CHANGES &&
        st->open.lsn == lsn)
        return &st->open;
    return NULL;
}

/* The record of `kind` that holds the identity: one in flight, or the open one. */
static const txn_record *record_holding(const exec_state *st, unsigned kind, walnotify_id id)
{
    for (size_t i = 0; i < st->count; i++) {
        const txn_record *r = inflight_at(st, i);

        if (r->kind == kind && record_holds(r, id))
            return r;
    }
    if (st->in_txn && st->open.kind == kind && record_holds(&st->open, id))
        return &st->open;
    return NULL;
}

static bool parse_seq(const char *text, uint32_t *seq)
{
    char *end;
    unsigned long long v;

    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > UINT32_MAX)
        return false;
    *seq = (uint32_t)v;
    return true;
}

static walnotify_id change_id(uint64_t lsn, uint32_t seq)
{
    return (walnotify_id){.position = lsn, .ordinal = ((uint64_t)seq + 1) << 32};
}

/* FIRST or FIRST-LAST, ordinals. */
static bool parse_ordinals(char *text, uint64_t *first, uint64_t *last)
{
    char *dash = text != NULL ? strchr(text, '-') : NULL;

    if (dash != NULL)
        *dash = '\0';
    if (!parse_u64(text, first))
        return false;
    *last = *first;
    return dash == NULL || (parse_u64(dash + 1, last) && *last >= *first);
}

/*
 * "fail KIND snapshot LSN ORDINAL[-ORDINAL] [REASON]", "fail KIND message LSN ORDINAL[-ORDINAL]
 * [REASON]": events named by what their lines show ("snapshot" or "lsn", and "ordinal"), every
 * one of them in one transaction or batch the child received and did not acknowledge.
 */
static void fail_by_ordinal(exec_state *st, const char *line, size_t len, const char *what,
                            char **rest)
{
    bool snapshot = strcmp(what, "snapshot") == 0;
    char *lsn_text = next_word(rest), *ordinal_text = next_word(rest);
    const txn_record *r;
    uint64_t lsn, first, last;
    pending *p = &st->pending;

    if (!lsn_parse(lsn_text, &lsn) || (snapshot && lsn == 0) ||
        !parse_ordinals(ordinal_text, &first, &last))
        return not_protocol(st, line, len,
                            "fail ... snapshot|message takes an LSN, an ordinal or two "
                            "joined by -, and a reason");
    p->first = (walnotify_id){.position = snapshot ? lsn - 1 : lsn, .ordinal = first};
    p->last = (walnotify_id){.position = p->first.position, .ordinal = last};
    r = record_holding(st, snapshot ? WALNOTIFY_TXN_SNAPSHOT : WALNOTIFY_TXN_CHANGES, p->first);
    if (r == NULL || !record_holds(r, p->last))
        return not_protocol(st, line, len,
                            "it names ordinals the child has not received in one transaction "
                            "or batch, or has acknowledged");
    p->kind = PENDING_NAMED;
}

/* "fail transient|permanent LSN SEQ|* [REASON]": events the child names as failed; or one of
 * the forms of fail_by_ordinal. */
static void reply_fail(exec_state *st, const char *line, size_t len, char *rest)
{
    char *kind = next_word(&rest), *lsn_text = next_word(&rest), *seq_text;
    const txn_record *txn;
    uint64_t lsn;
    uint32_t seq;
    pending *p = &st->pending;

    if (kind == NULL || (strcmp(kind, "transient") != 0 && strcmp(kind, "permanent") != 0))
        return not_protocol(st, line, len, "a failure is transient or permanent");
    if (lsn_text != NULL && (strcmp(lsn_text, "snapshot") == 0 || strcmp(lsn_text, "message") == 0))
        fail_by_ordinal(st, line, len, lsn_text, &rest);
    else {
        seq_text = next_word(&rest);
        if (seq_text == NULL || !lsn_parse(lsn_text, &lsn))
            return not_protocol(st, line, len,
                                "fail takes transient or permanent, a commit LSN, "
                                "a seq or *, and a reason");
        txn = named_txn(st, lsn);
        if (txn == NULL)
            return not_protocol(st, line, len,
                                "it names a transaction the child has not received or has "
                                "acknowledged");
        if (strcmp(seq_text, "*") == 0) {
            p->first = txn->first;
            p->last = txn->last;
        } else {
            if (!parse_seq(seq_text, &seq) || !txn->has_change || seq < txn->first_seq ||
                seq > txn->last_seq)
                return not_protocol(st, line, len, "it names a seq the child has not received");
            p->first = p->last = change_id(lsn, seq);
        }
        p->kind = PENDING_NAMED;
    }
    if (p->kind != PENDING_NAMED)
        return;
    p->failure = kind[0] == 't' ? WALNOTIFY_FAILURE_TRANSIENT : WALNOTIFY_FAILURE_PERMANENT;
    printable(p->reason, sizeof p->reason, rest ? rest : "", rest ? strlen(rest) : 0);
}

/* One reply line, without its newline (a trailing CR is dropped too). */
static void reply_line(exec_state *st, char *line, size_t len)
{
    char words[REPLY_MAX], *rest = words, *verb;

    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (len == 0 || st->pending.kind != PENDING_NONE)
        return; /* blank lines are allowed; after a failure nothing counts until the rewind */
    if (memchr(line, '\0', len) != NULL)
        return not_protocol(st, line, len, "a NUL byte");
    /* Split in a copy: messages quote the line as the child wrote it. */
    memcpy(words, line, len + 1);
    verb = next_word(&rest);
    if (strcmp(verb, "ack") == 0 && rest != NULL)
        return reply_ack(st, line, len, rest);
    if (strcmp(verb, "retry") == 0) {
        st->pending.kind = PENDING_RETRY;
        printable(st->pending.reason, sizeof st->pending.reason, rest ? rest : "",
                  rest ? strlen(rest) : 0);
        return;
    }
    if (strcmp(verb, "fail") == 0)
        return reply_fail(st, line, len, rest);
    not_protocol(st, line, len, "a reply is ack, retry or fail");
}

/* Splits what was read into lines; keeps a partial last line for later. */
static void reply_lines(exec_state *st)
{
    size_t start = 0;

    for (size_t i = 0; i < st->reply_len; i++) {
        if (st->reply[i] != '\n')
            continue;
        st->reply[i] = '\0';
        reply_line(st, st->reply + start, i - start);
        start = i + 1;
    }
    if (start > 0) {
        memmove(st->reply, st->reply + start, st->reply_len - start);
        st->reply_len -= start;
    }
    if (st->reply_len == sizeof st->reply)
        not_protocol(st, st->reply, st->reply_len, "a line longer than 4096 bytes");
}

/* Reads the replies the child has written so far, READS_MAX reads at most: a child that
 * writes without end must not keep the caller from its deadline. */
static void read_replies(exec_state *st)
{
    for (int reads = 0; st->pending.kind == PENDING_NONE && reads < READS_MAX; reads++) {
        ssize_t n =
            read(st->child.out_fd, st->reply + st->reply_len, sizeof st->reply - st->reply_len);

        if (n > 0) {
            st->reply_len += (size_t)n;
            reply_lines(st);
            continue;
        }
        if (n == 0)
            child_broke(st, EXIT_GRACE_MS, "the child closed its standard output");
        else if (errno == EINTR)
            continue;
        else if (errno != EAGAIN)
            child_broke(st, 0, "cannot read the child's standard output: %s", strerror(errno));
        break;
    }
}

/* ---- output ---------------------------------------------------------------------------------- */

/* Writes what the pipe takes now. */
static void write_some(exec_state *st)
{
    size_t before = st->written;

    while (st->written < st->used) {
        ssize_t n = write(st->child.in_fd, st->out + st->written, st->used - st->written);

        if (n > 0) {
            st->written += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EPIPE)
            child_broke(st, EXIT_GRACE_MS, "the child closed its standard input");
        else if (n < 0 && errno != EAGAIN)
            child_broke(st, 0, "cannot write to the child: %s", strerror(errno));
        break;
    }
    if (st->written > before && st->written == st->used)
        st->used = st->written = 0;
}

typedef enum wait_for {
    WAIT_WRITTEN, /* everything gathered is written to the pipe */
    WAIT_ROOM,    /* a transaction more may be in flight */
    WAIT_ACKED    /* everything written is written, and every transaction acknowledged */
} wait_for;

static bool waited_enough(const exec_state *st, wait_for what)
{
    switch (what) {
    case WAIT_WRITTEN:
        return st->used == 0;
    case WAIT_ROOM:
        return st->count < INFLIGHT_MAX;
    case WAIT_ACKED:
        return st->used == 0 && st->count == 0;
    }
    return true;
}

static void timed_out(exec_state *st, wait_for what)
{
    char name[96];

    if (what == WAIT_WRITTEN || st->used > 0) {
        child_broke(st, 0, "the child read nothing of its input for %d ms (ack_timeout_ms)",
                    st->ack_timeout_ms);
        return;
    }
    child_broke(st, 0,
                "the child did not acknowledge %s (%zu in flight) within %d ms "
                "(ack_timeout_ms)",
                record_name(inflight_at(st, 0), name, sizeof name), st->count, st->ack_timeout_ms);
}

/*
 * Writes and reads until `what` holds, the child fails, or it makes no progress for
 * ack_timeout_ms: progress is what brings the wait nearer its end, an acknowledgement of a
 * transaction not acknowledged before, or the whole of what was gathered (OUT_CAP bytes at most)
 * taken from the pipe. Blank lines, an old acknowledgement again, or a byte of input read now
 * and then put nothing off: every wait ends. Replies are read all along, so a child blocked on
 * writing them never blocks us. 0, or -1 with st->pending set.
 */
static int pump(exec_state *st, wait_for what)
{
    long long deadline = now_ms() + st->ack_timeout_ms;

    while (st->pending.kind == PENDING_NONE && !waited_enough(st, what)) {
        struct pollfd fds[2] = {{.fd = st->child.out_fd, .events = POLLIN},
                                {.fd = st->used ? st->child.in_fd : -1, .events = POLLOUT}};
        long long left = deadline - now_ms();
        size_t unacknowledged = st->count;
        bool gathered = st->used > 0;
        int ready;

        if (left <= 0) {
            timed_out(st, what);
            break;
        }
        ready = poll(fds, 2, left > INT_MAX ? INT_MAX : (int)left);
        if (ready < 0 && errno != EINTR) {
            child_broke(st, 0, "cannot wait for the child: %s", strerror(errno));
            break;
        }
        if (ready <= 0)
            continue;
        if (fds[1].revents != 0)
            write_some(st);
        if (fds[0].revents != 0)
            read_replies(st);
        if (st->count < unacknowledged || (gathered && st->used == 0))
            deadline = now_ms() + st->ack_timeout_ms;
    }
    return st->pending.kind == PENDING_NONE ? 0 : -1;
}

/* Gathers bytes for the child, writing out whenever the buffer fills: a line of any length
 * passes through OUT_CAP bytes of memory. 0, or -1 with st->pending set. */
static int out_put(exec_state *st, const char *data, size_t len)
{
    while (len > 0) {
        size_t room = OUT_CAP - st->used, n = len < room ? len : room;

        if (room == 0) {
            if (pump(st, WAIT_WRITTEN) != 0)
                return -1;
            continue;
        }
        memcpy(st->out + st->used, data, n);
        st->used += n;
        data += n;
        len -= n;
    }
    return st->pending.kind == PENDING_NONE ? 0 : -1;
}

__attribute__((format(printf, 2, 3))) static int out_printf(exec_state *st, const char *format, ...)
{
    char line[256];
    va_list args;
    int n;

    va_start(args, format);
    n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof line) {
        /* Our own marker lines are short: this does not happen, but must not pass silently. */
        child_broke(st, 0, "a marker line for the child did not fit in %zu bytes", sizeof line);
        return -1;
    }
    return out_put(st, line, (size_t)n);
}

/* ---- the child's life ------------------------------------------------------------------------ */

static int ensure_child(exec_state *st)
{
    exec_command command = {
        .path = st->program, .argv = st->argv, .envp = st->envp, .cwd = st->cwd};

    if (exec_child_running(&st->child))
        return 0;
    st->used = st->written = 0;
    st->say_rewind = false;
    st->min_sent = (walnotify_id){UINT64_MAX, UINT64_MAX};
    st->max_sent = (walnotify_id){0, 0};
    forget_inflight(st);
    return exec_child_start(&st->child, &command, st->host);
}

/*
 * Acts on what went wrong, from a callback that may rewind: a broken child is stopped (it
 * starts again with the next transaction) and the host rewinds, so that what the child had not
 * acknowledged comes again; a failure the child reported is passed on, and the child is told
 * where the transactions start again. Returns what the callback returns.
 */
static walnotify_status settle(exec_state *st)
{
    const walnotify_host *host = st->host;
    pending p = st->pending;
    bool lost = st->count > 0 || st->begin_written;
    char how[128];
    long pid = (long)st->child.pid;

    memset(&st->pending, 0, sizeof st->pending);
    if (p.kind == PENDING_CHILD) {
        exec_child_stop(&st->child, p.grace_ms, how, sizeof how);
        st->used = st->written = 0;
        forget_inflight(st);
        if (!lost) {
            host->log(host, WALNOTIFY_LOG_WARNING,
                      "%s; child %ld %s with nothing unacknowledged; a new one starts with the "
                      "next transaction",
                      p.reason, pid, how);
            return WALNOTIFY_OK;
        }
        host->log(host, WALNOTIFY_LOG_WARNING,
                  "%s; child %ld %s; what it had not acknowledged comes again to a new child",
                  p.reason, pid, how);
        return host->rewind(host, p.reason);
    }
    forget_inflight(st);
    st->say_rewind = true;
    if (p.kind == PENDING_RETRY) {
        host->log(host, WALNOTIFY_LOG_WARNING,
                  "the child reported a transient failure (%s); what it had not acknowledged "
                  "comes again",
                  p.reason[0] ? p.reason : "no reason given");
        return host->rewind(host, p.reason[0] ? p.reason : "the child asked for a retry");
    }
    return host->fail_events(host, p.first, p.last, p.failure,
                             p.reason[0] ? p.reason : "the child reported a failure");
}

/* ---- callbacks ------------------------------------------------------------------------------- */

static void free_state(exec_state *st)
{
    free(st->out);
    free(st->envp);
    free(st->argv);
    free(st);
}

static walnotify_status exec_init(const walnotify_host *host, void **state)
{
    exec_state *st;
    int rc;

    if (host->size < sizeof *host || host->encode_json == NULL || host->rewind == NULL ||
        host->fail_events == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "this walnotify lacks the encoder or rewind of plugin ABI 1.1");
        return WALNOTIFY_FATAL;
    }
    if (exec_settings_check(host) != WALNOTIFY_OK)
        return WALNOTIFY_FATAL;
    st = calloc(1, sizeof *st);
    if (st == NULL)
        goto no_memory;
    st->host = host;
    st->cwd = host->get_string(host, "cwd");
    st->ack_timeout_ms = (int)host->get_integer(host, "ack_timeout_ms");
    if (exec_settings_program(host, st->cwd, st->program) != WALNOTIFY_OK) {
        free_state(st);
        return WALNOTIFY_FATAL;
    }
    st->argv = exec_settings_argv(host);
    st->envp = exec_settings_envp(host);
    st->out = malloc(OUT_CAP);
    if (st->argv == NULL || st->envp == NULL || st->out == NULL)
        goto no_memory;
    rc = ensure_child(st);
    if (rc != 0) {
        free_state(st);
        /* A program or folder that is not there will not appear by waiting. */
        if (rc == ENOENT || rc == EACCES || rc == ENOEXEC || rc == ENOTDIR || rc == EPERM)
            return WALNOTIFY_FATAL;
        return WALNOTIFY_RETRY;
    }
    *state = st;
    return WALNOTIFY_OK;

no_memory:
    host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
    if (st != NULL)
        free_state(st);
    return WALNOTIFY_FATAL;
}

static walnotify_status exec_begin(void *state, const walnotify_txn *txn)
{
    exec_state *st = state;

    /* Nothing is written yet: a transaction none of whose events reach the child costs it
     * nothing, and what goes wrong is dealt with in handle, which may rewind. */
    st->in_txn = true;
    st->begin_written = false;
    memset(&st->open, 0, sizeof st->open);
    st->open.lsn = txn->commit_lsn;
    st->open.xid = txn->xid;
    st->open.kind = txn->kind;
    return WALNOTIFY_OK;
}

/*
 * The host streams again from an earlier position when another instance asked for it: a
 * transaction still in flight may come again. Its acknowledgement would be ambiguous (which copy
 * does "ack LSN" mean?), so what is in flight is acknowledged first. `first` is the identity of
 * the open transaction's first event.
 */
static int settle_replay(exec_state *st, walnotify_id first)
{
    if (st->count == 0 || id_cmp(first, record_end(inflight_at(st, st->count - 1))) > 0)
        return 0;
    if (out_printf(st, "{\"walnotify\":\"flush\"}\n") != 0)
        return -1;
    return pump(st, WAIT_ACKED);
}

static int write_begin(exec_state *st, walnotify_id first)
{
    char lsn[LSN_TEXT_MAX];

    if (settle_replay(st, first) != 0)
        return -1;
    if (st->say_rewind && out_printf(st, "{\"walnotify\":\"rewind\"}\n") != 0)
        return -1;
    st->say_rewind = false;
    st->begin_written = true;
    if (st->open.kind == WALNOTIFY_TXN_SNAPSHOT)
        return out_printf(st, "{\"walnotify\":\"begin\",\"snapshot\":\"%s\"}\n",
                          lsn_format(st->open.lsn, lsn));
    return out_printf(st, "{\"walnotify\":\"begin\",\"lsn\":\"%s\",\"xid\":%" PRIu32 "}\n",
                      lsn_format(st->open.lsn, lsn), st->open.xid);
}

static walnotify_status exec_handle(void *state, const walnotify_event *event)
{
    exec_state *st = state;
    const walnotify_host *host = st->host;
    const char *json;
    size_t len = 0;

    if (st->pending.kind != PENDING_NONE) {
        walnotify_status status = settle(st);

        if (status != WALNOTIFY_OK)
            return status;
    }
    if (ensure_child(st) != 0)
        return WALNOTIFY_RETRY;
    if (!st->in_txn) /* a host that calls no begin: the event is its own transaction */
        exec_begin(st, &(walnotify_txn){.commit_lsn = event->commit_lsn,
                                        .xid = event->xid,
                                        .kind = event->op == WALNOTIFY_OP_SNAPSHOT
                                                    ? WALNOTIFY_TXN_SNAPSHOT
                                                    : WALNOTIFY_TXN_CHANGES});
    if (!st->begin_written && write_begin(st, event->id) != 0)
        return settle(st);
    json = host->encode_json(host, event, &len);
    if (json == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "cannot encode the event: out of memory");
        return WALNOTIFY_RETRY;
    }
    if (out_put(st, json, len) != 0 || out_put(st, "\n", 1) != 0)
        return settle(st);
    if (st->open.events == 0)
        st->open.first = event->id;
    st->open.last = event->id;
    st->open.events++;
    if (event->op != WALNOTIFY_OP_MESSAGE && event->op != WALNOTIFY_OP_SNAPSHOT) {
        if (!st->open.has_change)
            st->open.first_seq = event->seq;
        st->open.last_seq = event->seq;
        st->open.has_change = true;
    }
    /* Replies are read whenever output waits for the pipe, and at commit and flush: not here,
     * where a read per event would cost a system call each. */
    return WALNOTIFY_OK;
}

/* A snapshot batch's commit line names its last ordinal: what "ack snapshot" repeats. */
static int write_commit(exec_state *st)
{
    char lsn[LSN_TEXT_MAX];

    lsn_format(st->open.lsn, lsn);
    if (st->open.kind == WALNOTIFY_TXN_SNAPSHOT)
        return out_printf(st,
                          "{\"walnotify\":\"commit\",\"snapshot\":\"%s\",\"ordinal\":%" PRIu64
                          ",\"events\":%" PRIu64 "}\n",
                          lsn, st->open.last.ordinal, st->open.events);
    return out_printf(st, "{\"walnotify\":\"commit\",\"lsn\":\"%s\",\"events\":%" PRIu64 "}\n", lsn,
                      st->open.events);
}

static walnotify_status exec_commit(void *state, const walnotify_txn *txn)
{
    exec_state *st = state;
    walnotify_id end;

    (void)txn;
    if (st->pending.kind != PENDING_NONE)
        return settle(st);
    if (st->open.events == 0) { /* nothing reached the child */
        st->in_txn = false;
        return WALNOTIFY_OK;
    }
    /* A child that acknowledges only when asked must be asked before the ring fills. */
    if (st->count == INFLIGHT_MAX &&
        (out_printf(st, "{\"walnotify\":\"flush\"}\n") != 0 || pump(st, WAIT_ROOM) != 0))
        return settle(st);
    if (write_commit(st) != 0)
        return settle(st);
    st->inflight[(st->head + st->count) % INFLIGHT_MAX] = st->open;
    st->count++;
    end = record_end(&st->open);
    if (id_cmp(end, st->max_sent) > 0)
        st->max_sent = end;
    if (id_cmp(end, st->min_sent) < 0)
        st->min_sent = end;
    st->in_txn = false;
    st->begin_written = false;
    /* Sent now, so that the child can acknowledge before walnotify asks for it; what it
     * acknowledged meanwhile is read, so that its replies never fill their pipe. */
    if (pump(st, WAIT_WRITTEN) != 0)
        return settle(st);
    read_replies(st);
    return st->pending.kind == PENDING_NONE ? WALNOTIFY_OK : settle(st);
}

static void exec_abort(void *state, const walnotify_txn *txn)
{
    exec_state *st = state;
    char lsn[LSN_TEXT_MAX];

    (void)txn;
    /* What goes wrong here is dealt with by the next callback that may rewind. */
    if (st->begin_written && st->pending.kind == PENDING_NONE && exec_child_running(&st->child))
        out_printf(st, "{\"walnotify\":\"abort\",\"%s\":\"%s\"}\n",
                   st->open.kind == WALNOTIFY_TXN_SNAPSHOT ? "snapshot" : "lsn",
                   lsn_format(st->open.lsn, lsn));
    st->in_txn = false;
    st->begin_written = false;
    memset(&st->open, 0, sizeof st->open);
}

static walnotify_status exec_flush(void *state)
{
    exec_state *st = state;

    if (st->pending.kind != PENDING_NONE)
        return settle(st);
    if (!exec_child_running(&st->child))
        return WALNOTIFY_OK; /* nothing in flight: a stopped child took it all with it */
    if (st->count > 0 && out_printf(st, "{\"walnotify\":\"flush\"}\n") != 0)
        return settle(st);
    if (pump(st, WAIT_ACKED) != 0)
        return settle(st);
    return WALNOTIFY_OK;
}

static void exec_shutdown(void *state)
{
    exec_state *st = state;
    char how[128];
    long pid;

    if (st == NULL)
        return;
    pid = (long)st->child.pid;
    if (exec_child_running(&st->child)) {
        /* What is gathered (an abort line, at most) goes first; then end of input tells the
         * child to finish. */
        if (st->pending.kind == PENDING_NONE && st->used > 0)
            pump(st, WAIT_WRITTEN);
        exec_child_stop(&st->child, st->ack_timeout_ms, how, sizeof how);
        st->host->log(st->host, WALNOTIFY_LOG_INFO, "child %ld %s", pid, how);
    }
    free_state(st);
}

static const walnotify_plugin exec_plugin = {
    .magic = WALNOTIFY_PLUGIN_MAGIC,
    .abi_major = WALNOTIFY_ABI_MAJOR,
    .abi_minor = 1,
    .size = sizeof(walnotify_plugin),
    .name = "exec",
    .version = "1.0.0",
    .settings = exec_declared,
    .init = exec_init,
    .handle = exec_handle,
    .shutdown = exec_shutdown,
    .begin = exec_begin,
    .commit = exec_commit,
    .abort = exec_abort,
    .flush = exec_flush,
    .ops = WALNOTIFY_OPS_CHANGES | WALNOTIFY_OP_SNAPSHOT | WALNOTIFY_OP_MESSAGE,
    .check = exec_settings_check,
};

const walnotify_plugin *walnotify_plugin_entry(void)
{
    return &exec_plugin;
}
