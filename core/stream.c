/*
 * stream: the replication connection, read on its own thread.
 *
 * One loop: send a status update when its time has come, hand the item in hand to the
 * dispatcher, otherwise read every CopyData message libpq already holds (handing each over as it
 * comes, waking the dispatcher once per batch) or wait (after a short nap when the stream is
 * busy) for the socket, the stop request or the next status update. The clock is read once per
 * turn, not per message. The position reported as flushed is only ever the one the dispatcher
 * publishes.
 */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <libpq-fe.h>

#include "acklag.h"
#include "conninfo.h"
#include "decoder.h" /* WN_PG_EPOCH_OFFSET_US */
#include "log.h"
#include "replstart.h"

#define XLOGDATA_HEADER 25    /* 'w', walStart, walEnd, sendTime */
#define COMMIT_LENGTH 26      /* pgoutput's 'C', flags, commit LSN, end LSN, commit time */
#define KEEPALIVE_LENGTH 18   /* 'k', walEnd, sendTime, replyRequested */
#define STATUS_LENGTH 34      /* 'r', write, flush, apply, sendTime, replyRequested */
#define STEP_MS 50            /* longest sleep while waiting on the dispatcher */
#define FLUSH_TIMEOUT_MS 5000 /* how long the last status update may take to leave */
#define DRAIN_TIMEOUT_MS 2000 /* how long a stop waits for the server to end the copy */
/* How long a rewind waits for it, from our CopyDone, before it opens a new connection instead.
 * The walsender reads our CopyDone only between WAL records, so it sends the rest of the
 * transaction it is decoding first, as fast as it decodes (a few seconds for millions of rows);
 * it cannot take longer than its wal_sender_timeout (60 s by default), since nothing the client
 * sends after a CopyDone counts as a reply. */
#define REWIND_DRAIN_TIMEOUT_MS 30000
#define MESSAGE_MAX 1024
#define BATCH_MAX 1024         /* messages read per turn before the timers are looked at again */
#define COALESCE_MIN 8         /* a drain of at least this many messages means the stream is busy */
#define BUSY_WINDOW_US 1000    /* the stream's rate is judged over windows this long */
#define BUSY_MESSAGES 32       /* messages in one window that make the stream busy */
#define NAP_START_US 100       /* how long a busy stream is first left to gather before a wait */
#define NAP_MIN_US 50          /* ... at the least, */
#define NAP_MAX_US 400         /* ... and at the most, */
#define NAP_STEP_US 50         /* ... growing by this while the socket keeps room */
#define UNIX_FULL_REFILLS 1    /* extra reads after a nap that mean a Unix socket was near full */
#define UNIX_FULL_MESSAGES 128 /* ... or messages read, whatever their size (see adapt_nap) */
#define TCP_FULL_REFILLS 8     /* ... and a TCP one (its buffers grow to megabytes) */
#define REFILL_MIN 8192        /* bytes waiting in the socket that are read without a wait */
#define REFILL_MAX 64          /* socket reads per batch, so the timers are looked at every 1 MiB */

/* Where the copy START_REPLICATION began stands. */
typedef enum copy_state {
    COPY_STREAMING, /* COPY BOTH */
    COPY_ENDING,    /* our CopyDone sent, the server's not read yet */
    COPY_RESULTS,   /* the server ended the copy; the command's results not all read */
    COPY_IDLE,      /* the command completed: the connection takes another */
    COPY_BROKEN     /* the end failed: the connection is good for nothing more */
} copy_state;

struct wn_stream {
    PGconn *conn;
    wn_replstart start;   /* START_REPLICATION's options; slot and publication owned */
    copy_state copy;      /* where the copy stands */
    int64_t copy_done_ms; /* monotonic time our CopyDone left */
    int status_interval_ms;
    int receive_timeout_ms;
    wn_lsn received;         /* highest walEnd the server reported */
    wn_lsn flushed;          /* last flush position sent */
    int64_t next_status_ms;  /* monotonic time the next status update is due */
    int64_t next_state_ms;   /* monotonic time the state file may next be written */
    int64_t last_receive_ms; /* monotonic time something last came from the server */
    bool asked_reply;        /* a status update asked the server to answer the silence */
    bool want_write;         /* libpq holds output the socket did not take yet */
    bool have_pending;       /* `pending` could not be handed over yet */
    bool lost;               /* the failure was the connection's, not the protocol's */
    bool busy;               /* messages come fast enough for a nap to gather them */
    bool sustained;          /* ... and have for a whole window: not one late burst */
    bool napped;             /* the last wait began with a nap */
    bool unix_socket;        /* the server is on a Unix socket (a small send buffer) */
    int nap_us;              /* the nap's length now */
    int64_t window_start_us; /* monotonic time the current rate window began */
    int window_messages;     /* messages read in it */
    wn_item pending;
    const char *state_file; /* NULL: none */
    wn_state state;         /* what state_file gets; lsn = last written */
    bool state_failing;     /* the last write failed (said once, until it works again) */
    /* The connection and what is told the server (flushed, want_write, lag, next_status_ms):
     * the reader holds it while it runs, except while it sleeps, when the dispatcher may send a
     * new position itself (wn_stream_acknowledge). */
    pthread_mutex_t conn_lock;
    wn_handoff *streaming;      /* the run's handoff while the reader streams; NULL otherwise */
    pthread_mutex_t state_lock; /* state and its file: the reader writes the position, the
                                   dispatcher the finished snapshot */
    int progress_interval_ms;
    int64_t next_progress_ms;    /* monotonic time the next progress line is due */
    uint64_t events_at_progress; /* the dispatcher's count at the last progress line */
    wn_acklag lag; /* each transaction's wait from its Commit to its acknowledgement */
    char *err;
    size_t errlen;
};

static void fail(wn_stream *stream, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void fail(wn_stream *stream, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    vsnprintf(stream->err, stream->errlen, format, args);
    va_end(args);
}

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int64_t monotonic_us(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static int64_t pg_now_us(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 - WN_PG_EPOCH_OFFSET_US;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_u64(const char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | (unsigned char)p[i];
    return v;
}

static void fail_connection(wn_stream *stream, const char *doing)
{
    char message[MESSAGE_MAX];

    wn_server_message(stream->conn, NULL, message, sizeof message);
    fail(stream, "%s: %s", doing, message);
    stream->lost = true;
}

/* Hands libpq's pending output to the socket without blocking; false on a broken connection. */
static bool flush_output(wn_stream *stream)
{
    int r = PQflush(stream->conn);

    if (r < 0) {
        fail_connection(stream, "sending to the server");
        return false;
    }
    stream->want_write = r == 1;
    return true;
}

/* The one place that decides what the server is told: flush = apply = what the dispatcher says
 * every plugin finished and made durable; write = what every plugin has handled, never below
 * flush. (Write = received would let a remote_write commit return before any sink has its row,
 * and would keep the server from sending the keepalives it sends for a client behind.) */
static int put_status(wn_stream *stream, wn_handoff *handoff, bool reply)
{
    unsigned char msg[STATUS_LENGTH];
    wn_lsn flush = wn_handoff_acknowledgeable(handoff);
    wn_lsn write = wn_handoff_handled(handoff);
    int r;

    if (flush < stream->flushed)
        flush = stream->flushed;
    if (write < flush)
        write = flush;
    msg[0] = 'r';
    put_u64(msg + 1, write);
    put_u64(msg + 9, flush);
    put_u64(msg + 17, flush);
    put_u64(msg + 25, (uint64_t)pg_now_us());
    msg[33] = reply ? 1 : 0;
    r = PQputCopyData(stream->conn, (const char *)msg, (int)sizeof msg);
    if (r < 0)
        return r;
    stream->next_status_ms = monotonic_ms() + stream->status_interval_ms;
    if (r == 0) {
        /* libpq's buffer is full: the update goes out next time round. */
        stream->want_write = true;
        return r;
    }
    wn_acklag_acknowledged(&stream->lag, flush, monotonic_us());
    if (flush != stream->flushed) {
        char text[WN_LSN_TEXT_MAX];

        wn_log(WN_LOG_DEBUG, "acknowledged %s to the server", wn_lsn_format(flush, text));
        stream->flushed = flush;
    }
    return r;
}

/* Puts a status update into libpq's output (-1 on a broken connection, 0 when its buffer was
 * full and the update waits, 1 when it went in) and hands that output to the socket. */
static bool send_status(wn_stream *stream, wn_handoff *handoff, bool reply)
{
    int r = put_status(stream, handoff, reply);

    if (r < 0) {
        fail_connection(stream, "sending a status update");
        return false;
    }
    return r == 0 || flush_output(stream);
}

static bool status_due(const wn_stream *stream, int64_t now)
{
    return now >= stream->next_status_ms;
}

/* When the silence of the server is next looked at: after receive_timeout_ms (ask it for a
 * reply), then after twice that (give the connection up). */
static int64_t silence_deadline(const wn_stream *stream)
{
    return stream->last_receive_ms +
           (int64_t)stream->receive_timeout_ms * (stream->asked_reply ? 2 : 1);
}

/* How long the loop may sleep: until the next status update or silence deadline. */
static int ms_to_status(const wn_stream *stream, int64_t now)
{
    int64_t due = stream->next_status_ms;
    int64_t silence = silence_deadline(stream);
    int64_t left = (silence < due ? silence : due) - now;

    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * A connection can go half-open (a cable pulled, a firewall forgetting it) without either side
 * noticing while only we send. The server answers a status update that asks for a reply, so
 * silence after asking means the connection is gone. false once it is given up.
 */
static bool check_silence(wn_stream *stream, wn_handoff *handoff, int64_t now)
{
    int64_t silent = now - stream->last_receive_ms;

    if (silent < stream->receive_timeout_ms)
        return true;
    if (!stream->asked_reply) {
        wn_log(WN_LOG_DEBUG, "nothing from the server for %" PRId64 " ms; asking it for a reply",
               silent);
        stream->asked_reply = true;
        return send_status(stream, handoff, true);
    }
    if (silent < 2 * (int64_t)stream->receive_timeout_ms)
        return true;
    fail(stream,
         "connection silent: nothing from the server for %" PRId64 " ms, even after asking it "
         "for a reply (receive_timeout_ms = %d)",
         silent, stream->receive_timeout_ms);
    stream->lost = true;
    return false;
}

/* Records the position last reported to the server in the state file, each time it moves, at
 * most once per status interval (with flush = "commit" the position moves per transaction group:
 * one fsync a second at most, not one per group). A failed write is said, not fatal: the file
 * only saves replays after a server crash. */
static void write_state_locked(wn_stream *stream)
{
    char err[MESSAGE_MAX], text[WN_LSN_TEXT_MAX];

    if (!stream->state_file || stream->flushed <= stream->state.lsn)
        return;
    stream->state.lsn = stream->flushed;
    if (wn_state_write(stream->state_file, &stream->state, err, sizeof err) != 0) {
        if (!stream->state_failing)
            wn_log(WN_LOG_WARNING, "%s (progress up to %s is not recorded locally)", err,
                   wn_lsn_format(stream->flushed, text));
        stream->state_failing = true;
        return;
    }
    if (stream->state_failing)
        wn_log(WN_LOG_INFO, "state file %s written again", stream->state_file);
    stream->state_failing = false;
}

static void write_state(wn_stream *stream, bool now)
{
    int64_t at = monotonic_ms();

    if (!now && at < stream->next_state_ms)
        return;
    stream->next_state_ms = at + stream->status_interval_ms;
    pthread_mutex_lock(&stream->state_lock);
    write_state_locked(stream);
    pthread_mutex_unlock(&stream->state_lock);
}

int wn_stream_record_snapshot(wn_stream *stream, wn_lsn consistent_point, char *err, size_t errlen)
{
    int rc;

    if (!stream->state_file) {
        snprintf(err, errlen, "no state file to record the finished snapshot in");
        return EINVAL;
    }
    pthread_mutex_lock(&stream->state_lock);
    stream->state.snapshot = consistent_point;
    rc = wn_state_write(stream->state_file, &stream->state, err, errlen);
    if (rc != 0)
        stream->state.snapshot = WN_LSN_INVALID;
    pthread_mutex_unlock(&stream->state_lock);
    return rc;
}

/* The progress line comes from this thread, so it goes on while a plugin blocks the
 * dispatcher: then the rate is 0 and the lag grows, which is what an operator must see. */
static void log_progress_if_due(wn_stream *stream, wn_handoff *handoff, int64_t now)
{
    char acked[WN_LSN_TEXT_MAX];
    uint64_t events, lag;
    double seconds;

    if (now < stream->next_progress_ms)
        return;
    seconds = (double)(now - stream->next_progress_ms + stream->progress_interval_ms) / 1000.0;
    events = wn_handoff_delivered(handoff);
    lag = stream->received > stream->flushed ? stream->received - stream->flushed : 0;
    wn_log(WN_LOG_INFO, "progress: acknowledged %s, %.1f events/s, lag %" PRIu64 " bytes",
           wn_lsn_format(stream->flushed, acked),
           (double)(events - stream->events_at_progress) / seconds, lag);
    stream->events_at_progress = events;
    stream->next_progress_ms = now + stream->progress_interval_ms;
}

/* Turns one CopyData message (owned by the caller until it is put in `pending`) into an item, or
 * answers it. false on a protocol error or a failed reply. */
static bool handle_message(wn_stream *stream, wn_handoff *handoff, char *buf, int len)
{
    if (len >= 1 && buf[0] == 'w') {
        if (len < XLOGDATA_HEADER) {
            fail(stream,
                 "protocol error: XLogData message of %d bytes, shorter than its %d-byte header",
                 len, XLOGDATA_HEADER);
            PQfreemem(buf);
            return false;
        }
        stream->pending = (wn_item){.kind = WN_ITEM_DATA,
                                    .wal_start = get_u64(buf + 1),
                                    .wal_end = get_u64(buf + 9),
                                    .buffer = buf,
                                    .payload = buf + XLOGDATA_HEADER,
                                    .length = (size_t)len - XLOGDATA_HEADER};
        stream->have_pending = true;
        if (stream->pending.wal_end > stream->received)
            stream->received = stream->pending.wal_end;
        wn_handoff_set_received(handoff, stream->received);
        if (stream->pending.length >= COMMIT_LENGTH && stream->pending.payload[0] == 'C')
            wn_acklag_received(&stream->lag, get_u64(stream->pending.payload + 10), monotonic_us());
        return true;
    }
    if (len >= 1 && buf[0] == 'k') {
        bool reply;

        if (len < KEEPALIVE_LENGTH) {
            fail(stream, "protocol error: keepalive message of %d bytes, expected %d", len,
                 KEEPALIVE_LENGTH);
            PQfreemem(buf);
            return false;
        }
        stream->pending = (wn_item){.kind = WN_ITEM_KEEPALIVE, .wal_end = get_u64(buf + 1)};
        stream->have_pending = true;
        if (stream->pending.wal_end > stream->received)
            stream->received = stream->pending.wal_end;
        wn_handoff_set_received(handoff, stream->received);
        reply = buf[17] != 0;
        PQfreemem(buf);
        return !reply || send_status(stream, handoff, false);
    }
    if (len < 1)
        fail(stream, "protocol error: empty CopyData message");
    else
        fail(stream, "protocol error: unexpected CopyData message type 0x%02x",
             (unsigned)(unsigned char)buf[0]);
    PQfreemem(buf);
    return false;
}

/* The copy ended (-1) or failed (-2): the server's or libpq's reason into err. */
static void fail_copy_end(wn_stream *stream, int r)
{
    PGresult *res;

    if (r == -2) {
        fail_connection(stream, "reading from the server");
        return;
    }
    res = PQgetResult(stream->conn);
    if ((res && PQresultErrorMessage(res)[0]) || PQerrorMessage(stream->conn)[0]) {
        char message[MESSAGE_MAX];

        wn_server_message(stream->conn, res, message, sizeof message);
        fail(stream, "the server ended the stream: %s", message);
    } else {
        fail(stream, "the server ended the stream (it closed the copy)");
    }
    /* Whatever the server's reason, a new connection re-checks the slot and the server, and
     * says what cannot be waited out. */
    stream->lost = true;
    PQclear(res);
}

/* Waits for the socket (readable, or writable when output is pending), the stop request, or
 * the next status update. */
static bool wait_for_input(wn_stream *stream, wn_handoff *handoff, int64_t now)
{
    struct pollfd fds[3] = {
        {.fd = PQsocket(stream->conn), .events = POLLIN},
        {.fd = wn_handoff_stop_fd(handoff), .events = POLLIN},
        {.fd = wn_handoff_ack_fd(handoff), .events = POLLIN},
    };
    int r;

    if (fds[0].fd < 0) {
        fail_connection(stream, "reading from the server");
        return false;
    }
    if (stream->want_write)
        fds[0].events |= POLLOUT;
    pthread_mutex_unlock(&stream->conn_lock);
    r = poll(fds, 3, ms_to_status(stream, now));
    pthread_mutex_lock(&stream->conn_lock);
    if (r < 0 && errno != EINTR) {
        fail(stream, "waiting for the server: %s", strerror(errno));
        return false;
    }
    if (r <= 0)
        return true;
    /* Cleared before the next turn reads the position, so a move after this wakes poll again
     * and a move before it is seen: the descriptor never stays readable for nothing. */
    if (fds[2].revents & POLLIN)
        wn_handoff_ack_seen(handoff);
    if ((fds[0].revents & POLLOUT) && !flush_output(stream))
        return false;
    if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(stream->conn)) {
        fail_connection(stream, "reading from the server");
        return false;
    }
    return true;
}

/* The dispatcher published a new position: report it now, not at the next timer tick, so the
 * slot trails the plugins by one status interval at most. (wait_for_input clears the ack
 * descriptor whenever poll finds it readable.) */
static bool acknowledgeable_moved(const wn_stream *stream, wn_handoff *handoff)
{
    return wn_handoff_acknowledgeable(handoff) > stream->flushed;
}

/* Not reading while the queue is full lets TCP slow the server down; the server's silence then
 * is ours, so it does not count. */
static void hand_over_pending(wn_stream *stream, wn_handoff *handoff, int64_t now)
{
    int timeout = ms_to_status(stream, now);

    stream->last_receive_ms = now;
    pthread_mutex_unlock(&stream->conn_lock);
    if (wn_handoff_push(handoff, &stream->pending, timeout < STEP_MS ? timeout : STEP_MS))
        stream->have_pending = false;
    pthread_mutex_lock(&stream->conn_lock);
}

/*
 * The server sends every message in a packet of its own. A reader faster than it would wake for
 * a few messages each time, and wake the dispatcher as often: on a busy stream, a short nap
 * before the wait lets each wake-up carry many. A stream is busy when one drain finds many
 * messages, or when many come within one window however few each wake-up finds (a reader that
 * keeps up sees drains of one message); the next window that is not busy ends it. A quiet
 * stream waits at once, so a lone message is not held back.
 */
static void note_arrivals(wn_stream *stream, int got)
{
    int64_t now = monotonic_us();

    if (now - stream->window_start_us >= BUSY_WINDOW_US) {
        stream->busy = stream->window_messages >= BUSY_MESSAGES;
        stream->sustained = stream->busy;
        stream->window_start_us = now;
        stream->window_messages = 0;
    }
    stream->window_messages += got;
    if (stream->window_messages >= BUSY_MESSAGES)
        stream->sustained = true;
    if (got >= COALESCE_MIN || stream->sustained)
        stream->busy = true;
}

/* The nap ends early when the dispatcher publishes a position: the acknowledgement goes out at
 * once, not after the nap. */
static void gather(wn_stream *stream, wn_handoff *handoff)
{
    struct timespec nap = {.tv_sec = 0, .tv_nsec = (long)stream->nap_us * 1000};
    struct pollfd ack = {.fd = wn_handoff_ack_fd(handoff), .events = POLLIN};

    stream->napped = stream->busy;
    if (!stream->busy)
        return;
    pthread_mutex_unlock(&stream->conn_lock);
    (void)ppoll(&ack, 1, &nap, NULL);
    pthread_mutex_lock(&stream->conn_lock);
}

/*
 * The longer the nap, the fewer the wake-ups, until the server fills its socket and has to wait
 * for room, which costs the stream its pace. What waited after the nap says which: when it was
 * more than libpq's first read could take (refills), or, on a Unix socket, many messages, the
 * socket was near full and the nap halves; otherwise it grows a step. A Unix socket's room is
 * counted in kernel buffers, one per message: it holds 278 messages of up to about 190 bytes
 * (8 to 50 kB, so a count of bytes misses it), fewer larger ones. A TCP one grows to megabytes.
 */
static void adapt_nap(wn_stream *stream, int messages, int refills)
{
    bool near_full;

    if (!stream->napped)
        return;
    stream->napped = false;
    near_full = stream->unix_socket ? refills >= UNIX_FULL_REFILLS || messages >= UNIX_FULL_MESSAGES
                                    : refills >= TCP_FULL_REFILLS;
    if (near_full)
        stream->nap_us = stream->nap_us / 2 > NAP_MIN_US ? stream->nap_us / 2 : NAP_MIN_US;
    else if (stream->nap_us + NAP_STEP_US <= NAP_MAX_US)
        stream->nap_us += NAP_STEP_US;
}

/*
 * Bytes waiting in the socket that libpq has not read yet (0 when it cannot be told). libpq
 * reads at most its buffer's free room (16 kB) per call; a server faster than that leaves the
 * rest in the socket, and a Unix socket holds only a few hundred small messages before the
 * server has to wait for room. Reading what waits at once, rather than after the nap and the
 * poll, keeps the server sending.
 */
static int socket_backlog(const wn_stream *stream)
{
    int waiting = 0;

    if (ioctl(PQsocket(stream->conn), FIONREAD, &waiting) != 0)
        return 0;
    return waiting;
}

/* Reads the messages libpq holds (up to BATCH_MAX), and what waits in the socket behind them,
 * handing each over while there is room; the dispatcher is woken as reading goes on, and after
 * the batch. Waits for input when there was none. */
static bool read_batch(wn_stream *stream, wn_handoff *handoff, int64_t now)
{
    bool ok = true;
    int got = 0;
    int refills = 0;
    int r = 0;

    while (ok && got < BATCH_MAX && !stream->have_pending) {
        char *buf = NULL;

        r = PQgetCopyData(stream->conn, &buf, 1);
        if (r == 0 && got > 0 && refills < REFILL_MAX && socket_backlog(stream) >= REFILL_MIN) {
            /* The dispatcher starts on what is read while the rest comes in. */
            wn_handoff_wake(handoff);
            if (!PQconsumeInput(stream->conn)) {
                fail_connection(stream, "reading from the server");
                return false;
            }
            refills++;
            continue;
        }
        if (r <= 0)
            break;
        got++;
        ok = handle_message(stream, handoff, buf, r);
        if (ok && wn_handoff_put(handoff, &stream->pending))
            stream->have_pending = false;
    }
    if (got > 0) {
        wn_handoff_wake(handoff);
        stream->last_receive_ms = now;
        stream->asked_reply = false;
        note_arrivals(stream, got);
        /* A late burst (the reader or the server was held up) makes the reader nap, but holds
         * no group: only a sustained rate is worth the dispatcher's waiting for a pause. */
        wn_handoff_set_busy(handoff, stream->sustained);
        adapt_nap(stream, got, refills);
    }
    if (!ok)
        return false;
    if (r < 0) {
        fail_copy_end(stream, r);
        return false;
    }
    if (got > 0)
        return true;
    if (!check_silence(stream, handoff, now))
        return false;
    gather(stream, handoff);
    /* Nothing came during the nap: the server paused, and the dispatcher may flush what it has
     * as soon as its queue runs empty, not at its group's bound (synchronous writers wait for
     * that flush: the pause may be theirs). The next arrivals say whether it is still busy. */
    if (stream->napped && socket_backlog(stream) == 0)
        wn_handoff_set_busy(handoff, false);
    return wait_for_input(stream, handoff, now);
}

/* One turn of the loop. false when the stream failed (err says why). */
static bool step(wn_stream *stream, wn_handoff *handoff)
{
    int64_t now = monotonic_ms();

    if (stream->want_write && !flush_output(stream))
        return false;
    if (status_due(stream, now) || acknowledgeable_moved(stream, handoff)) {
        if (!send_status(stream, handoff, false))
            return false;
    }
    if (stream->flushed > stream->state.lsn)
        write_state(stream, false);
    log_progress_if_due(stream, handoff, now);
    if (stream->have_pending) {
        hand_over_pending(stream, handoff, now);
        return true;
    }
    return read_batch(stream, handoff, now);
}

static void sleep_step(wn_stream *stream)
{
    struct pollfd fd = {.fd = PQsocket(stream->conn), .events = POLLOUT};
    int timeout = ms_to_status(stream, monotonic_ms());

    if (timeout > STEP_MS)
        timeout = STEP_MS;
    if (stream->want_write && fd.fd >= 0)
        (void)poll(&fd, 1, timeout);
    else
        (void)poll(NULL, 0, timeout);
}

/* Keeps the connection alive until the dispatcher has published its final position. After a
 * connection error there is nothing left to send, but the wait is the same. */
static void wait_for_dispatcher(wn_stream *stream, wn_handoff *handoff, bool connected)
{
    while (!wn_handoff_dispatcher_done(handoff)) {
        if (connected && stream->want_write)
            connected = flush_output(stream);
        if (connected && status_due(stream, monotonic_ms()))
            connected = send_status(stream, handoff, false);
        sleep_step(stream);
    }
}

/* Waits until libpq's output has left, at most timeout_ms. */
static bool flush_all(wn_stream *stream, int timeout_ms)
{
    int64_t deadline = monotonic_ms() + timeout_ms;

    while (stream->want_write) {
        struct pollfd fd = {.fd = PQsocket(stream->conn), .events = POLLOUT};
        int64_t left = deadline - monotonic_ms();

        if (left <= 0) {
            fail(stream, "ending the replication stream: the server took nothing for %d ms",
                 timeout_ms);
            return false;
        }
        (void)poll(&fd, 1, (int)left);
        if (!flush_output(stream))
            return false;
    }
    return true;
}

/* Waits up to deadline_ms (monotonic) for input and reads it. false on a timeout (the end of
 * the copy may be driven on later), when stop_fd (-1: none) is readable (*stopped), or on a
 * broken connection (COPY_BROKEN, err says why). */
static bool wait_to_drain(wn_stream *stream, int64_t deadline_ms, int stop_fd, bool *stopped)
{
    struct pollfd fds[2] = {{.fd = PQsocket(stream->conn), .events = POLLIN},
                            {.fd = stop_fd, .events = POLLIN}};
    int64_t left = deadline_ms - monotonic_ms();
    int r;

    if (left <= 0)
        return false;
    r = fds[0].fd < 0 ? -1 : poll(fds, 2, left > INT32_MAX ? INT32_MAX : (int)left);
    if (r < 0 && errno == EINTR)
        return true;
    if (r > 0 && (fds[1].revents & POLLIN)) {
        *stopped = true;
        return false;
    }
    if (r < 0 || !PQconsumeInput(stream->conn)) {
        fail_connection(stream, "ending the replication stream");
        stream->copy = COPY_BROKEN;
        return false;
    }
    return true;
}

/* A result of START_REPLICATION once its copy ended: each must say the command completed. */
static void check_end_result(wn_stream *stream, const PGresult *res)
{
    char message[MESSAGE_MAX];

    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        return;
    wn_server_message(stream->conn, res, message, sizeof message);
    fail(stream, "ending the replication stream: the server answered %s: %s",
         PQresStatus(PQresultStatus(res)), message);
    stream->copy = COPY_BROKEN;
}

/*
 * One step towards the end of the copy on what libpq already holds: a CopyData dropped (it was
 * not acknowledged, so the next stream gets it again), the server's CopyDone, or a result of the
 * command. false when the step needs more input. (libpq itself drops a CopyData that follows
 * the server's CopyDone, which the walsender sends when its CopyDone came in the middle of a
 * transaction.)
 */
static bool drain_step(wn_stream *stream)
{
    PGresult *res;
    char *buf = NULL;
    int r;

    if (stream->copy == COPY_ENDING) {
        r = PQgetCopyData(stream->conn, &buf, 1);
        if (r > 0)
            PQfreemem(buf);
        else if (r == -1)
            stream->copy = COPY_RESULTS;
        else if (r == -2) {
            fail_connection(stream, "ending the replication stream");
            stream->copy = COPY_BROKEN;
        }
        return r != 0;
    }
    if (PQisBusy(stream->conn))
        return false;
    res = PQgetResult(stream->conn);
    if (!res) {
        stream->copy = COPY_IDLE;
        return true;
    }
    check_end_result(stream, res);
    PQclear(res);
    return true;
}

/* Drives the end of the copy until the connection takes commands again (true), or it broke,
 * deadline_ms (monotonic) passed or stop_fd (-1: none) became readable (*stopped) (false; but for
 * a broken connection it may be driven on later). */
static bool drain(wn_stream *stream, int64_t deadline_ms, int stop_fd, bool *stopped)
{
    while (stream->copy == COPY_ENDING || stream->copy == COPY_RESULTS) {
        if (!drain_step(stream) && !wait_to_drain(stream, deadline_ms, stop_fd, stopped))
            return false;
    }
    return stream->copy == COPY_IDLE;
}

/* Tells the server the final position and ends the copy. */
static bool finish_copy(wn_stream *stream, wn_handoff *handoff)
{
    int r;

    if (!send_status(stream, handoff, false) || !flush_all(stream, FLUSH_TIMEOUT_MS))
        return false;
    while ((r = PQputCopyEnd(stream->conn, NULL)) == 0) {
        /* libpq's buffer is full: let it drain, then queue the CopyDone. */
        stream->want_write = true;
        if (!flush_all(stream, FLUSH_TIMEOUT_MS))
            return false;
    }
    if (r < 0) {
        fail_connection(stream, "ending the replication stream");
        return false;
    }
    stream->want_write = true;
    if (!flush_all(stream, FLUSH_TIMEOUT_MS))
        return false;
    stream->copy = COPY_ENDING;
    stream->copy_done_ms = monotonic_ms();
    /* A stop closes the connection whether or not the server ended the copy in time; a rewind
     * drives its end on (wn_stream_restart). */
    (void)drain(stream, stream->copy_done_ms + DRAIN_TIMEOUT_MS, -1, &(bool){false});
    return true;
}

/* The dispatcher learns that nothing follows. It may be inside a plugin for a while, so the
 * push is retried until it fits or the dispatcher has finished anyway. */
static void push_end(wn_handoff *handoff)
{
    wn_item end = {.kind = WN_ITEM_END};

    while (!wn_handoff_dispatcher_done(handoff)) {
        if (wn_handoff_push(handoff, &end, STEP_MS))
            return;
        /* A full queue or a stop can make the push return at once: do not spin. */
        (void)poll(NULL, 0, STEP_MS);
    }
}

/* What a transaction waited from its Commit's arrival to the status update acknowledging it. */
static void log_acklag(const wn_stream *stream)
{
    if (stream->lag.count == 0)
        return;
    wn_log(WN_LOG_INFO,
           "acknowledgement lag over %" PRIu64 " transactions: p50 %.2f ms, p99 %.2f ms, max "
           "%.2f ms",
           stream->lag.count, (double)wn_acklag_quantile(&stream->lag, 0.50) / 1000.0,
           (double)wn_acklag_quantile(&stream->lag, 0.99) / 1000.0,
           (double)stream->lag.max_us / 1000.0);
}

int wn_stream_run(wn_stream *stream, wn_handoff *handoff, char *err, size_t errlen)
{
    bool ok = true;

    stream->err = err;
    stream->errlen = errlen;
    stream->lost = false;
    stream->next_status_ms = monotonic_ms() + stream->status_interval_ms;
    stream->last_receive_ms = monotonic_ms();
    stream->next_progress_ms = monotonic_ms() + stream->progress_interval_ms;
    pthread_mutex_lock(&stream->conn_lock);
    stream->streaming = handoff;
    while (ok && !wn_handoff_stop_requested(handoff))
        ok = step(stream, handoff);
    stream->streaming = NULL;
    pthread_mutex_unlock(&stream->conn_lock);
    if (stream->have_pending) {
        /* Not acknowledged, so the server sends it again next run. */
        wn_item_release(&stream->pending);
        stream->have_pending = false;
    }
    if (!ok) {
        write_state(stream, true);
        log_acklag(stream);
        push_end(handoff);
        return stream->lost ? WN_EXIT_TRANSIENT : WN_EXIT_SERVER;
    }
    wait_for_dispatcher(stream, handoff, true);
    ok = finish_copy(stream, handoff);
    write_state(stream, true);
    log_acklag(stream);
    push_end(handoff);
    return ok ? 0 : stream->lost ? WN_EXIT_TRANSIENT : WN_EXIT_SERVER;
}

static bool on_unix_socket(const PGconn *conn)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof address;

    if (getsockname(PQsocket(conn), (struct sockaddr *)&address, &length) != 0)
        return false;
    return address.ss_family == AF_UNIX;
}

static void free_start(wn_stream *stream)
{
    free((char *)stream->start.slot);
    free((char *)stream->start.publication);
}

/* START_REPLICATION on a connection in command mode (again: after a copy the client ended),
 * waited for in blocking mode (as libpq's simple commands are); the stream reads in
 * non-blocking mode. */
static int start_streaming(wn_stream *stream, bool again, char *err, size_t errlen)
{
    char message[MESSAGE_MAX];
    int status = 0;

    if (PQsetnonblocking(stream->conn, 0) != 0) {
        wn_server_message(stream->conn, NULL, message, sizeof message);
        snprintf(err, errlen, "starting replication: %s", message);
        return WN_EXIT_SERVER;
    }
    if (again)
        status = wn_replstart_reset(stream->conn, stream->start.stop_fd, err, errlen);
    if (status == 0)
        status = wn_start_replication(stream->conn, &stream->start, err, errlen);
    if (status != 0)
        return status;
    if (PQsetnonblocking(stream->conn, 1) != 0) {
        wn_server_message(stream->conn, NULL, message, sizeof message);
        snprintf(err, errlen, "starting replication: %s", message);
        return WN_EXIT_SERVER;
    }
    stream->copy = COPY_STREAMING;
    return 0;
}

/* wn_stream_restart's steps; stream->err is set. */
static int restart(wn_stream *stream, wn_lsn start_lsn, bool messages)
{
    bool stopped = false;

    if (stream->copy == COPY_STREAMING) {
        fail(stream, "the last stream's copy was not ended (its connection failed)");
        return WN_EXIT_TRANSIENT;
    }
    if (!drain(stream, stream->copy_done_ms + REWIND_DRAIN_TIMEOUT_MS, stream->start.stop_fd,
               &stopped)) {
        if (stopped) {
            fail(stream, "stopped while the server ended the copy");
            return WN_EXIT_STOPPED;
        }
        if (stream->copy != COPY_BROKEN)
            fail(stream, "the server had not ended the copy %d ms after walnotify's CopyDone",
                 REWIND_DRAIN_TIMEOUT_MS);
        return WN_EXIT_TRANSIENT;
    }
    stream->start.start_lsn = start_lsn;
    stream->start.messages = messages;
    return start_streaming(stream, true, stream->err, stream->errlen);
}

int wn_stream_restart(wn_stream *stream, wn_lsn start_lsn, bool messages, char *err, size_t errlen)
{
    int status;

    stream->err = err;
    stream->errlen = errlen;
    status = restart(stream, start_lsn, messages);
    if (status != 0)
        stream->copy = COPY_BROKEN;
    /* err is the caller's only for this call. */
    stream->err = NULL;
    stream->errlen = 0;
    return status;
}

int wn_stream_open(wn_stream **out, const wn_stream_options *options, char *err, size_t errlen)
{
    wn_stream *stream;
    int status = WN_EXIT_SERVER;

    *out = NULL;
    stream = calloc(1, sizeof *stream);
    if (!stream) {
        snprintf(err, errlen, "opening the replication stream: out of memory");
        return WN_EXIT_SERVER;
    }
    stream->status_interval_ms = options->status_interval_ms;
    stream->receive_timeout_ms = options->receive_timeout_ms;
    stream->progress_interval_ms = options->progress_interval_ms;
    stream->nap_us = NAP_START_US;
    stream->start = (wn_replstart){.slot = strdup(options->slot),
                                   .publication = strdup(options->publication),
                                   .start_lsn = options->start_lsn,
                                   .messages = options->messages,
                                   .stop_fd = options->stop_fd};
    if (!stream->start.slot || !stream->start.publication) {
        free_start(stream);
        free(stream);
        snprintf(err, errlen, "opening the replication stream: out of memory");
        return WN_EXIT_SERVER;
    }
    pthread_mutex_init(&stream->state_lock, NULL);
    pthread_mutex_init(&stream->conn_lock, NULL);
    if (options->state_file && options->origin) {
        stream->state_file = options->state_file;
        stream->state = *options->origin;
        /* The caller wrote the start position: only what comes after is news. */
        stream->state.lsn = options->start_lsn;
    }
    /* The slot's name is the stream's application_name unless the user set one: what
     * synchronous_standby_names names, one per pipeline (as a subscription's name is its
     * walreceiver's). */
    stream->conn = wn_connect_as(options->conninfo, options->slot, true, options->utf8,
                                 options->stop_fd, &status, err, errlen);
    if (!stream->conn)
        goto free_stream;
    status = start_streaming(stream, false, err, errlen);
    if (status != 0)
        goto free_stream;
    stream->unix_socket = on_unix_socket(stream->conn);
    *out = stream;
free_stream:
    if (status != 0) {
        if (stream->conn)
            PQfinish(stream->conn);
        pthread_mutex_destroy(&stream->state_lock);
        pthread_mutex_destroy(&stream->conn_lock);
        free_start(stream);
        free(stream);
    }
    return status;
}

int wn_stream_backend_pid(const wn_stream *stream)
{
    return PQbackendPID(stream->conn);
}

void wn_stream_close(wn_stream *stream)
{
    if (!stream)
        return;
    if (stream->have_pending)
        wn_item_release(&stream->pending);
    PQfinish(stream->conn);
    pthread_mutex_destroy(&stream->state_lock);
    pthread_mutex_destroy(&stream->conn_lock);
    free_start(stream);
    free(stream);
}

/*
 * The dispatcher's thread, right after it published a position: when the reader sleeps (it does
 * on a quiet stream, which is when the time counts), the dispatcher sends the status update
 * itself rather than wake the reader for it: a thread to schedule fewer before the server hears.
 * When the reader is busy, or anything but a clean send happens, the reader is woken as before
 * and does it (and meets any failure there).
 */
bool wn_stream_acknowledge(void *arg)
{
    wn_stream *stream = arg;
    bool sent = false;

    if (pthread_mutex_trylock(&stream->conn_lock) != 0)
        return false;
    if (stream->streaming != NULL && !stream->want_write &&
        acknowledgeable_moved(stream, stream->streaming) &&
        put_status(stream, stream->streaming, false) == 1) {
        int r = PQflush(stream->conn);

        sent = r == 0;
        stream->want_write = r == 1;
    }
    pthread_mutex_unlock(&stream->conn_lock);
    return sent;
}
