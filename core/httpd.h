/*
 * httpd: the endpoint at `metrics_listen`, on libmicrohttpd's own thread: GET /metrics (the
 * Prometheus text format), /healthz (200 while the run's loop goes, a waiting standby too) and
 * /readyz (200 only while this host holds the slot and streams; a standby answers 503).
 */
#ifndef WN_HTTPD_H
#define WN_HTTPD_H

#include <stddef.h>

#include "metrics.h"

typedef struct wn_httpd wn_httpd;

/* Listens on `listen` ("ADDRESS:PORT", as metrics_listen was validated) and serves metrics
 * (borrowed until wn_httpd_stop). Returns 0 with *httpd set, or -1 with one line in err. */
int wn_httpd_start(wn_httpd **httpd, const char *listen, const wn_metrics *metrics, char *err,
                   size_t errlen);

/* Closes the socket and ends the thread; NULL does nothing. */
void wn_httpd_stop(wn_httpd *httpd);

#endif
