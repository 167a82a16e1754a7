/*
 * settings: reading and checking the postgres plugin's settings. Nothing here opens a
 * connection: `check` runs it under --check-config.
 */
#include "settings.h"

#include <stdint.h>
#include <string.h>

#define BUFFER_MIN_BYTES (64LL * 1024)
#define BUFFER_MAX_BYTES (1024LL * 1024 * 1024)
#define INSERT_ROWS_MAX 1000

const walnotify_setting pgsink_declared[] = {
    {.name = "conninfo",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = NULL,
     .description = "the target database: libpq keywords or URI (passwords from ~/.pgpass or "
                    "PGPASSFILE)"},
    {.name = "mode",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "apply",
     .description = "\"apply\": each change applied to the table of the same name; \"append\": "
                    "each event one row of `table`"},
    {.name = "schema",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "",
     .description = "apply: the target schema (default: each source table's own)"},
    {.name = "table",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "walnotify_events",
     .description = "append: the table every event goes to (created if missing)"},
    {.name = "column_map",
     .type = WALNOTIFY_SETTING_LIST,
     .default_value = "",
     .description = "apply: renamed columns, each \"schema.table.column=target_column\""},
    {.name = "on_conflict",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "error",
     .description = "apply: an insert whose key exists: \"error\" or \"update\" (an upsert)"},
    {.name = "progress_table",
     .type = WALNOTIFY_SETTING_STRING,
     .default_value = "walnotify_progress",
     .description = "the table holding the sink's progress row, committed with the rows"},
    {.name = "max_buffer_bytes",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "4194304",
     .description = "the open source transaction held back before it is written into a target "
                    "transaction of its own (65536 to 1073741824)"},
    {.name = "insert_rows",
     .type = WALNOTIFY_SETTING_INTEGER,
     .default_value = "100",
     .description = "apply: consecutive inserts into one table gathered into one statement (1 to "
                    "1000; 1: one row per statement)"},
    {.name = NULL},
};

static bool has_control(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

static bool read_conninfo(const walnotify_host *host, pgsink_settings *out)
{
    const char *conninfo = host->get_string(host, "conninfo");

    if (conninfo == NULL || conninfo[0] == '\0') {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting conninfo is required (libpq keywords or a postgresql:// URI)");
        return false;
    }
    out->conninfo = conninfo;
    return true;
}

static bool read_mode(const walnotify_host *host, pgsink_settings *out)
{
    const char *mode = host->get_string(host, "mode");
    const char *conflict = host->get_string(host, "on_conflict");
    bool ok = true;

    if (mode != NULL && strcmp(mode, "apply") == 0)
        out->mode = PGSINK_MODE_APPLY;
    else if (mode != NULL && strcmp(mode, "append") == 0)
        out->mode = PGSINK_MODE_APPEND;
    else {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting mode is \"%s\": expected \"apply\" or \"append\"",
                  mode != NULL ? mode : "");
        ok = false;
    }
    if (conflict != NULL && strcmp(conflict, "update") == 0)
        out->upsert = true;
    else if (conflict == NULL || strcmp(conflict, "error") != 0) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting on_conflict is \"%s\": expected \"error\" or \"update\"",
                  conflict != NULL ? conflict : "");
        ok = false;
    }
    return ok;
}

/* A table name: "name" or "schema.name", SQL identifiers without quotes. */
static bool valid_name(const char *name, bool dotted)
{
    size_t dots = 0;

    if (name == NULL || name[0] == '\0' || name[0] == '.' || has_control(name) ||
        strchr(name, '"') != NULL || name[strlen(name) - 1] == '.')
        return false;
    for (const char *p = name; *p != '\0'; p++)
        dots += *p == '.';
    return dots <= (dotted ? 1u : 0u);
}

static bool read_names(const walnotify_host *host, pgsink_settings *out)
{
    const char *schema = host->get_string(host, "schema");
    bool ok = true;

    out->schema = schema != NULL && schema[0] != '\0' ? schema : NULL;
    out->table = host->get_string(host, "table");
    out->progress_table = host->get_string(host, "progress_table");
    if (out->schema != NULL && !valid_name(out->schema, false)) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting schema is \"%s\": expected a schema name without dots or quotes",
                  out->schema);
        ok = false;
    }
    if (!valid_name(out->table, true)) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting table is \"%s\": expected \"name\" or \"schema.name\"",
                  out->table != NULL ? out->table : "");
        ok = false;
    }
    if (!valid_name(out->progress_table, true)) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting progress_table is \"%s\": expected \"name\" or \"schema.name\"",
                  out->progress_table != NULL ? out->progress_table : "");
        ok = false;
    }
    return ok;
}

/* One "schema.table.column=target" (or "table.column=target") item. */
static bool check_map_item(const walnotify_host *host, size_t index, const char *item)
{
    const char *eq = item != NULL ? strchr(item, '=') : NULL;
    const char *dot = eq != NULL ? memrchr(item, '.', (size_t)(eq - item)) : NULL;

    if (eq == NULL || dot == NULL || dot == item || dot + 1 == eq || eq[1] == '\0' ||
        strchr(eq + 1, '=') != NULL || has_control(item) || strchr(item, '"') != NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting column_map, item %zu (\"%s\"): expected "
                  "\"schema.table.column=target_column\"",
                  index + 1, item != NULL ? item : "");
        return false;
    }
    return true;
}

static bool read_map(const walnotify_host *host, pgsink_settings *out)
{
    bool ok = true;

    out->ncolumn_map = host->get_list_length(host, "column_map");
    for (size_t i = 0; i < out->ncolumn_map; i++)
        ok = check_map_item(host, i, host->get_list_item(host, "column_map", i)) && ok;
    return ok;
}

static bool read_numbers(const walnotify_host *host, pgsink_settings *out)
{
    int64_t buffer = host->get_integer(host, "max_buffer_bytes");
    int64_t rows;

    if (buffer < BUFFER_MIN_BYTES || buffer > BUFFER_MAX_BYTES) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "setting max_buffer_bytes is %lld: expected %lld to %lld", (long long)buffer,
                  BUFFER_MIN_BYTES, BUFFER_MAX_BYTES);
        return false;
    }
    out->max_buffer_bytes = (size_t)buffer;
    rows = host->get_integer(host, "insert_rows");
    if (rows < 1 || rows > INSERT_ROWS_MAX) {
        host->log(host, WALNOTIFY_LOG_ERROR, "setting insert_rows is %lld: expected 1 to %d",
                  (long long)rows, INSERT_ROWS_MAX);
        return false;
    }
    out->insert_rows = (size_t)rows;
    return true;
}

bool pgsink_settings_read(const walnotify_host *host, pgsink_settings *out)
{
    bool ok = true;

    memset(out, 0, sizeof *out);
    ok = read_conninfo(host, out) && ok;
    ok = read_mode(host, out) && ok;
    ok = read_names(host, out) && ok;
    ok = read_map(host, out) && ok;
    ok = read_numbers(host, out) && ok;
    return ok;
}

/* Whether item's part before its last dot (before '=') names table: "schema.name", or "name"
 * for a table of public. */
static bool names_table(const char *item, size_t table_len, const char *table)
{
    if (strlen(table) == table_len && strncmp(item, table, table_len) == 0)
        return true;
    return strncmp(table, "public.", 7) == 0 && strlen(table + 7) == table_len &&
           strncmp(item, table + 7, table_len) == 0;
}

const char *pgsink_settings_mapped(const walnotify_host *host, const char *table,
                                   const char *column, size_t *length)
{
    size_t count = host->get_list_length(host, "column_map");

    for (size_t i = 0; i < count; i++) {
        const char *item = host->get_list_item(host, "column_map", i);
        const char *eq = strchr(item, '=');
        const char *dot = memrchr(item, '.', (size_t)(eq - item));
        size_t column_len = (size_t)(eq - dot - 1);

        if (!names_table(item, (size_t)(dot - item), table) || strlen(column) != column_len ||
            strncmp(dot + 1, column, column_len) != 0)
            continue;
        *length = strlen(eq + 1);
        return eq + 1;
    }
    return NULL;
}
