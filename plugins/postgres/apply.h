/*
 * apply: apply mode's tables. Each source table is matched at init with the table of the same
 * name in the target (in the `schema` setting, or the source's own), column by column through
 * the column map; each change becomes one prepared statement's execution, one statement per
 * table, operation and set of columns, prepared in the pipeline the first time it is needed.
 */
#ifndef PGSINK_APPLY_H
#define PGSINK_APPLY_H

#include "record.h"
#include "settings.h"
#include "target.h"

typedef struct pgsink_stmt pgsink_stmt;
typedef struct pgsink_plan pgsink_plan;
typedef struct pgsink_group pgsink_group;

typedef struct pgsink_apply_table {
    const walnotify_table *source; /* borrowed from the host */
    char *target;                  /* "schema"."name", quoted */
    char *target_text;             /* schema.name, for messages */
    size_t ncolumns;
    char **columns;   /* the target's column names, quoted */
    char **names;     /* and as they are */
    int *by_position; /* the source's columns at init, in order: their target column or -1 */
    size_t nkey;
    int *key; /* the source's key columns as target columns, in key order */
    pgsink_stmt *stmts;
    unsigned nstmts;
} pgsink_apply_table;

typedef struct pgsink_apply {
    size_t ntables; /* the host's tables, in its order */
    pgsink_apply_table *tables;
    bool upsert;
    size_t insert_rows;  /* inserts one statement carries, at most */
    pgsink_plan *plan;   /* scratch for one change's statement (large: kept off the stack) */
    pgsink_group *group; /* inserts into one table gathered for one statement of many rows */
    bool careful;        /* one row per statement: a statement of many rows was refused */
    char *sql;           /* scratch for a statement's text and signature */
    size_t sql_cap;
} pgsink_apply;

/* Matches every table of the host with the target's (connection outside the pipeline); logs
 * every problem (a missing table, key column or mapped column, naming both sides) and returns
 * false when there is one; *transient says whether it was the connection. */
bool pgsink_apply_load(pgsink_apply *a, const walnotify_host *host, const pgsink_settings *s,
                       pgsink_target *t, bool *transient);
void pgsink_apply_free(pgsink_apply *a);
/* The target column of an event's column (at position in the event's columns), -1 when the
 * target has none. */
int pgsink_apply_column(const pgsink_apply *a, const walnotify_host *host, int table,
                        size_t position, const char *name);
/* A new session: its prepared statements are gone. */
void pgsink_apply_forget(pgsink_apply *a);
/* Sends the record's statement (preparing it first if new); false when the connection failed
 * or the record cannot be applied (t->failure says why). Inserts into one table are gathered
 * and go as one statement of many rows: the record's values must stay where they are until
 * pgsink_apply_flush. */
bool pgsink_apply_send(pgsink_apply *a, pgsink_target *t, const pgsink_record *rec,
                       const pgsink_entry *entry);
/* Sends the inserts gathered; false as pgsink_apply_send. */
bool pgsink_apply_flush(pgsink_apply *a, pgsink_target *t);
/* Forgets the inserts gathered (their transaction is rolled back). */
void pgsink_apply_drop(pgsink_apply *a);

#endif
