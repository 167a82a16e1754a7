/* kafkamock: the kafka plugin's tests' mock cluster; see kafkamock.h. */
#include "kafkamock.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define ANSWER_MAX 1024

static void run_mock(int in, int out, int brokers)
{
    itest_path program = itest_root_file("build/tests/kafka/mockkafka");
    char count[16];

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
        _exit(126);
    snprintf(count, sizeof count, "%d", brokers);
    execl(program.s, program.s, count, (char *)NULL);
    dprintf(2, "kafkamock: cannot run %s: %s\n", program.s, strerror(errno));
    _exit(127);
}

static void read_answer(kafka_mock *mock, char *answer, size_t size)
{
    ck_assert_msg(fgets(answer, (int)size, mock->out) != NULL, "the mock cluster ended");
    answer[strcspn(answer, "\n")] = '\0';
}

void kafka_mock_start(kafka_mock *mock, int brokers)
{
    int to_mock[2], from_mock[2];
    char answer[ANSWER_MAX];

    memset(mock, 0, sizeof *mock);
    ck_assert_int_eq(pipe(to_mock), 0);
    ck_assert_int_eq(pipe(from_mock), 0);
    mock->pid = itest_fork();
    if (mock->pid == 0) {
        close(to_mock[1]);
        close(from_mock[0]);
        run_mock(to_mock[0], from_mock[1], brokers);
    }
    close(to_mock[0]);
    close(from_mock[1]);
    mock->in = fdopen(to_mock[1], "w");
    mock->out = fdopen(from_mock[0], "r");
    ck_assert_msg(mock->in != NULL && mock->out != NULL, "fdopen: %s", strerror(errno));
    read_answer(mock, answer, sizeof answer);
    ck_assert_msg(strncmp(answer, "bootstrap ", 10) == 0, "the mock cluster said \"%s\"", answer);
    snprintf(mock->bootstrap, sizeof mock->bootstrap, "%.500s", answer + 10);
}

void kafka_mock_stop(kafka_mock *mock)
{
    if (mock->pid <= 0)
        return;
    fclose(mock->in);
    fclose(mock->out);
    kill(mock->pid, SIGKILL);
    waitpid(mock->pid, NULL, 0);
    mock->pid = 0;
}

static void ask(kafka_mock *mock, char *answer, size_t size, const char *format, va_list ap)
{
    vfprintf(mock->in, format, ap);
    fputc('\n', mock->in);
    fflush(mock->in);
    read_answer(mock, answer, size);
}

void kafka_mock_command(kafka_mock *mock, const char *format, ...)
{
    char answer[ANSWER_MAX];
    va_list ap;

    va_start(ap, format);
    ask(mock, answer, sizeof answer, format, ap);
    va_end(ap);
    ck_assert_msg(strncmp(answer, "ok", 2) == 0, "the mock cluster answered \"%s\"", answer);
}

static void ask_fixed(kafka_mock *mock, char *answer, size_t size, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static void ask_fixed(kafka_mock *mock, char *answer, size_t size, const char *format, ...)
{
    va_list ap;

    va_start(ap, format);
    ask(mock, answer, size, format, ap);
    va_end(ap);
}

long kafka_mock_appended(kafka_mock *mock, const char *topic)
{
    char answer[ANSWER_MAX];
    long count = -1;

    ask_fixed(mock, answer, sizeof answer, "appended %s", topic);
    ck_assert_msg(sscanf(answer, "ok %ld", &count) == 1, "the mock cluster answered \"%s\"",
                  answer);
    return count;
}

static char *field(char **cursor)
{
    char *start = *cursor, *tab = strchr(start, '\t');

    if (tab != NULL) {
        *tab = '\0';
        *cursor = tab + 1;
    } else {
        *cursor = start + strlen(start);
    }
    return start;
}

static char *copy_or_null(const char *text)
{
    char *copy;

    if (strcmp(text, "-") == 0)
        return NULL;
    copy = strdup(text);
    ck_assert_msg(copy != NULL, "out of memory");
    return copy;
}

/* The "id" member of a JSON text: {"id":"7"} or a row's "values":{"id":"7",...}. */
static void find_id(const char *json, char *out, size_t outlen)
{
    const char *p = json != NULL ? strstr(json, "\"id\":\"") : NULL;
    size_t n;

    out[0] = '\0';
    if (p == NULL)
        return;
    p += 6;
    n = strcspn(p, "\"");
    snprintf(out, outlen, "%.*s", (int)n, p);
}

static void parse_record(kafka_record *r, char *line)
{
    char *cursor = line;

    r->partition = atoi(field(&cursor));
    r->offset = atoll(field(&cursor));
    r->key = copy_or_null(field(&cursor));
    r->value = copy_or_null(field(&cursor));
    r->headers = strdup(field(&cursor));
    find_id(r->value != NULL ? r->value : r->key, r->id, sizeof r->id);
}

kafka_records kafka_mock_dump(kafka_mock *mock, const itest_ctx *ctx, const char *topic)
{
    char name[300], answer[ANSWER_MAX];
    itest_path path;
    itest_lines lines;
    kafka_records out = {0};

    snprintf(name, sizeof name, "%s.dump", topic);
    path = itest_file(ctx, name);
    fprintf(mock->in, "dump %s %s\n", topic, path.s);
    fflush(mock->in);
    read_answer(mock, answer, sizeof answer);
    ck_assert_msg(strncmp(answer, "ok", 2) == 0, "dump %s: %s", topic, answer);
    lines = itest_read_lines(path.s);
    out.record = calloc(lines.count + 1, sizeof *out.record);
    ck_assert_msg(out.record != NULL, "out of memory");
    for (size_t i = 0; i < lines.count; i++)
        parse_record(&out.record[out.count++], lines.line[i]);
    itest_lines_free(&lines);
    return out;
}

void kafka_records_free(kafka_records *records)
{
    for (size_t i = 0; i < records->count; i++) {
        free(records->record[i].key);
        free(records->record[i].value);
        free(records->record[i].headers);
    }
    free(records->record);
    memset(records, 0, sizeof *records);
}

bool kafka_record_header(const kafka_record *r, const char *name, char *out, size_t outlen)
{
    size_t len = strlen(name);

    for (const char *p = r->headers; *p != '\0';) {
        const char *end = strchr(p, ';');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > len && strncmp(p, name, len) == 0 && p[len] == '=') {
            snprintf(out, outlen, "%.*s", (int)(n - len - 1), p + len + 1);
            return true;
        }
        p += n + (end != NULL);
    }
    return false;
}

typedef struct event_id {
    unsigned long long position;
    unsigned long long ordinal;
} event_id;

static event_id record_id(const kafka_record *r)
{
    char text[32];
    event_id id = {0, 0};

    ck_assert_msg(kafka_record_header(r, "walnotify.position", text, sizeof text),
                  "partition %d offset %lld has no walnotify.position header", r->partition,
                  r->offset);
    id.position = strtoull(text, NULL, 10);
    ck_assert_msg(kafka_record_header(r, "walnotify.ordinal", text, sizeof text),
                  "partition %d offset %lld has no walnotify.ordinal header", r->partition,
                  r->offset);
    id.ordinal = strtoull(text, NULL, 10);
    return id;
}

static int id_cmp(event_id a, event_id b)
{
    if (a.position != b.position)
        return a.position < b.position ? -1 : 1;
    return a.ordinal < b.ordinal ? -1 : a.ordinal > b.ordinal;
}

/* Within one partition: a copy older than the newest seen is a redelivery (the same event and
 * op as an earlier copy), never a first copy out of order. */
static void check_partition_order(const kafka_records *records)
{
    size_t n = records->count;
    event_id *ids = calloc(n + 1, sizeof *ids);
    char(*ops)[16] = calloc(n + 1, sizeof *ops);
    event_id newest[64] = {{0, 0}};

    ck_assert_msg(ids != NULL && ops != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const kafka_record *r = &records->record[i];
        int p = r->partition;
        bool seen = false;

        ck_assert_msg(p >= 0 && p < 64, "partition %d", p);
        ids[i] = record_id(r);
        kafka_record_header(r, "walnotify.op", ops[i], sizeof ops[i]);
        if (id_cmp(ids[i], newest[p]) >= 0) {
            newest[p] = ids[i];
            continue;
        }
        for (size_t j = 0; j < i && !seen; j++)
            seen = records->record[j].partition == p && id_cmp(ids[j], ids[i]) == 0 &&
                   strcmp(ops[j], ops[i]) == 0;
        ck_assert_msg(seen,
                      "partition %d offset %lld: event %llu/%llu (%s) comes first after event "
                      "%llu/%llu",
                      p, r->offset, ids[i].position, ids[i].ordinal, ops[i], newest[p].position,
                      newest[p].ordinal);
    }
    free(ids);
    free(ops);
}

static bool tombstone_after(const kafka_records *records, size_t i)
{
    const kafka_record *d = &records->record[i];

    for (size_t j = i + 1; j < records->count; j++) {
        const kafka_record *t = &records->record[j];
        if (t->partition == d->partition && t->value == NULL && t->key != NULL && d->key != NULL &&
            strcmp(t->key, d->key) == 0)
            return true;
    }
    return false;
}

void kafka_check_promise(const kafka_records *records, long rows)
{
    char *inserted = calloc((size_t)rows + 1, 1);

    ck_assert_msg(inserted != NULL, "out of memory");
    for (size_t i = 0; i < records->count; i++) {
        const kafka_record *r = &records->record[i];
        char op[32] = "";
        long id = atol(r->id);
        kafka_record_header(r, "walnotify.op", op, sizeof op);
        if (strcmp(op, "insert") == 0 && id >= 1 && id <= rows)
            inserted[id] = 1;
        if (strcmp(op, "delete") == 0)
            ck_assert_msg(tombstone_after(records, i),
                          "the delete of row %s (partition %d offset %lld) has no tombstone "
                          "after it",
                          r->id, r->partition, r->offset);
    }
    for (long id = 1; id <= rows; id++)
        ck_assert_msg(inserted[id], "the insert of row %ld is not in Kafka (%zu messages)", id,
                      records->count);
    free(inserted);
    check_partition_order(records);
}
