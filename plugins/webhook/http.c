/*
 * http: the webhook plugin's libcurl client. One easy handle per instance, so the connection is
 * kept alive and reused; every request is bounded by timeout_ms; the answer's body is kept only
 * as far as a message needs it.
 *
 * A started request is driven by libcurl's multi interface from the host's own thread: starting
 * it sends what the socket takes at once, and collecting it reads the answer, which has usually
 * arrived by then. No thread of our own, so no thread switch per request.
 */
#include "http.h"

#include "secretfile.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef WALNOTIFY_VERSION
#define WALNOTIFY_VERSION "1.0.0"
#endif

#define TOKEN_MAX_BYTES 16384 /* a bearer token file larger than this is not a token */
#define ANSWER_KEEP 200       /* bytes of an answer's body quoted in messages */
#define MAX_REDIRECTS 5
#define WAIT_SLICE_MS 1000 /* longest single wait for the answer, so the deadline is looked at */

struct webhook_http {
    const walnotify_host *host;       /* borrowed until shutdown */
    const webhook_settings *settings; /* borrowed: the state's own copy */
    CURL *curl;
    struct curl_slist *base_headers; /* Content-Type, Expect and the user's headers */
    char *token;                     /* the bearer token, NULL when none; wiped before free */
    char *target;                    /* the URL for messages */
    char error[CURL_ERROR_SIZE];     /* libcurl's reason for the last failure */
    char answer[ANSWER_KEEP + 1];    /* the start of the last answer's body */
    size_t answer_len;

    /* The one request in flight, driven through `multi`. */
    CURLM *multi;
    struct curl_slist *headers; /* the request's own headers; NULL when none is in flight */
    bool in_flight;             /* started, its answer not yet collected */
    bool added;                 /* the handle is in `multi` */
    bool done;                  /* libcurl is through with it: `result` says how */
    CURLcode result;
    const char *failure; /* set when it could not be sent at all: why */
    int64_t deadline_ms; /* monotonic time by which its answer must have come */
    curl_off_t length;   /* bytes of its body */
    int redirects;       /* redirects followed so far (within the URL's origin) */
    char refused_redirect[WEBHOOK_WHAT_MAX / 2]; /* why a redirect was not followed, or "" */
};

/* ---- the bearer token ------------------------------------------------------------------------ */

static void wipe_free(char *secret)
{
    if (secret == NULL)
        return;
    explicit_bzero(secret, strlen(secret));
    free(secret);
}

/* The token is the file's content without the surrounding blanks and newline editors add. */
static char *read_token(const walnotify_host *host, const char *path)
{
    char why[1024];
    size_t length = 0, start = 0, end;
    char *text =
        wn_secret_read("bearer_token_file", path, TOKEN_MAX_BYTES, &length, why, sizeof why);

    /* The token file follows walnotify's rule for a file holding a secret (secretfile.h). */
    if (text == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "%s", why);
        return NULL;
    }
    end = strlen(text);
    while (end > 0 && isspace((unsigned char)text[end - 1]))
        end--;
    while (start < end && isspace((unsigned char)text[start]))
        start++;
    text[end] = '\0';
    memmove(text, text + start, end - start + 1);
    if (text[0] == '\0') {
        host->log(host, WALNOTIFY_LOG_ERROR, "bearer_token_file %s is empty", path);
        goto refuse;
    }
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p < 0x21 || *p == 0x7f) {
            /* Where, not what: the token must not reach a log. */
            host->log(host, WALNOTIFY_LOG_ERROR,
                      "bearer_token_file %s holds a blank or control character inside the token "
                      "(byte %zu): a token is one line of printable characters",
                      path, (size_t)(p - (const unsigned char *)text) + 1);
            goto refuse;
        }
    }
    return text;

refuse:
    wipe_free(text);
    return NULL;
}

/* ---- one request ----------------------------------------------------------------------------- */

/* The answer's start, printable, for a message. */
static void quote_answer(const webhook_http *http, char *out, size_t outlen)
{
    size_t n = 0;

    for (size_t i = 0; i < http->answer_len && n + 1 < outlen; i++) {
        unsigned char c = (unsigned char)http->answer[i];
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

static void classify_status(const webhook_http *http, long status, webhook_reply *reply)
{
    char answer[ANSWER_KEEP + 1];

    reply->status = status;
    if (status >= 200 && status < 300) {
        reply->outcome = WEBHOOK_DELIVERED;
        return;
    }
    quote_answer(http, answer, sizeof answer);
    if (status >= 400 && status < 500 && status != 408 && status != 429) {
        reply->outcome = WEBHOOK_PERMANENT;
        snprintf(reply->what, sizeof reply->what, "HTTP %ld from %s: %s", status, http->target,
                 answer[0] != '\0' ? answer : "(no body)");
        return;
    }
    /* 408, 429, 5xx, and what should not come at all (1xx, 3xx): nothing is lost by waiting. */
    reply->outcome = WEBHOOK_TRANSIENT;
    if (http->refused_redirect[0] != '\0') {
        snprintf(reply->what, sizeof reply->what, "HTTP %ld from %s %s", status, http->target,
                 http->refused_redirect);
        return;
    }
    snprintf(reply->what, sizeof reply->what, "HTTP %ld from %s%s: %s", status, http->target,
             status >= 300 && status < 400 && !http->settings->follow_redirects
                 ? " (a redirect: fix url, or set follow_redirects = true)"
                 : "",
             answer[0] != '\0' ? answer : "(no body)");
}

static bool is_tls_failure(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SSL_CERTPROBLEM ||
           rc == CURLE_SSL_ISSUER_ERROR;
}

/* No usable answer: the request may be sent again. */
static void classify_failure(const webhook_http *http, CURLcode rc, webhook_reply *reply)
{
    const char *reason = http->error[0] != '\0' ? http->error : curl_easy_strerror(rc);
    curl_off_t sent = 0;

    reply->outcome = WEBHOOK_TRANSIENT;
    curl_easy_getinfo(http->curl, CURLINFO_SIZE_UPLOAD_T, &sent);
    reply->cut_after_send = sent > 0 && (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
                                         rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE);
    if (is_tls_failure(rc)) {
        snprintf(reply->what, sizeof reply->what,
                 "TLS with %s failed, its certificate not verified against %s%s: %s", http->target,
                 http->settings->ca_file != NULL ? "ca_file "
                                                 : "the system's certificate authorities",
                 http->settings->ca_file != NULL ? http->settings->ca_file : "", reason);
        return;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(reply->what, sizeof reply->what, "no answer from %s within timeout_ms = %ld: %s",
                 http->target, http->settings->timeout_ms, reason);
        return;
    }
    snprintf(reply->what, sizeof reply->what, "POST to %s failed%s: %s", http->target,
             reply->cut_after_send ? " after the request went out" : "", reason);
}

static bool append_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[256];
    struct curl_slist *next;

    if (value == NULL)
        return true;
    if (name != NULL)
        snprintf(line, sizeof line, "%s: %s", name, value);
    else
        snprintf(line, sizeof line, "%s", value);
    next = curl_slist_append(*list, line);
    if (next == NULL)
        return false;
    *list = next;
    return true;
}

/* The request's own headers, then (linked, not copied) the instance's. */
static struct curl_slist *request_headers(const webhook_http *http, const webhook_request *request)
{
    struct curl_slist *list = NULL, *tail;

    if (!append_header(&list, "Idempotency-Key", request->idempotency_key) ||
        !append_header(&list, "Walnotify-Commit-LSN", request->commit_lsn) ||
        !append_header(&list, NULL, request->extra[0]) ||
        !append_header(&list, NULL, request->extra[1])) {
        curl_slist_free_all(list);
        return NULL;
    }
    if (list == NULL)
        return NULL;
    for (tail = list; tail->next != NULL; tail = tail->next)
        ;
    tail->next = http->base_headers;
    return list;
}

/* Frees what request_headers made, leaving the instance's headers alone. */
static void free_request_headers(const webhook_http *http, struct curl_slist *list)
{
    struct curl_slist *node = list;

    while (node != NULL && node->next != http->base_headers)
        node = node->next;
    if (node != NULL)
        node->next = NULL;
    curl_slist_free_all(list);
}

static int64_t monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static char *redacted_target(const char *url);

/* Whether part of two URLs is the same (a port counts as its scheme's default when absent). */
static bool same_part(CURLU *a, CURLU *b, CURLUPart part)
{
    char *x = NULL, *y = NULL;
    bool same = curl_url_get(a, part, &x, CURLU_DEFAULT_PORT) == CURLUE_OK &&
                curl_url_get(b, part, &y, CURLU_DEFAULT_PORT) == CURLUE_OK && strcasecmp(x, y) == 0;

    curl_free(x);
    curl_free(y);
    return same;
}

/*
 * Where a redirect to `location` leads, when it keeps to the origin (scheme, host and port) of
 * the configured url: the configured headers and token are meant for that origin only, and
 * https never turns into http. The configured user and password go along when the location
 * names none. NULL otherwise, with why in refused_redirect. To curl_free.
 */
static char *same_origin_target(webhook_http *http, const char *location)
{
    CURLU *from = curl_url(), *to = curl_url();
    char *next = NULL, *user = NULL, *password = NULL, *shown;

    if (from == NULL || to == NULL ||
        curl_url_set(from, CURLUPART_URL, http->settings->url, 0) != CURLUE_OK ||
        curl_url_set(to, CURLUPART_URL, location, 0) != CURLUE_OK) {
        snprintf(http->refused_redirect, sizeof http->refused_redirect,
                 "redirects to a location libcurl cannot read: not followed");
        goto free_urls;
    }
    if (!same_part(from, to, CURLUPART_SCHEME) || !same_part(from, to, CURLUPART_HOST) ||
        !same_part(from, to, CURLUPART_PORT)) {
        shown = redacted_target(location);
        snprintf(http->refused_redirect, sizeof http->refused_redirect,
                 "redirects to %s, another origin: not followed, since the configured headers "
                 "and token are for url's origin only (set url to where it points)",
                 shown != NULL ? shown : "?");
        free(shown);
        goto free_urls;
    }
    if (curl_url_get(to, CURLUPART_USER, &user, 0) == CURLUE_NO_USER &&
        curl_url_get(from, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        curl_url_set(to, CURLUPART_USER, user, 0);
        if (curl_url_get(from, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
            curl_url_set(to, CURLUPART_PASSWORD, password, 0);
    }
    curl_url_get(to, CURLUPART_URL, &next, 0);
free_urls:
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(from);
    curl_url_cleanup(to);
    return next;
}

/*
 * A 3xx with a location, when follow_redirects is set: the same POST goes there, within the
 * request's deadline, if it keeps to the origin. libcurl's own following would send the
 * configured headers to any host. true when the request was sent again.
 */
static bool follow_redirect(webhook_http *http)
{
    long status = 0;
    char *location = NULL, *next;
    CURLcode rc;

    if (!http->settings->follow_redirects || http->failure != NULL || http->result != CURLE_OK)
        return false;
    curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &status);
    if ((status < 301 || status > 303) && status != 307 && status != 308)
        return false;
    if (curl_easy_getinfo(http->curl, CURLINFO_REDIRECT_URL, &location) != CURLE_OK ||
        location == NULL)
        return false;
    if (http->redirects >= MAX_REDIRECTS) {
        snprintf(http->refused_redirect, sizeof http->refused_redirect,
                 "redirects again after %d redirects: not followed", MAX_REDIRECTS);
        return false;
    }
    next = same_origin_target(http, location);
    if (next == NULL)
        return false;
    curl_multi_remove_handle(http->multi, http->curl);
    http->added = false;
    rc = curl_easy_setopt(http->curl, CURLOPT_URL, next);
    curl_free(next);
    http->redirects++;
    http->answer_len = 0;
    http->answer[0] = '\0';
    http->error[0] = '\0';
    if (rc != CURLE_OK || curl_multi_add_handle(http->multi, http->curl) != CURLM_OK) {
        http->failure = "libcurl refused to follow a redirect";
        return false;
    }
    http->added = true;
    http->done = false;
    return true;
}

/* Lets libcurl do what it can without waiting. true once the request is through. */
static bool drive(webhook_http *http)
{
    CURLMsg *msg;
    CURLMcode mc;
    int running = 0, queued = 0;

    if (http->done)
        return true;
    mc = curl_multi_perform(http->multi, &running);
    if (mc != CURLM_OK) {
        http->failure = curl_multi_strerror(mc);
        http->done = true;
        return true;
    }
    while ((msg = curl_multi_info_read(http->multi, &queued)) != NULL) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == http->curl) {
            http->result = msg->data.result;
            http->done = true;
        }
    }
    if (http->done && follow_redirect(http))
        return drive(http);
    return http->done;
}

/* Ends the request's use of the handle: out of `multi` (a transfer cut short closes its
 * connection), its headers let go. */
static void release_request(webhook_http *http)
{
    if (http->added)
        curl_multi_remove_handle(http->multi, http->curl);
    http->added = false;
    curl_easy_setopt(http->curl, CURLOPT_HTTPHEADER, NULL);
    if (http->headers != NULL)
        free_request_headers(http, http->headers);
    http->headers = NULL;
    http->in_flight = false;
}

/* What came of the finished request (or of the one that ran out of time). */
static void collect(webhook_http *http, bool timed_out, webhook_reply *reply)
{
    curl_off_t retry_after = 0;
    long status = 0;

    memset(reply, 0, sizeof *reply);
    if (http->failure != NULL) {
        reply->outcome = WEBHOOK_TRANSIENT;
        snprintf(reply->what, sizeof reply->what, "POST to %s not sent: %s", http->target,
                 http->failure);
        return;
    }
    if (timed_out) {
        reply->outcome = WEBHOOK_TRANSIENT;
        snprintf(reply->what, sizeof reply->what, "no answer from %s within timeout_ms = %ld",
                 http->target, http->settings->timeout_ms);
        return;
    }
    if (http->result != CURLE_OK) {
        classify_failure(http, http->result, reply);
        return;
    }
    curl_easy_getinfo(http->curl, CURLINFO_RESPONSE_CODE, &status);
    classify_status(http, status, reply);
    if (reply->outcome == WEBHOOK_TRANSIENT &&
        curl_easy_getinfo(http->curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
        retry_after > 0)
        reply->retry_after_ms = retry_after > 86400 ? 86400000L : (long)retry_after * 1000L;
}

void webhook_http_start(webhook_http *http, const webhook_request *request)
{
    CURLMcode mc;

    http->error[0] = '\0';
    http->answer_len = 0;
    http->answer[0] = '\0';
    http->in_flight = true;
    http->done = false;
    http->failure = NULL;
    http->result = CURLE_OK;
    http->deadline_ms = monotonic_ms() + http->settings->timeout_ms;
    http->length = (curl_off_t)request->length;
    http->refused_redirect[0] = '\0';
    if (http->redirects > 0)
        curl_easy_setopt(http->curl, CURLOPT_URL, http->settings->url);
    http->redirects = 0;
    http->headers = request_headers(http, request);
    if (http->headers == NULL) {
        http->failure = "out of memory building the request's headers";
        http->done = true;
        return;
    }
    curl_easy_setopt(http->curl, CURLOPT_HTTPHEADER, http->headers);
    curl_easy_setopt(http->curl, CURLOPT_POSTFIELDS, request->body);
    curl_easy_setopt(http->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->length);
    mc = curl_multi_add_handle(http->multi, http->curl);
    if (mc != CURLM_OK) {
        http->failure = curl_multi_strerror(mc);
        http->done = true;
        return;
    }
    http->added = true;
    drive(http);
}

void webhook_http_progress(webhook_http *http)
{
    if (http->in_flight)
        drive(http);
}

/* Whether the whole request has gone out (a new connection, or a body larger than the socket
 * takes, goes out only as libcurl is driven). */
static bool all_sent(const webhook_http *http)
{
    curl_off_t sent = 0;

    curl_easy_getinfo(http->curl, CURLINFO_SIZE_UPLOAD_T, &sent);
    return sent >= http->length;
}

/*
 * The answer is read before the deadline is looked at: one that came while the host was busy
 * elsewhere counts, however late it is collected. A request that was not yet all sent when the
 * host left it gets timeout_ms from now: the receiver cannot answer what it was not sent.
 */
void webhook_http_finish(webhook_http *http, webhook_reply *reply)
{
    bool was_out = all_sent(http);
    bool timed_out = false;

    if (!drive(http) && !was_out)
        http->deadline_ms = monotonic_ms() + http->settings->timeout_ms;
    while (!drive(http)) {
        int64_t left = http->deadline_ms - monotonic_ms();

        if (left <= 0) {
            timed_out = true;
            break;
        }
        curl_multi_poll(http->multi, NULL, 0, left < WAIT_SLICE_MS ? (int)left : WAIT_SLICE_MS,
                        NULL);
    }
    collect(http, timed_out, reply);
    release_request(http);
}

void webhook_http_post(webhook_http *http, const webhook_request *request, webhook_reply *reply)
{
    webhook_http_start(http, request);
    webhook_http_finish(http, reply);
}

/* ---- setting up ------------------------------------------------------------------------------ */

/* scheme://host[:port]/path of the URL: no credentials, no query (it may hold a key). */
static char *redacted_target(const char *url)
{
    CURLU *u = curl_url();
    char *clean = NULL, *copy = NULL;

    if (u == NULL)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &clean, 0) != CURLUE_OK)
        goto free_url;
    copy = strdup(clean);
    curl_free(clean);
free_url:
    curl_url_cleanup(u);
    return copy;
}

static size_t keep_answer(char *data, size_t size, size_t nmemb, void *user)
{
    webhook_http *http = user;
    size_t bytes = size * nmemb;
    size_t room = ANSWER_KEEP - http->answer_len;
    size_t take = bytes < room ? bytes : room;

    memcpy(http->answer + http->answer_len, data, take);
    http->answer_len += take;
    http->answer[http->answer_len] = '\0';
    return bytes; /* the rest is read and dropped, so the connection stays usable */
}

static bool build_base_headers(webhook_http *http)
{
    const webhook_settings *s = http->settings;
    struct curl_slist *list = NULL, *next;

    list = curl_slist_append(list, s->mode == WEBHOOK_MODE_TRANSACTION
                                       ? "Content-Type: application/x-ndjson"
                                       : "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before a large body. */
    if (list != NULL && (next = curl_slist_append(list, "Expect:")) != NULL)
        list = next;
    else
        goto fail;
    for (size_t i = 0; i < s->nheaders; i++) {
        next = curl_slist_append(list, webhook_settings_header(http->host, i));
        if (next == NULL)
            goto fail;
        list = next;
    }
    http->base_headers = list;
    return true;

fail:
    curl_slist_free_all(list);
    return false;
}

/* Every option that holds for the instance's whole life. */
static bool set_options(webhook_http *http)
{
    const webhook_settings *s = http->settings;
    CURL *c = http->curl;
    CURLcode rc = CURLE_OK;

#define SET(option, value)                                                                         \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, option, value);                                               \
    } while (0)
    SET(CURLOPT_URL, s->url);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: the host's threads block signals */
    SET(CURLOPT_ERRORBUFFER, http->error);
    SET(CURLOPT_WRITEFUNCTION, keep_answer);
    SET(CURLOPT_WRITEDATA, http);
    /* timeout_ms is kept by webhook_http_finish, from the start of the request: libcurl's own
     * timers would also run while the host is away decoding, and fail an answered request. */
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    /* Redirects are followed by follow_redirect, within the origin only. */
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_USERAGENT, "walnotify-webhook/" WALNOTIFY_VERSION);
    SET(CURLOPT_SSL_VERIFYPEER, s->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, s->insecure ? 0L : 2L);
    if (s->ca_file != NULL)
        SET(CURLOPT_CAINFO, s->ca_file);
    if (http->token != NULL) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        SET(CURLOPT_XOAUTH2_BEARER, http->token);
    }
#undef SET
    if (rc != CURLE_OK) {
        http->host->log(http->host, WALNOTIFY_LOG_ERROR, "libcurl refused an option: %s",
                        curl_easy_strerror(rc));
        return false;
    }
    return true;
}

/* Words of a header name that usually carries a credential (X-Api-Key, X-Auth-Token, ...). */
static const char *const secret_words[] = {"auth",   "token",   "key",       "secret", "pass",
                                           "cookie", "session", "signature", NULL};

/* The name of a configured "Name: value" header, when it looks like it carries a credential. */
static bool secret_header(const char *header, char *name, size_t namelen)
{
    size_t len = strcspn(header, ":");

    if (len >= namelen)
        len = namelen - 1;
    for (size_t i = 0; i < len; i++)
        name[i] = (char)tolower((unsigned char)header[i]);
    name[len] = '\0';
    for (size_t i = 0; secret_words[i] != NULL; i++)
        if (strstr(name, secret_words[i]) != NULL) {
            memcpy(name, header, len); /* as configured, for the message */
            return true;
        }
    return false;
}

/* localhost, 127.0.0.0/8 or [::1]: what is sent there does not leave the machine. */
static bool loopback_host(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    char bare[INET6_ADDRSTRLEN + 1];
    size_t len = strlen(host);

    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (len < 3 || host[0] != '[' || host[len - 1] != ']' || len - 2 >= sizeof bare)
        return false;
    memcpy(bare, host + 1, len - 2);
    bare[len - 2] = '\0';
    return inet_pton(AF_INET6, bare, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

/*
 * One warning when a credential (the bearer token, the URL's password, a header whose name looks
 * like one) goes over plain http to another machine: anyone on the way can read it. A receiver on
 * loopback is not warned about (a local relay is common).
 */
static void warn_plain_secrets(const webhook_http *http)
{
    const webhook_settings *s = http->settings;
    CURLU *u = curl_url();
    char *scheme = NULL, *hostname = NULL, *password = NULL;
    char header[64] = "", what[160];
    bool secret = http->token != NULL;

    if (u == NULL || curl_url_set(u, CURLUPART_URL, s->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &hostname, 0) != CURLUE_OK ||
        strcasecmp(scheme, "http") != 0 || loopback_host(hostname))
        goto free_url;
    if (curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
        secret = true;
    for (size_t i = 0; i < s->nheaders && header[0] == '\0'; i++)
        if (!secret_header(webhook_settings_header(http->host, i), header, sizeof header))
            header[0] = '\0';
    if (!secret && header[0] == '\0')
        goto free_url;
    snprintf(what, sizeof what, "%s%s%s%s",
             http->token != NULL ? "the bearer token"
             : password != NULL  ? "the URL's password"
                                 : "",
             secret && header[0] != '\0' ? " and " : "", header[0] != '\0' ? "header " : "",
             header);
    http->host->log(http->host, WALNOTIFY_LOG_WARNING,
                    "%s go%s to %s over plain http: anyone on the network path can read %s "
                    "(use https://)",
                    what, secret && header[0] != '\0' ? "" : "es", http->target,
                    secret && header[0] != '\0' ? "them" : "it");
free_url:
    curl_free(scheme);
    curl_free(hostname);
    curl_free(password);
    curl_url_cleanup(u);
}

webhook_http *webhook_http_open(const walnotify_host *host, const webhook_settings *settings)
{
    webhook_http *http = calloc(1, sizeof *http);

    if (http == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return NULL;
    }
    http->host = host;
    http->settings = settings;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        host->log(host, WALNOTIFY_LOG_ERROR, "libcurl failed to initialise");
        free(http);
        return NULL;
    }
    http->target = redacted_target(settings->url);
    if (http->target == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting url is not a URL libcurl accepts");
        goto fail;
    }
    if (settings->bearer_token_file != NULL) {
        http->token = read_token(host, settings->bearer_token_file);
        if (http->token == NULL)
            goto fail;
    }
    http->curl = curl_easy_init();
    http->multi = curl_multi_init();
    if (http->curl == NULL || http->multi == NULL || !build_base_headers(http)) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory setting up libcurl");
        goto fail;
    }
    if (!set_options(http))
        goto fail;
    warn_plain_secrets(http);
    return http;

fail:
    webhook_http_close(http);
    return NULL;
}

void webhook_http_close(webhook_http *http)
{
    if (http == NULL)
        return;
    /* A request still in flight is cut short: nothing was acknowledged without its answer. */
    if (http->in_flight)
        release_request(http);
    if (http->curl != NULL)
        curl_easy_cleanup(http->curl);
    if (http->multi != NULL)
        curl_multi_cleanup(http->multi);
    curl_slist_free_all(http->base_headers);
    wipe_free(http->token);
    free(http->target);
    free(http);
    curl_global_cleanup();
}

const char *webhook_http_target(const webhook_http *http)
{
    return http->target;
}
