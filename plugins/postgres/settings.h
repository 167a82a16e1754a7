/*
 * settings: the postgres plugin's settings, read and checked in one place, so that `check`
 * (--check-config, no side effects) and `init` refuse exactly the same configurations.
 */
#ifndef PGSINK_SETTINGS_H
#define PGSINK_SETTINGS_H

#include <walnotify/plugin.h>

#include <stdbool.h>
#include <stddef.h>

typedef enum pgsink_mode {
    PGSINK_MODE_APPLY = 0, /* each change applied to the table of the same name */
    PGSINK_MODE_APPEND = 1 /* each event one row of one table */
} pgsink_mode;

/* What the settings say. Every string is borrowed from the host (valid until shutdown). */
typedef struct pgsink_settings {
    const char *conninfo; /* libpq keywords or URI; may hold a password: never logged */
    pgsink_mode mode;
    const char *schema;         /* apply: the target schema; NULL: each table's own */
    const char *table;          /* append: "schema.name" or "name" */
    const char *progress_table; /* "schema.name" or "name" */
    bool upsert;                /* apply: on_conflict = "update" */
    size_t ncolumn_map;         /* items of column_map, each "table.column=target_column" */
    size_t max_buffer_bytes;    /* the open transaction held back, at most */
    size_t insert_rows;         /* apply: inserts one statement carries, at most */
} pgsink_settings;

/* The settings the plugin declares, ended by a member with name NULL. */
extern const walnotify_setting pgsink_declared[];

/* Reads and checks every setting; logs each problem at ERROR and returns false when there is
 * one. */
bool pgsink_settings_read(const walnotify_host *host, pgsink_settings *out);

/*
 * The target column of the source column `column` of the table "schema.name" (or "name" under
 * public) the column map renames, or NULL when it renames none. The text points into the
 * setting.
 */
const char *pgsink_settings_mapped(const walnotify_host *host, const char *table,
                                   const char *column, size_t *length);

#endif
