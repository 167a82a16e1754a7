/* Unit tests for core/metrics.c: the exposition a scrape gets, from counters set by hand. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <walnotify/plugin.h>

#include "metrics.h"
#include "run_suite.h"

/* Two tables; plugin "a\"b\\c" watches both for inserts and messages, "second" only u. */
typedef struct fixture {
    wn_table_ref tables[2];
    wn_plugin_config plugins[2];
    bool watches_first[2];
    bool watches_second[2];
    wn_config config;
} fixture;

static void fixture_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->tables[0] = (wn_table_ref){"public", "t", "public.t"};
    f->tables[1] = (wn_table_ref){"odd", "u\"v", "odd.u\"v"};
    f->watches_first[0] = f->watches_first[1] = true;
    f->watches_second[1] = true;
    f->plugins[0].name = "a\"b\\c";
    f->plugins[0].ops = WALNOTIFY_OP_INSERT | WALNOTIFY_OP_MESSAGE;
    f->plugins[0].watches = f->watches_first;
    f->plugins[1].name = "second";
    f->plugins[1].ops = WALNOTIFY_OP_INSERT | WALNOTIFY_OP_DELETE;
    f->plugins[1].watches = f->watches_second;
    f->config.source.tables = f->tables;
    f->config.source.ntables = 2;
    f->config.plugins = f->plugins;
    f->config.nplugins = 2;
}

/* The scrape as a string, to free. */
static char *render(const wn_metrics *m)
{
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);

    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(wn_metrics_render(m, out), 0);
    ck_assert_int_eq(fclose(out), 0);
    return text;
}

static void assert_line(const char *text, const char *line)
{
    char *wanted = malloc(strlen(line) + 3);

    sprintf(wanted, "\n%s\n", line);
    if (strstr(text, wanted) == NULL)
        fprintf(stderr, "the scrape:\n%s", text);
    ck_assert_msg(strstr(text, wanted) != NULL, "no line \"%s\" in the scrape", line);
    free(wanted);
}

START_TEST(test_delivered_by_plugin_table_op)
{
    fixture f;
    wn_metrics *m;
    char *text;

    fixture_init(&f);
    m = wn_metrics_create(&f.config, 4096);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < 3; i++)
        wn_metrics_delivered(wn_metrics_plugin(m, 0), 1, WALNOTIFY_OP_INSERT);
    wn_metrics_delivered(wn_metrics_plugin(m, 0), -1, WALNOTIFY_OP_MESSAGE);
    wn_metrics_delivered(wn_metrics_plugin(m, 1), 1, WALNOTIFY_OP_DELETE);
    text = render(m);
    /* Label values escaped as the format asks: backslash and double quote. */
    assert_line(text, "walnotify_events_delivered_total{plugin=\"a\\\"b\\\\c\",table=\"public.t\","
                      "op=\"insert\"} 0");
    assert_line(text, "walnotify_events_delivered_total{plugin=\"a\\\"b\\\\c\",table=\"odd.u\\\"v\","
                      "op=\"insert\"} 3");
    assert_line(text, "walnotify_events_delivered_total{plugin=\"a\\\"b\\\\c\",table=\"\","
                      "op=\"message\"} 1");
    assert_line(text, "walnotify_events_delivered_total{plugin=\"second\",table=\"odd.u\\\"v\","
                      "op=\"delete\"} 1");
    /* What a block does not receive is not listed. */
    ck_assert_ptr_null(strstr(text, "plugin=\"second\",table=\"public.t\""));
    ck_assert_ptr_null(strstr(text, "plugin=\"second\",table=\"\""));
    free(text);
    wn_metrics_destroy(m);
}
END_TEST

START_TEST(test_histogram_and_counters)
{
    fixture f;
    wn_metrics *m;
    wn_plugin_metrics *p;
    char *text;

    fixture_init(&f);
    m = wn_metrics_create(&f.config, 4096);
    p = wn_metrics_plugin(m, 1);
    wn_metrics_call_done(p, WN_METRICS_FLUSH, wn_metrics_clock(p));
    wn_metrics_call_done(p, WN_METRICS_FLUSH, wn_metrics_clock(p));
    wn_metrics_retry(p);
    wn_metrics_skipped(p);
    wn_metrics_dead_letter(p);
    wn_metrics_rewind(p);
    text = render(m);
    assert_line(text, "# TYPE walnotify_flush_duration_seconds histogram");
    assert_line(text, "walnotify_flush_duration_seconds_bucket{plugin=\"second\",le=\"+Inf\"} 2");
    assert_line(text, "walnotify_flush_duration_seconds_count{plugin=\"second\"} 2");
    assert_line(text, "walnotify_flush_duration_seconds_bucket{plugin=\"second\",le=\"300\"} 2");
    assert_line(text, "walnotify_handle_duration_seconds_count{plugin=\"second\"} 0");
    assert_line(text, "walnotify_retries_total{plugin=\"second\"} 1");
    assert_line(text, "walnotify_events_skipped_total{plugin=\"second\"} 1");
    assert_line(text, "walnotify_dead_letters_total{plugin=\"second\"} 1");
    assert_line(text, "walnotify_rewinds_total{plugin=\"second\"} 1");
    assert_line(text, "walnotify_rewinds_total{plugin=\"a\\\"b\\\\c\"} 0");
    free(text);
    wn_metrics_destroy(m);
}
END_TEST

START_TEST(test_positions_and_state)
{
    fixture f;
    wn_metrics *m;
    char *text;

    fixture_init(&f);
    m = wn_metrics_create(&f.config, 4096);
    ck_assert(!wn_metrics_alive(m));
    wn_metrics_set_running(m, true);
    wn_metrics_set_state(m, WN_RUN_STANDBY);
    ck_assert(wn_metrics_alive(m));
    ck_assert(!wn_metrics_ready(m));
    wn_metrics_set_state(m, WN_RUN_STREAMING);
    ck_assert(wn_metrics_ready(m));
    wn_metrics_wal_end(m, 5000);
    wn_metrics_wal_end(m, 4000); /* an older message does not move it back */
    wn_metrics_transaction_received(m);
    wn_metrics_acknowledged(m, 1000, false);
    wn_metrics_queue(m, 17);
    wn_metrics_reconnected(m);
    text = render(m);
    assert_line(text, "walnotify_acknowledged_position_bytes 1000");
    assert_line(text, "walnotify_server_wal_end_bytes 5000");
    assert_line(text, "walnotify_lag_bytes 4000");
    assert_line(text, "walnotify_oldest_unacknowledged_transaction_age_seconds 0");
    assert_line(text, "walnotify_queue_items 17");
    assert_line(text, "walnotify_queue_capacity_items 4096");
    assert_line(text, "walnotify_reconnections_total 1");
    assert_line(text, "walnotify_slot_held 1");
    assert_line(text, "walnotify_standby 0");
    free(text);
    /* A transaction received and not acknowledged has an age from then on. */
    wn_metrics_transaction_received(m);
    ck_assert_int_gt(m->pending_since_ns, 0);
    wn_metrics_acknowledged(m, 2000, true);
    ck_assert_int_gt(m->pending_since_ns, 0);
    wn_metrics_acknowledged(m, 3000, false);
    ck_assert_int_eq(m->pending_since_ns, 0);
    wn_metrics_destroy(m);
}
END_TEST

START_TEST(test_null_does_nothing)
{
    wn_metrics_delivered(NULL, 0, WALNOTIFY_OP_INSERT);
    wn_metrics_call_done(NULL, WN_METRICS_HANDLE, wn_metrics_clock(NULL));
    wn_metrics_retry(NULL);
    wn_metrics_acknowledged(NULL, 1, false);
    wn_metrics_set_state(NULL, WN_RUN_STREAMING);
    ck_assert_ptr_null(wn_metrics_plugin(NULL, 0));
    wn_metrics_destroy(NULL);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("metrics");
    TCase *tc = tcase_create("metrics");

    tcase_add_test(tc, test_delivered_by_plugin_table_op);
    tcase_add_test(tc, test_histogram_and_counters);
    tcase_add_test(tc, test_positions_and_state);
    tcase_add_test(tc, test_null_does_nothing);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? 0 : 1;
}
