/*
 * count_server: the benchmark's HTTP receiver. It answers every request 200 at once and only
 * counts: requests, and events (the lines of an NDJSON body, or 1 for a JSON one). One
 * connection at a time, kept alive, on 127.0.0.1, so that the receiver costs the same whoever
 * sends.
 *
 *   count_server PORT_FILE STATS_FILE [BODIES_FILE]
 *
 * Writes its port to PORT_FILE once it listens; on SIGTERM (or when its parent dies) writes
 * "requests N events E seconds S" to STATS_FILE and exits, S being the time from the first
 * request's arrival to the last answer: the rate it took events at, whoever sent them. With
 * BODIES_FILE, every body is saved there as "LENGTH\n" then the bytes, for webhook_loop to send
 * again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

typedef struct counts {
    unsigned long long requests;
    unsigned long long events;
    double first; /* when the first request's bytes arrived, seconds */
    double last;  /* when the last answer left */
    FILE *bodies; /* NULL unless saving */
} counts;

typedef struct buffer {
    char *data;
    size_t len;
    size_t cap;
} buffer;

/* Reads more into b; false at EOF, on error or when stopping. */
static bool fill(int fd, buffer *b)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 20;
        char *data = realloc(b->data, cap);
        if (data == NULL)
            return false;
        b->data = data;
        b->cap = cap;
    }
    for (;;) {
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n > 0) {
            b->len += (size_t)n;
            return true;
        }
        if (n < 0 && errno == EINTR && !stopping)
            continue;
        return false;
    }
}

static size_t content_length(const char *head, size_t head_len)
{
    static const char name[] = "\ncontent-length:";
    for (size_t i = 0; i + sizeof name - 1 < head_len; i++)
        if (strncasecmp(head + i, name, sizeof name - 1) == 0)
            return (size_t)strtoull(head + i + sizeof name - 1, NULL, 10);
    return 0;
}

static void count_body(counts *c, const char *body, size_t length)
{
    unsigned long long lines = 0;
    for (const char *p = body; (p = memchr(p, '\n', (size_t)(body + length - p))) != NULL; p++)
        lines++;
    if (length > 0 && body[length - 1] != '\n')
        lines++;
    c->requests++;
    c->events += lines;
    if (c->bodies != NULL) {
        fprintf(c->bodies, "%zu\n", length);
        fwrite(body, 1, length, c->bodies);
    }
}

static void serve(int fd, counts *c)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    buffer b = {0};

    while (!stopping) {
        char *end = b.len >= 4 ? memmem(b.data, b.len, "\r\n\r\n", 4) : NULL;
        if (end == NULL) {
            if (!fill(fd, &b))
                break;
            if (c->requests == 0 && c->first == 0)
                c->first = now_s();
            continue;
        }
        size_t head = (size_t)(end - b.data) + 4;
        size_t total = head + content_length(b.data, head);
        while (b.len < total)
            if (!fill(fd, &b))
                goto done;
        count_body(c, b.data + head, total - head);
        if (write(fd, ok, sizeof ok - 1) != (ssize_t)(sizeof ok - 1))
            break;
        c->last = now_s();
        memmove(b.data, b.data + total, b.len - total);
        b.len -= total;
    }
done:
    free(b.data);
    close(fd);
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    struct sigaction sa = {.sa_handler = on_term}; /* no SA_RESTART: accept and read return */
    counts c = {0};
    int one = 1, lfd;
    FILE *f;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: count_server PORT_FILE STATS_FILE [BODIES_FILE]\n");
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (argc == 4 && (c.bodies = fopen(argv[3], "w")) == NULL) {
        perror(argv[3]);
        return 1;
    }
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &len) != 0) {
        perror("count_server: listen");
        return 1;
    }
    if ((f = fopen(argv[1], "w")) == NULL) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "%d\n", ntohs(addr.sin_port));
    fclose(f);
    while (!stopping) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd, &c);
    }
    if (c.bodies != NULL)
        fclose(c.bodies);
    if ((f = fopen(argv[2], "w")) == NULL)
        return 1;
    fprintf(f, "requests %llu events %llu seconds %.6f\n", c.requests, c.events,
            c.requests > 0 ? c.last - c.first : 0.0);
    fclose(f);
    return 0;
}
