/* jline: a strict recursive-descent JSON reader, enough for one jsonl event per line. */
#include "jline.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JL_MAX_DEPTH 32

typedef struct jl_reader {
    const char *p;
    const char *end;
    char *err;
    size_t errlen;
    bool failed;
} jl_reader;

typedef struct jl_buf {
    char *data;
    size_t length;
    size_t capacity;
} jl_buf;

__attribute__((format(printf, 2, 3))) static void fail(jl_reader *r, const char *format, ...)
{
    va_list args;
    int n;

    if (r->failed)
        return;
    r->failed = true;
    va_start(args, format);
    n = vsnprintf(r->err, r->errlen, format, args);
    va_end(args);
    if (n >= 0 && (size_t)n < r->errlen)
        snprintf(r->err + n, r->errlen - (size_t)n, " (%zu bytes before the end)",
                 (size_t)(r->end - r->p));
}

static bool buf_put(jl_buf *b, const char *bytes, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 64;
        char *data;
        while (capacity < b->length + n + 1)
            capacity *= 2;
        data = realloc(b->data, capacity);
        if (data == NULL)
            return false;
        b->data = data;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    b->data[b->length] = '\0';
    return true;
}

static void skip_space(jl_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static jl_value *new_value(jl_kind kind)
{
    jl_value *v = calloc(1, sizeof *v);
    if (v != NULL)
        v->kind = kind;
    return v;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_length(const unsigned char *p, const unsigned char *end)
{
    size_t n;
    uint32_t cp;

    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;
        cp = p[0] & 0x1Fu;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;
        cp = p[0] & 0x0Fu;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool read_hex4(jl_reader *r, uint32_t *out)
{
    uint32_t v = 0;

    if (r->end - r->p < 4) {
        fail(r, "truncated \\u escape");
        return false;
    }
    for (int i = 0; i < 4; i++) {
        char c = *r->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else {
            fail(r, "bad hex digit in \\u escape");
            return false;
        }
    }
    *out = v;
    return true;
}

static bool read_unicode_escape(jl_reader *r, jl_buf *b)
{
    uint32_t cp, low;
    char utf8[4];

    if (!read_hex4(r, &cp))
        return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        fail(r, "lone low surrogate");
        return false;
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') {
            fail(r, "high surrogate without its low half");
            return false;
        }
        r->p += 2;
        if (!read_hex4(r, &low))
            return false;
        if (low < 0xDC00 || low > 0xDFFF) {
            fail(r, "high surrogate followed by something else");
            return false;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return buf_put(b, utf8, utf8_encode(cp, utf8));
}

static bool read_escape(jl_reader *r, jl_buf *b)
{
    char c, out;

    if (r->p >= r->end) {
        fail(r, "truncated escape");
        return false;
    }
    c = *r->p++;
    switch (c) {
    case '"': out = '"'; break;
    case '\\': out = '\\'; break;
    case '/': out = '/'; break;
    case 'b': out = '\b'; break;
    case 'f': out = '\f'; break;
    case 'n': out = '\n'; break;
    case 'r': out = '\r'; break;
    case 't': out = '\t'; break;
    case 'u': return read_unicode_escape(r, b);
    default:
        fail(r, "unknown escape \\%c", c);
        return false;
    }
    return buf_put(b, &out, 1);
}

/* Reads a string after its opening quote into a fresh buffer. */
static bool read_string_body(jl_reader *r, jl_buf *b)
{
    if (!buf_put(b, "", 0))
        return false;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            return true;
        }
        if (c == '\\') {
            r->p++;
            if (!read_escape(r, b))
                return false;
        } else if (c < 0x20) {
            fail(r, "raw control character 0x%02X in a string", c);
            return false;
        } else if (c < 0x80) {
            if (!buf_put(b, r->p++, 1))
                return false;
        } else {
            size_t n = utf8_length((const unsigned char *)r->p, (const unsigned char *)r->end);
            if (n == 0) {
                fail(r, "invalid UTF-8 in a string");
                return false;
            }
            if (!buf_put(b, r->p, n))
                return false;
            r->p += n;
        }
    }
    fail(r, "unterminated string");
    return false;
}

static jl_value *read_value(jl_reader *r, int depth);

static jl_value *read_string(jl_reader *r)
{
    jl_buf b = {0};
    jl_value *v;

    r->p++; /* the opening quote */
    if (!read_string_body(r, &b)) {
        free(b.data);
        fail(r, "out of memory");
        return NULL;
    }
    v = new_value(JL_STRING);
    if (v == NULL) {
        free(b.data);
        return NULL;
    }
    v->text = b.data;
    v->length = b.length;
    return v;
}

static jl_value *read_literal(jl_reader *r, const char *word, jl_kind kind)
{
    size_t n = strlen(word);
    jl_value *v;

    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) {
        fail(r, "unexpected character '%c'", *r->p);
        return NULL;
    }
    r->p += n;
    v = new_value(kind);
    if (v != NULL && kind == JL_BOOL) {
        v->text = strdup(word);
        v->length = n;
    }
    return v;
}

static jl_value *read_number(jl_reader *r)
{
    const char *start = r->p;
    jl_value *v;

    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') {
        fail(r, "bad number");
        return NULL;
    }
    while (r->p < r->end && strchr("0123456789.eE+-", *r->p) != NULL)
        r->p++;
    v = new_value(JL_NUMBER);
    if (v == NULL)
        return NULL;
    v->length = (size_t)(r->p - start);
    v->text = strndup(start, v->length);
    return v;
}

static bool append_item(jl_value *container, char *key, jl_value *item)
{
    jl_value **items = realloc(container->items, (container->count + 1) * sizeof *items);
    if (items == NULL)
        return false;
    container->items = items;
    if (container->kind == JL_OBJECT) {
        char **keys = realloc(container->keys, (container->count + 1) * sizeof *keys);
        if (keys == NULL)
            return false;
        container->keys = keys;
        keys[container->count] = key;
    }
    items[container->count++] = item;
    return true;
}

/* Reads an object or array member list after the opening bracket. */
static jl_value *read_container(jl_reader *r, jl_kind kind, int depth)
{
    char close = kind == JL_OBJECT ? '}' : ']';
    jl_value *v = new_value(kind);

    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return v;
    }
    while (v != NULL && !r->failed) {
        jl_buf key = {0};
        jl_value *item;

        skip_space(r);
        if (kind == JL_OBJECT) {
            if (r->p >= r->end || *r->p != '"') {
                fail(r, "expected a key");
                break;
            }
            r->p++;
            if (!read_string_body(r, &key)) {
                free(key.data);
                break;
            }
            skip_space(r);
            if (r->p >= r->end || *r->p != ':') {
                free(key.data);
                fail(r, "expected ':'");
                break;
            }
            r->p++;
        }
        item = read_value(r, depth + 1);
        if (item == NULL || !append_item(v, key.data, item)) {
            free(key.data);
            jl_free(item);
            break;
        }
        skip_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return v;
        }
        fail(r, "expected ',' or '%c'", close);
    }
    fail(r, "bad container");
    jl_free(v);
    return NULL;
}

static jl_value *read_value(jl_reader *r, int depth)
{
    if (depth > JL_MAX_DEPTH) {
        fail(r, "nested too deep");
        return NULL;
    }
    skip_space(r);
    if (r->p >= r->end) {
        fail(r, "unexpected end");
        return NULL;
    }
    switch (*r->p) {
    case '{':
        return read_container(r, JL_OBJECT, depth);
    case '[':
        return read_container(r, JL_ARRAY, depth);
    case '"':
        return read_string(r);
    case 'n':
        return read_literal(r, "null", JL_NULL);
    case 't':
        return read_literal(r, "true", JL_BOOL);
    case 'f':
        return read_literal(r, "false", JL_BOOL);
    default:
        return read_number(r);
    }
}

jl_value *jl_parse(const char *text, size_t length, char *err, size_t errlen)
{
    jl_reader r = {.p = text, .end = text + length, .err = err, .errlen = errlen};
    jl_value *v = read_value(&r, 0);

    if (v == NULL) {
        fail(&r, "not JSON");
        return NULL;
    }
    skip_space(&r);
    if (r.p != r.end) {
        fail(&r, "trailing bytes after the value");
        jl_free(v);
        return NULL;
    }
    return v;
}

void jl_free(jl_value *value)
{
    if (value == NULL)
        return;
    for (size_t i = 0; i < value->count; i++) {
        if (value->keys != NULL)
            free(value->keys[i]);
        jl_free(value->items[i]);
    }
    free(value->keys);
    free(value->items);
    free(value->text);
    free(value);
}

const jl_value *jl_get(const jl_value *value, const char *key)
{
    if (value == NULL || value->kind != JL_OBJECT)
        return NULL;
    for (size_t i = 0; i < value->count; i++)
        if (strcmp(value->keys[i], key) == 0)
            return value->items[i];
    return NULL;
}
