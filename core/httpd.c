/* httpd: /metrics, /healthz and /readyz over libmicrohttpd. */
#include "httpd.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define PROMETHEUS_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct wn_httpd {
    struct MHD_Daemon *daemon;
    const wn_metrics *metrics;
};

/* A response whose body is text (copied). */
static enum MHD_Result reply(struct MHD_Connection *connection, unsigned status, const char *text)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result result;

    if (response == NULL)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result reply_metrics(struct MHD_Connection *connection, const wn_metrics *metrics)
{
    struct MHD_Response *response;
    enum MHD_Result result;
    char *body = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&body, &length);
    int rc;

    if (out == NULL)
        return reply(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    rc = wn_metrics_render(metrics, out);
    if (fclose(out) != 0 || rc != 0) {
        free(body);
        return reply(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    response = MHD_create_response_from_buffer(length, body, MHD_RESPMEM_MUST_FREE);
    if (response == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, PROMETHEUS_TYPE);
    result = MHD_queue_response(connection, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *connection, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **request)
{
    const wn_httpd *httpd = cls;

    (void)version;
    (void)upload_data;
    (void)request;
    if (*upload_data_size != 0)
        return MHD_NO;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0)
        return reply_metrics(connection, httpd->metrics);
    if (strcmp(url, "/healthz") == 0)
        return wn_metrics_alive(httpd->metrics)
                   ? reply(connection, MHD_HTTP_OK, "ok\n")
                   : reply(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "not running\n");
    if (strcmp(url, "/readyz") == 0)
        return wn_metrics_ready(httpd->metrics)
                   ? reply(connection, MHD_HTTP_OK, "streaming\n")
                   : reply(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "not streaming\n");
    return reply(connection, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz, /readyz\n");
}

int wn_httpd_start(wn_httpd **httpd, const char *listen, const wn_metrics *metrics, char *err,
                   size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    wn_httpd *h;

    *httpd = NULL;
    if (!wn_config_listen_address(listen, &addr, &addrlen)) {
        snprintf(err, errlen, "metrics_listen \"%s\" is not an address to listen on", listen);
        return -1;
    }
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory starting the metrics endpoint");
        return -1;
    }
    h->metrics = metrics;
    errno = 0;
    h->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, answer, h, MHD_OPTION_SOCK_ADDR,
                         (const struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(err, errlen, "metrics_listen \"%s\": cannot listen there: %s", listen,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        free(h);
        return -1;
    }
    *httpd = h;
    return 0;
}

void wn_httpd_stop(wn_httpd *httpd)
{
    if (httpd == NULL)
        return;
    MHD_stop_daemon(httpd->daemon);
    free(httpd);
}
