/*
 * apply: the target's tables and the statements that apply changes to them; see apply.h.
 */
#include "apply.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pgsink_stmt {
    pgsink_stmt *next;
    char *signature; /* the operation and the columns, e.g. "U:1,2|0" */
    char name[32];
};

#define PARAMS_MAX 1600   /* a table's columns at most (PostgreSQL allows 1600) */
#define GROUP_ROWS 1000   /* inserts in one statement at most (insert_rows) */
#define GROUP_PARAMS 8192 /* and their values at most */

/* Inserts into one table with the same columns, waiting to go as one statement. */
struct pgsink_group {
    int table;
    char *signature; /* of one row's statement */
    size_t ncols;
    int cols[PARAMS_MAX];
    size_t rows;
    size_t most; /* rows one statement takes */
    const char *values[GROUP_PARAMS];
    int lengths[GROUP_PARAMS];
    pgsink_entry entries[GROUP_ROWS];
};

/* ---- loading ----------------------------------------------------------------------------------
 */

static char *quoted(PGconn *conn, const char *name)
{
    char *q = PQescapeIdentifier(conn, name, strlen(name));
    char *copy = q != NULL ? strdup(q) : NULL;

    PQfreemem(q);
    return copy;
}

static int find_column(const pgsink_apply_table *tt, const char *name, size_t length)
{
    for (size_t i = 0; i < tt->ncolumns; i++)
        if (strlen(tt->names[i]) == length && strncmp(tt->names[i], name, length) == 0)
            return (int)i;
    return -1;
}

/* The target column a source column of the table goes to: the mapped one, or the same name. */
static int target_column(const pgsink_apply_table *tt, const walnotify_host *host, const char *name,
                         bool *mapped)
{
    size_t length = 0;
    const char *target = pgsink_settings_mapped(host, tt->source->table, name, &length);

    *mapped = target != NULL;
    if (target == NULL)
        return find_column(tt, name, strlen(name));
    return find_column(tt, target, length);
}

static bool read_columns(pgsink_apply_table *tt, PGresult *res)
{
    int rows = PQntuples(res);

    tt->columns = calloc((size_t)rows + 1, sizeof *tt->columns);
    tt->names = calloc((size_t)rows + 1, sizeof *tt->names);
    if (tt->columns == NULL || tt->names == NULL)
        return false;
    for (int i = 0; i < rows; i++) {
        if (PQgetisnull(res, i, 1))
            continue;
        tt->names[tt->ncolumns] = strdup(PQgetvalue(res, i, 1));
        tt->columns[tt->ncolumns] = strdup(PQgetvalue(res, i, 2));
        if (tt->names[tt->ncolumns] == NULL || tt->columns[tt->ncolumns] == NULL)
            return false;
        tt->ncolumns++;
    }
    return true;
}

/* Every key column and every mapped column must have its target column. */
static bool check_columns(pgsink_apply_table *tt, const walnotify_host *host)
{
    const walnotify_table *src = tt->source;
    bool ok = true;

    tt->key = calloc(src->nkey_columns + 1, sizeof *tt->key);
    tt->by_position = calloc(src->ncolumns + 1, sizeof *tt->by_position);
    if (tt->key == NULL || tt->by_position == NULL)
        return false;
    for (size_t i = 0; i < src->ncolumns; i++) {
        bool mapped;
        int col = target_column(tt, host, src->columns[i].name, &mapped);

        tt->by_position[i] = col;
        if (col < 0 && mapped) {
            size_t length = 0;
            const char *name =
                pgsink_settings_mapped(host, src->table, src->columns[i].name, &length);
            host->log(host, WALNOTIFY_LOG_ERROR,
                      "column_map maps %s.%s to %.*s, which target table %s does not have",
                      src->table, src->columns[i].name, (int)length, name, tt->target_text);
            ok = false;
        }
    }
    for (size_t k = 0; k < src->nkey_columns; k++) {
        const char *name = src->columns[src->key_columns[k]].name;
        bool mapped;
        int col = target_column(tt, host, name, &mapped);

        if (col < 0) {
            host->log(host, WALNOTIFY_LOG_ERROR,
                      "key column %s of source table %s has no column in target table %s "
                      "(map it with column_map)",
                      name, src->table, tt->target_text);
            ok = false;
        }
        tt->key[k] = col;
    }
    tt->nkey = src->nkey_columns;
    return ok;
}

static const char columns_sql[] =
    "SELECT c.oid IS NOT NULL, a.attname, quote_ident(a.attname) "
    "FROM (SELECT to_regclass(format('%I.%I', $1::text, $2::text)) AS oid) c "
    "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "AND a.attgenerated = '' ORDER BY a.attnum";

static bool load_table(pgsink_apply_table *tt, const walnotify_host *host, const pgsink_settings *s,
                       pgsink_target *t, bool *transient)
{
    const walnotify_table *src = tt->source;
    const char *schema = s->schema != NULL ? s->schema : src->schema;
    const char *params[2] = {schema, src->name};
    char why[256];
    char *qs = quoted(t->conn, schema), *qn = quoted(t->conn, src->name);
    PGresult *res;
    bool ok;

    tt->target_text = malloc(strlen(schema) + strlen(src->name) + 2);
    tt->target = qs != NULL && qn != NULL ? malloc(strlen(qs) + strlen(qn) + 2) : NULL;
    if (tt->target == NULL || tt->target_text == NULL) {
        free(qs);
        free(qn);
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return false;
    }
    sprintf(tt->target, "%s.%s", qs, qn);
    sprintf(tt->target_text, "%s.%s", schema, src->name);
    free(qs);
    free(qn);
    res = pgsink_target_query(t, columns_sql, 2, params, why, sizeof why);
    if (res == NULL) {
        *transient = PQstatus(t->conn) != CONNECTION_OK;
        host->log(host, WALNOTIFY_LOG_ERROR, "cannot read the columns of target table %s: %s",
                  tt->target_text, why);
        return false;
    }
    if (PQntuples(res) < 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        host->log(host, WALNOTIFY_LOG_ERROR,
                  "source table %s has no target table %s: create it (the columns to write, the "
                  "key %s has)",
                  src->table, tt->target_text, src->table);
        PQclear(res);
        return false;
    }
    ok = read_columns(tt, res);
    PQclear(res);
    if (!ok) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return false;
    }
    return check_columns(tt, host);
}

bool pgsink_apply_load(pgsink_apply *a, const walnotify_host *host, const pgsink_settings *s,
                       pgsink_target *t, bool *transient)
{
    bool ok = true;

    pgsink_apply_free(a);
    *transient = false;
    a->upsert = s->upsert;
    a->insert_rows = s->insert_rows;
    a->ntables = host->table_count(host);
    a->tables = calloc(a->ntables + 1, sizeof *a->tables);
    if (a->tables == NULL) {
        host->log(host, WALNOTIFY_LOG_ERROR, "out of memory");
        return false;
    }
    for (size_t i = 0; i < a->ntables; i++) {
        a->tables[i].source = host->table(host, i);
        ok = load_table(&a->tables[i], host, s, t, transient) && ok;
        if (*transient)
            return false;
    }
    return ok;
}

void pgsink_apply_forget(pgsink_apply *a)
{
    for (size_t i = 0; i < a->ntables; i++) {
        pgsink_stmt *next;

        for (pgsink_stmt *st = a->tables[i].stmts; st != NULL; st = next) {
            next = st->next;
            free(st->signature);
            free(st);
        }
        a->tables[i].stmts = NULL;
    }
}

void pgsink_apply_free(pgsink_apply *a)
{
    pgsink_apply_forget(a);
    for (size_t i = 0; i < a->ntables; i++) {
        pgsink_apply_table *tt = &a->tables[i];

        for (size_t c = 0; c < tt->ncolumns; c++) {
            free(tt->columns[c]);
            free(tt->names[c]);
        }
        free(tt->columns);
        free(tt->names);
        free(tt->key);
        free(tt->by_position);
        free(tt->target);
        free(tt->target_text);
    }
    free(a->tables);
    if (a->group != NULL)
        free(a->group->signature);
    free(a->group);
    free(a->plan);
    free(a->sql);
    memset(a, 0, sizeof *a);
}

int pgsink_apply_column(const pgsink_apply *a, const walnotify_host *host, int table,
                        size_t position, const char *name)
{
    const pgsink_apply_table *tt;
    bool mapped;

    if (table < 0 || (size_t)table >= a->ntables)
        return -1;
    tt = &a->tables[table];
    /* The columns as at init, in the same order: the usual case, without a search. */
    if (position < tt->source->ncolumns && strcmp(tt->source->columns[position].name, name) == 0)
        return tt->by_position[position];
    return target_column(tt, host, name, &mapped);
}

/* ---- statements ------------------------------------------------------------------------------ */

/* Appends to a->sql; false when out of memory. */
static bool put(pgsink_apply *a, size_t *len, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static bool put(pgsink_apply *a, size_t *len, const char *format, ...)
{
    va_list args;
    int n;

    for (;;) {
        va_start(args, format);
        n = vsnprintf(a->sql != NULL ? a->sql + *len : NULL, a->sql != NULL ? a->sql_cap - *len : 0,
                      format, args);
        va_end(args);
        if (n < 0)
            return false;
        if (a->sql != NULL && *len + (size_t)n < a->sql_cap)
            break;
        size_t cap = a->sql_cap > 0 ? a->sql_cap * 2 : 4096;
        while (cap <= *len + (size_t)n)
            cap *= 2;
        char *sql = realloc(a->sql, cap);
        if (sql == NULL)
            return false;
        a->sql = sql;
        a->sql_cap = cap;
    }
    *len += (size_t)n;
    return true;
}

/* What one change's statement needs: the columns it sets and the ones it matches, and the
 * parameters in their order. */
struct pgsink_plan {
    int set[PARAMS_MAX];
    size_t nset;
    int where[PARAMS_MAX]; /* target columns; matched with IS NULL when where_null */
    bool where_null[PARAMS_MAX];
    size_t nwhere;
    bool full; /* no key: every column of the old row matched, one row */
    const char *values[2 * PARAMS_MAX];
    int lengths[2 * PARAMS_MAX];
    int nparams;
};
typedef struct pgsink_plan plan;

static void add_param(plan *p, const pgsink_record *rec, size_t cell)
{
    p->values[p->nparams] = pgsink_cell_text(rec, cell);
    p->lengths[p->nparams] = rec->cells[cell].length > 0 ? rec->cells[cell].length : 0;
    p->nparams++;
}

static void plan_set(plan *p, const pgsink_record *rec)
{
    for (size_t i = 0; i < rec->nnew && p->nset < PARAMS_MAX; i++) {
        if (rec->cells[i].column < 0 || rec->cells[i].length == PGSINK_UNCHANGED)
            continue;
        p->set[p->nset++] = rec->cells[i].column;
        add_param(p, rec, i);
    }
}

/* The cell of the old values (or, without them, of the new) that holds target column col. */
static long find_cell(const pgsink_record *rec, int col)
{
    size_t first = rec->nold > 0 ? rec->nnew : 0;
    size_t end = rec->nold > 0 ? rec->nnew + rec->nold : rec->nnew;

    for (size_t i = first; i < end; i++)
        if (rec->cells[i].column == col)
            return (long)i;
    return -1;
}

/* The row to change: by its key, or by every old column without one. */
static bool plan_where(plan *p, const pgsink_apply_table *tt, const pgsink_record *rec)
{
    if (tt->nkey > 0) {
        for (size_t k = 0; k < tt->nkey; k++) {
            long cell = find_cell(rec, tt->key[k]);
            if (cell < 0 || rec->cells[cell].length == PGSINK_UNCHANGED)
                return false;
            p->where[p->nwhere] = tt->key[k];
            p->where_null[p->nwhere++] = rec->cells[cell].length == PGSINK_NULL;
            if (rec->cells[cell].length != PGSINK_NULL)
                add_param(p, rec, (size_t)cell);
        }
        return true;
    }
    p->full = true;
    for (size_t i = rec->nnew; i < rec->nnew + rec->nold && p->nwhere < PARAMS_MAX; i++) {
        if (rec->cells[i].column < 0 || rec->cells[i].length == PGSINK_UNCHANGED)
            continue;
        p->where[p->nwhere] = rec->cells[i].column;
        p->where_null[p->nwhere++] = rec->cells[i].length == PGSINK_NULL;
        if (rec->cells[i].length != PGSINK_NULL)
            add_param(p, rec, i);
    }
    return p->nwhere > 0;
}

static bool put_signature(pgsink_apply *a, size_t *len, const plan *p, char op)
{
    bool ok = put(a, len, "%c%s:", op, p->full ? "F" : "");

    for (size_t i = 0; i < p->nset && ok; i++)
        ok = put(a, len, "%d,", p->set[i]);
    ok = ok && put(a, len, "|");
    for (size_t i = 0; i < p->nwhere && ok; i++)
        ok = put(a, len, "%d%s,", p->where[i], p->where_null[i] ? "n" : "");
    return ok;
}

static bool put_where(pgsink_apply *a, size_t *len, const pgsink_apply_table *tt, const plan *p,
                      int param)
{
    bool ok =
        put(a, len, p->full ? " WHERE ctid = (SELECT ctid FROM %s WHERE " : " WHERE ", tt->target);

    for (size_t i = 0; i < p->nwhere && ok; i++) {
        const char *and = i > 0 ? " AND " : "";
        if (p->where_null[i])
            ok = put(a, len, "%s%s IS NULL", and, tt->columns[p->where[i]]);
        else
            ok = put(a, len, "%s%s = $%d", and, tt->columns[p->where[i]], param++);
    }
    return ok && (!p->full || put(a, len, " LIMIT 1)"));
}

static bool put_insert(pgsink_apply *a, size_t *len, const pgsink_apply_table *tt, const plan *p,
                       bool upsert)
{
    bool ok = put(a, len, "INSERT INTO %s (", tt->target);
    size_t updated = 0;

    for (size_t i = 0; i < p->nset && ok; i++)
        ok = put(a, len, "%s%s", i > 0 ? ", " : "", tt->columns[p->set[i]]);
    ok = ok && put(a, len, ") VALUES (");
    for (size_t i = 0; i < p->nset && ok; i++)
        ok = put(a, len, "%s$%zu", i > 0 ? ", " : "", i + 1);
    ok = ok && put(a, len, ")");
    if (!upsert || tt->nkey == 0 || !ok)
        return ok;
    ok = put(a, len, " ON CONFLICT (");
    for (size_t k = 0; k < tt->nkey && ok; k++)
        ok = put(a, len, "%s%s", k > 0 ? ", " : "", tt->columns[tt->key[k]]);
    ok = ok && put(a, len, ") DO UPDATE SET ");
    for (size_t i = 0; i < p->nset && ok; i++) {
        bool is_key = false;
        for (size_t k = 0; k < tt->nkey; k++)
            is_key = is_key || tt->key[k] == p->set[i];
        if (is_key)
            continue;
        ok = put(a, len, "%s%s = EXCLUDED.%s", updated++ > 0 ? ", " : "", tt->columns[p->set[i]],
                 tt->columns[p->set[i]]);
    }
    /* Only key columns: the row is there, nothing to change (DO UPDATE needs a column). */
    if (ok && updated == 0)
        ok = put(a, len, "%s = EXCLUDED.%s", tt->columns[tt->key[0]], tt->columns[tt->key[0]]);
    return ok;
}

static bool put_update(pgsink_apply *a, size_t *len, const pgsink_apply_table *tt, const plan *p)
{
    bool ok = put(a, len, "UPDATE %s SET ", tt->target);

    for (size_t i = 0; i < p->nset && ok; i++)
        ok = put(a, len, "%s%s = $%zu", i > 0 ? ", " : "", tt->columns[p->set[i]], i + 1);
    return ok && put_where(a, len, tt, p, (int)p->nset + 1);
}

static bool put_delete(pgsink_apply *a, size_t *len, const pgsink_apply_table *tt, const plan *p)
{
    return put(a, len, "DELETE FROM %s", tt->target) && put_where(a, len, tt, p, 1);
}

/* The record's plan and operation letter; false (failure set) when it cannot be applied. */
static bool make_plan(pgsink_apply *a, const pgsink_apply_table *tt, const pgsink_record *rec,
                      plan *p, char *op)
{
    memset(p, 0, offsetof(plan, values));
    p->nparams = 0;
    switch (rec->op) {
    case WALNOTIFY_OP_INSERT:
    case WALNOTIFY_OP_SNAPSHOT:
        plan_set(p, rec);
        *op = rec->op == WALNOTIFY_OP_SNAPSHOT || a->upsert ? 'S' : 'I';
        return p->nset > 0;
    case WALNOTIFY_OP_UPDATE:
        plan_set(p, rec);
        *op = 'U';
        return p->nset > 0 && plan_where(p, tt, rec);
    case WALNOTIFY_OP_DELETE:
        *op = 'D';
        return plan_where(p, tt, rec);
    default:
        return false;
    }
}

static pgsink_stmt *find_stmt(pgsink_apply_table *tt, const char *signature)
{
    for (pgsink_stmt *st = tt->stmts; st != NULL; st = st->next)
        if (strcmp(st->signature, signature) == 0)
            return st;
    return NULL;
}

/* The statement of the plan, prepared in the pipeline if new. */
static pgsink_stmt *statement(pgsink_apply *a, pgsink_target *t, const pgsink_entry *entry,
                              int table, const plan *p, char op)
{
    pgsink_apply_table *tt = &a->tables[table];
    size_t len = 0;
    pgsink_stmt *st;
    bool ok;

    if (!put_signature(a, &len, p, op))
        return NULL;
    st = find_stmt(tt, a->sql);
    if (st != NULL)
        return st;
    st = calloc(1, sizeof *st);
    if (st == NULL || (st->signature = strdup(a->sql)) == NULL) {
        free(st);
        return NULL;
    }
    snprintf(st->name, sizeof st->name, "wn_%d_%u", table, tt->nstmts++);
    st->next = tt->stmts;
    tt->stmts = st;
    len = 0;
    if (op == 'I' || op == 'S')
        ok = put_insert(a, &len, tt, p, op == 'S');
    else if (op == 'U')
        ok = put_update(a, &len, tt, p);
    else
        ok = put_delete(a, &len, tt, p);
    if (!ok || !pgsink_target_prepare(t, entry, st->name, a->sql))
        return NULL;
    return st;
}

static bool refuse(pgsink_target *t, const pgsink_entry *entry, const char *message)
{
    if (!t->failure.set) {
        t->failure.set = true;
        t->failure.transient = false;
        t->failure.entry = *entry;
        snprintf(t->failure.sqlstate, sizeof t->failure.sqlstate, "XX000");
        snprintf(t->failure.message, sizeof t->failure.message, "%s", message);
    }
    return false;
}

static bool send_truncate(pgsink_apply *a, pgsink_target *t, const pgsink_record *rec,
                          const pgsink_entry *entry)
{
    size_t len = 0;

    if (!put(a, &len, "TRUNCATE ONLY %s%s%s", a->tables[rec->table].target,
             rec->truncate_options & WALNOTIFY_TRUNCATE_RESTART_IDENTITY ? " RESTART IDENTITY" : "",
             rec->truncate_options & WALNOTIFY_TRUNCATE_CASCADE ? " CASCADE" : ""))
        return refuse(t, entry, "out of memory");
    return pgsink_target_send(t, entry, NULL, a->sql, 0, NULL, NULL);
}

/* The statement of `rows` rows of the group, prepared if new. */
static pgsink_stmt *group_statement(pgsink_apply *a, pgsink_target *t, const pgsink_group *g)
{
    pgsink_apply_table *tt = &a->tables[g->table];
    size_t len = 0;
    pgsink_stmt *st;
    bool ok;

    if (!put(a, &len, "G%zu:%s", g->rows, g->signature))
        return NULL;
    st = find_stmt(tt, a->sql);
    if (st != NULL)
        return st;
    st = calloc(1, sizeof *st);
    if (st == NULL || (st->signature = strdup(a->sql)) == NULL) {
        free(st);
        return NULL;
    }
    snprintf(st->name, sizeof st->name, "wn_%d_%u", g->table, tt->nstmts++);
    st->next = tt->stmts;
    tt->stmts = st;
    len = 0;
    ok = put(a, &len, "INSERT INTO %s (", tt->target);
    for (size_t i = 0; i < g->ncols && ok; i++)
        ok = put(a, &len, "%s%s", i > 0 ? ", " : "", tt->columns[g->cols[i]]);
    ok = ok && put(a, &len, ") VALUES ");
    for (size_t r = 0; r < g->rows && ok; r++) {
        ok = put(a, &len, "%s(", r > 0 ? ", " : "");
        for (size_t i = 0; i < g->ncols && ok; i++)
            ok = put(a, &len, "%s$%zu", i > 0 ? ", " : "", r * g->ncols + i + 1);
        ok = ok && put(a, &len, ")");
    }
    if (!ok || !pgsink_target_prepare(t, &g->entries[0], st->name, a->sql))
        return NULL;
    return st;
}

/* One row of the group as a statement of its own. */
static bool send_one(pgsink_apply *a, pgsink_target *t, const pgsink_group *g, size_t row)
{
    plan *p = a->plan;
    pgsink_stmt *st;

    memset(p, 0, offsetof(plan, values));
    p->nset = g->ncols;
    memcpy(p->set, g->cols, g->ncols * sizeof *g->cols);
    p->nparams = (int)g->ncols;
    memcpy(p->values, g->values + row * g->ncols, g->ncols * sizeof *p->values);
    memcpy(p->lengths, g->lengths + row * g->ncols, g->ncols * sizeof *p->lengths);
    st = statement(a, t, &g->entries[row], g->table, p, 'I');
    if (st == NULL)
        return t->failure.set ? false : refuse(t, &g->entries[row], "out of memory");
    return pgsink_target_send(t, &g->entries[row], st->name, NULL, p->nparams, p->values,
                              p->lengths);
}

bool pgsink_apply_flush(pgsink_apply *a, pgsink_target *t)
{
    pgsink_group *g = a->group;
    pgsink_entry entry;
    pgsink_stmt *st;
    bool ok = true;

    if (g == NULL || g->rows == 0)
        return true;
    if (g->rows < g->most) {
        /* A short group: its rows alone, not one more statement to prepare per length. */
        for (size_t r = 0; r < g->rows && ok; r++)
            ok = send_one(a, t, g, r);
        g->rows = 0;
        return ok;
    }
    entry = g->entries[0];
    entry.group = true;
    entry.last = g->entries[g->rows - 1].id;
    entry.key[0] = '\0';
    st = group_statement(a, t, g);
    ok = st != NULL ? pgsink_target_send(t, &entry, st->name, NULL, (int)(g->rows * g->ncols),
                                         g->values, g->lengths)
                    : (t->failure.set ? false : refuse(t, &entry, "out of memory"));
    g->rows = 0;
    return ok;
}

void pgsink_apply_drop(pgsink_apply *a)
{
    if (a->group != NULL)
        a->group->rows = 0;
}

/* Adds an insert to the group (sending the group when it is another table's, or full). */
static bool gather(pgsink_apply *a, pgsink_target *t, const pgsink_record *rec,
                   const pgsink_entry *entry, const plan *p)
{
    pgsink_group *g = a->group;
    size_t len = 0;

    if (!put_signature(a, &len, p, 'I'))
        return refuse(t, entry, "out of memory");
    if (g->rows > 0 && (g->table != rec->table || strcmp(g->signature, a->sql) != 0) &&
        !pgsink_apply_flush(a, t))
        return false;
    if (g->rows == 0) {
        char *signature = strdup(a->sql);
        if (signature == NULL)
            return refuse(t, entry, "out of memory");
        free(g->signature);
        g->signature = signature;
        g->table = rec->table;
        g->ncols = p->nset;
        memcpy(g->cols, p->set, p->nset * sizeof *p->set);
        g->most = GROUP_PARAMS / p->nset < a->insert_rows ? GROUP_PARAMS / p->nset : a->insert_rows;
    }
    memcpy(g->values + g->rows * g->ncols, p->values, g->ncols * sizeof *p->values);
    memcpy(g->lengths + g->rows * g->ncols, p->lengths, g->ncols * sizeof *p->lengths);
    g->entries[g->rows++] = *entry;
    return g->rows < g->most || pgsink_apply_flush(a, t);
}

bool pgsink_apply_send(pgsink_apply *a, pgsink_target *t, const pgsink_record *rec,
                       const pgsink_entry *entry)
{
    pgsink_stmt *st;
    char op;

    if (rec->table < 0 || (size_t)rec->table >= a->ntables)
        return true; /* a snapshot marker, a message: nothing to apply */
    if (a->plan == NULL && (a->plan = malloc(sizeof *a->plan)) == NULL)
        return refuse(t, entry, "out of memory");
    if (a->group == NULL && (a->group = calloc(1, sizeof *a->group)) == NULL)
        return refuse(t, entry, "out of memory");
    if (rec->op == WALNOTIFY_OP_TRUNCATE)
        return pgsink_apply_flush(a, t) && send_truncate(a, t, rec, entry);
    if (!make_plan(a, &a->tables[rec->table], rec, a->plan, &op))
        return refuse(t, entry,
                      rec->op == WALNOTIFY_OP_INSERT || rec->op == WALNOTIFY_OP_SNAPSHOT
                          ? "no column of the row goes to the target table"
                          : "the row's key is not known (no key column value was sent)");
    if (op == 'I' && !a->careful && a->insert_rows > 1 && a->plan->nset * 2 <= GROUP_PARAMS)
        return gather(a, t, rec, entry, a->plan);
    if (!pgsink_apply_flush(a, t))
        return false;
    st = statement(a, t, entry, rec->table, a->plan, op);
    if (st == NULL)
        return t->failure.set ? false : refuse(t, entry, "out of memory");
    return pgsink_target_send(t, entry, st->name, NULL, a->plan->nparams, a->plan->values,
                              a->plan->lengths);
}
