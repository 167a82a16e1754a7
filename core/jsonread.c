/*
 * jsonread: a recursive-descent reader of one JSON text, for the lines walnotify wrote (jsonl,
 * dead-letter files). Depth is bounded, every node counted, every byte checked before it is read.
 */
#include "jsonread.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DEPTH_MAX 8

typedef struct reader {
    char *start; /* the text, for positions in messages */
    char *at;    /* the next byte to read */
    wn_json_doc *doc;
    char *err;
    size_t errlen;
} reader;

static int value(reader *r, int depth);

static int fail_at(reader *r, const char *what)
{
    snprintf(r->err, r->errlen, "%s at byte %zu", what, (size_t)(r->at - r->start) + 1);
    return -1;
}

static void skip_space(reader *r)
{
    while (*r->at == ' ' || *r->at == '\t' || *r->at == '\r' || *r->at == '\n')
        r->at++;
}

static int new_node(reader *r, wn_json_kind kind)
{
    wn_json *node;

    if (r->doc->count >= WN_JSON_NODES_MAX)
        return fail_at(r, "too many values");
    node = &r->doc->nodes[r->doc->count];
    memset(node, 0, sizeof *node);
    node->kind = kind;
    node->first = -1;
    node->next = -1;
    return r->doc->count++;
}

static int hex4(const char *p, uint32_t *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned digit;

        if (c >= '0' && c <= '9')
            digit = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = (unsigned)(c - 'A' + 10);
        else
            return -1;
        *out = *out << 4 | digit;
    }
    return 0;
}

/* Writes code point cp as UTF-8 at *out, moving it on. */
static void put_utf8(char **out, uint32_t cp)
{
    char *o = *out;

    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    *out = o;
}

/* A \u escape (r->at on the 'u'), and its low surrogate when it is a high one. */
static int unicode_escape(reader *r, char **out)
{
    uint32_t cp, low;

    if (hex4(r->at + 1, &cp) != 0)
        return fail_at(r, "bad \\u escape");
    r->at += 5;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (r->at[0] != '\\' || r->at[1] != 'u' || hex4(r->at + 2, &low) != 0 || low < 0xDC00 ||
            low > 0xDFFF)
            return fail_at(r, "a high surrogate without its low one");
        r->at += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return fail_at(r, "a low surrogate alone");
    }
    if (cp == 0)
        return fail_at(r, "\\u0000 in a string");
    put_utf8(out, cp);
    return 0;
}

/* A string (r->at on its opening quote), decoded in place; *text and *length receive it. */
static int string(reader *r, const char **text, size_t *length)
{
    static const char plain_escapes[] = "\"\\/bfnrt";
    static const char plain_values[] = "\"\\/\b\f\n\r\t";
    char *out = ++r->at;

    *text = out;
    for (;;) {
        char c = *r->at;
        const char *e;

        if (c == '"')
            break;
        if (c == '\0')
            return fail_at(r, "unterminated string");
        if ((unsigned char)c < 0x20)
            return fail_at(r, "a control character in a string");
        if (c != '\\') {
            *out++ = *r->at++;
            continue;
        }
        r->at++;
        if (*r->at == 'u') {
            if (unicode_escape(r, &out) != 0)
                return -1;
            continue;
        }
        e = *r->at != '\0' ? strchr(plain_escapes, *r->at) : NULL;
        if (e == NULL)
            return fail_at(r, "bad escape");
        *out++ = plain_values[e - plain_escapes];
        r->at++;
    }
    *length = (size_t)(out - *text);
    r->at++;
    *out = '\0'; /* at or before the closing quote, which is read */
    return 0;
}

static int number(reader *r, int index)
{
    char *start = r->at;

    if (*r->at == '-')
        r->at++;
    if (*r->at < '0' || *r->at > '9')
        return fail_at(r, "unexpected character");
    while ((*r->at >= '0' && *r->at <= '9') || *r->at == '.' || *r->at == 'e' || *r->at == 'E' ||
           *r->at == '+' || *r->at == '-')
        r->at++;
    r->doc->nodes[index].text = start;
    r->doc->nodes[index].length = (size_t)(r->at - start);
    return 0;
}

/* Links child after *last (or as the first member of parent). */
static void link_child(reader *r, int parent, int *last, int child)
{
    if (*last < 0)
        r->doc->nodes[parent].first = child;
    else
        r->doc->nodes[*last].next = child;
    *last = child;
}

static int container(reader *r, int index, int depth, bool object)
{
    char close = object ? '}' : ']';
    int last = -1;

    if (depth >= DEPTH_MAX)
        return fail_at(r, "values nested too deep");
    r->at++;
    skip_space(r);
    if (*r->at == close) {
        r->at++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_length;
        int child;

        skip_space(r);
        if (object) {
            if (*r->at != '"')
                return fail_at(r, "expected a member name");
            if (string(r, &key, &key_length) != 0)
                return -1;
            skip_space(r);
            if (*r->at != ':')
                return fail_at(r, "expected ':'");
            r->at++;
        }
        child = value(r, depth + 1);
        if (child < 0)
            return -1;
        r->doc->nodes[child].key = key;
        link_child(r, index, &last, child);
        skip_space(r);
        if (*r->at == close) {
            r->at++;
            return 0;
        }
        if (*r->at == '\0')
            return fail_at(r, "unexpected end");
        if (*r->at != ',')
            return fail_at(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
        r->at++;
    }
}

static int literal(reader *r, const char *word, int index)
{
    size_t n = strlen(word);

    if (strncmp(r->at, word, n) != 0)
        return fail_at(r, "unexpected character");
    r->at += n;
    return index;
}

/* One value; returns its node's index, or -1. */
static int value(reader *r, int depth)
{
    int index;

    skip_space(r);
    switch (*r->at) {
    case '{':
    case '[':
        index = new_node(r, *r->at == '{' ? WN_JSON_OBJECT : WN_JSON_ARRAY);
        if (index < 0 || container(r, index, depth, r->doc->nodes[index].kind == WN_JSON_OBJECT))
            return -1;
        return index;
    case '"':
        index = new_node(r, WN_JSON_STRING);
        if (index < 0 || string(r, &r->doc->nodes[index].text, &r->doc->nodes[index].length) != 0)
            return -1;
        return index;
    case 'n':
        index = new_node(r, WN_JSON_NULL);
        return index < 0 ? -1 : literal(r, "null", index);
    case 't':
        index = new_node(r, WN_JSON_TRUE);
        return index < 0 ? -1 : literal(r, "true", index);
    case 'f':
        index = new_node(r, WN_JSON_FALSE);
        return index < 0 ? -1 : literal(r, "false", index);
    case '\0':
        return fail_at(r, "unexpected end");
    default:
        index = new_node(r, WN_JSON_NUMBER);
        if (index < 0 || number(r, index) != 0)
            return -1;
        return index;
    }
}

int wn_json_parse(char *text, wn_json_doc *doc, char *err, size_t errlen)
{
    reader r = {.start = text, .at = text, .doc = doc, .err = err, .errlen = errlen};

    doc->count = 0;
    if (value(&r, 0) != 0)
        return -1;
    skip_space(&r);
    if (*r.at != '\0')
        return fail_at(&r, "text after the value");
    return 0;
}

const wn_json *wn_json_member(const wn_json_doc *doc, int object, const char *key)
{
    if (doc->nodes[object].kind != WN_JSON_OBJECT)
        return NULL;
    for (int i = doc->nodes[object].first; i >= 0; i = doc->nodes[i].next) {
        if (strcmp(doc->nodes[i].key, key) == 0)
            return &doc->nodes[i];
    }
    return NULL;
}

const wn_json *wn_json_first(const wn_json_doc *doc, const wn_json *container)
{
    return container->first >= 0 ? &doc->nodes[container->first] : NULL;
}

const wn_json *wn_json_next(const wn_json_doc *doc, const wn_json *node)
{
    return node->next >= 0 ? &doc->nodes[node->next] : NULL;
}
