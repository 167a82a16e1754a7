/* jsonbuf: JSON text written into a reusable buffer. */
#include "jsonbuf.h"

#include <stdlib.h>
#include <string.h>

#define JSONBUF_MIN_CAP ((size_t)4096)
/* The longest output one input byte can become: "\u00XX" or "\ufffd". */
#define JSONBUF_MAX_EXPANSION ((size_t)6)
/* Input bytes escaped per reservation, so a huge value does not reserve six times its size. */
#define JSONBUF_STRING_CHUNK ((size_t)65536)
/* The longest well-formed UTF-8 sequence, which may run past a chunk's end. */
#define JSONBUF_UTF8_MAX ((size_t)4)

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

bool jsonbuf_grow(jsonbuf *buf, size_t extra)
{
    if (buf->failed)
        return false;
    if (extra <= buf->cap - buf->len && buf->data != NULL)
        return true;
    if (extra > SIZE_MAX / 2 - buf->len) {
        buf->failed = true;
        return false;
    }
    size_t need = buf->len + extra;
    size_t cap = buf->cap < JSONBUF_MIN_CAP ? JSONBUF_MIN_CAP : buf->cap;
    while (cap < need)
        cap *= 2;
    char *data = realloc(buf->data, cap);
    if (data == NULL) {
        buf->failed = true;
        return false;
    }
    buf->data = data;
    buf->cap = cap;
    return true;
}

void jsonbuf_free(jsonbuf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->failed = false;
}

void jsonbuf_u64(jsonbuf *buf, uint64_t value)
{
    /* Written in place, last digit first: most numbers here are a seq of a few digits, for
     * which a copy through a scratch buffer would cost more than the digits. */
    static const uint64_t powers[19] = {UINT64_C(10),
                                        UINT64_C(100),
                                        UINT64_C(1000),
                                        UINT64_C(10000),
                                        UINT64_C(100000),
                                        UINT64_C(1000000),
                                        UINT64_C(10000000),
                                        UINT64_C(100000000),
                                        UINT64_C(1000000000),
                                        UINT64_C(10000000000),
                                        UINT64_C(100000000000),
                                        UINT64_C(1000000000000),
                                        UINT64_C(10000000000000),
                                        UINT64_C(100000000000000),
                                        UINT64_C(1000000000000000),
                                        UINT64_C(10000000000000000),
                                        UINT64_C(100000000000000000),
                                        UINT64_C(1000000000000000000),
                                        UINT64_C(10000000000000000000)};
    size_t n = 1; /* digits: one more for each power of ten the value reaches */
    while (n <= 19 && value >= powers[n - 1])
        n++;
    if (!jsonbuf_reserve(buf, n))
        return;
    char *out = buf->data + buf->len + n;
    do {
        *--out = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    buf->len += n;
}

static void put_hex32(jsonbuf *buf, uint32_t value)
{
    char digits[8];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n] = hex_upper[value & 0xF];
        value >>= 4;
        n++;
    } while (value != 0);
    jsonbuf_put(buf, digits + sizeof digits - n, n);
}

void jsonbuf_lsn(jsonbuf *buf, uint64_t lsn)
{
    put_hex32(buf, (uint32_t)(lsn >> 32));
    jsonbuf_put(buf, "/", 1);
    put_hex32(buf, (uint32_t)lsn);
}

/* Writes `value` as exactly `width` decimal digits (value < 10^width). */
static void put_fixed(char *out, uint64_t value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
}

/* Days since 1970-01-01 to a proleptic Gregorian date, counted in 400-year eras that start on
 * March 1st, so the leap day is the last day of an era-year. */
static void civil_from_days(int64_t days, int64_t *year, unsigned *month, unsigned *day)
{
    const int64_t days_per_era = 146097;
    int64_t z = days + 719468; /* days from 0000-03-01 */
    int64_t era = (z >= 0 ? z : z - (days_per_era - 1)) / days_per_era;
    int64_t doe = z - era * days_per_era;                                /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    *day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2 ? 1 : 0);
}

static void put_year(jsonbuf *buf, int64_t year)
{
    if (year < 0) {
        jsonbuf_put(buf, "-", 1);
        year = -year;
    }
    if (year < 10000) {
        char digits[4];
        put_fixed(digits, (uint64_t)year, 4);
        jsonbuf_put(buf, digits, sizeof digits);
        return;
    }
    jsonbuf_u64(buf, (uint64_t)year);
}

void jsonbuf_timestamp(jsonbuf *buf, int64_t usec)
{
    const int64_t usec_per_sec = 1000000;
    const int64_t sec_per_day = 86400;
    /* Floor division: a time before 1970 still has a fraction in [0, 1 s). */
    int64_t secs = usec / usec_per_sec;
    int64_t frac = usec % usec_per_sec;
    if (frac < 0) {
        frac += usec_per_sec;
        secs--;
    }
    int64_t days = secs / sec_per_day;
    int64_t sod = secs % sec_per_day;
    if (sod < 0) {
        sod += sec_per_day;
        days--;
    }
    int64_t year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);

    put_year(buf, year);
    char rest[] = "-MM-DDTHH:MM:SS.ffffffZ";
    put_fixed(rest + 1, month, 2);
    put_fixed(rest + 4, day, 2);
    put_fixed(rest + 7, (uint64_t)(sod / 3600), 2);
    put_fixed(rest + 10, (uint64_t)(sod / 60 % 60), 2);
    put_fixed(rest + 13, (uint64_t)(sod % 60), 2);
    put_fixed(rest + 16, (uint64_t)frac, 6);
    jsonbuf_put(buf, rest, sizeof rest - 1);
}

/*
 * The length of the well-formed UTF-8 sequence at `p` (Unicode table 3-7), or 0 when the byte
 * at `p` does not start one: a stray continuation byte, an overlong form, a surrogate, a code
 * point above U+10FFFF, or a sequence cut short.
 */
static size_t utf8_sequence_length(const unsigned char *p, size_t avail)
{
    unsigned char lead = p[0];
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    size_t need;

    if (lead < 0xC2)
        return 0;
    if (lead < 0xE0) {
        need = 2;
    } else if (lead < 0xF0) {
        need = 3;
        if (lead == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (lead == 0xED)
            hi = 0x9F; /* surrogates U+D800..U+DFFF */
    } else if (lead < 0xF5) {
        need = 4;
        if (lead == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (lead == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    }
    return need;
}

/*
 * What each byte needs in a JSON string. Nearly every byte of real data is PLAIN, so the escaper
 * looks bytes up here and copies whole runs of PLAIN ones at once.
 */
enum {
    BYTE_PLAIN = 0,  /* printable ASCII: copied as is */
    BYTE_ESCAPE = 1, /* a control character, '"', '\\' or DEL: written as an escape */
    BYTE_HIGH = 2    /* 0x80 and above: copied only as part of a well-formed UTF-8 sequence */
};

static const unsigned char byte_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20: '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50: '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* 0x70: DEL */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xA0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xB0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xC0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xD0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xE0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xF0 */
};

/*
 * Whether all eight bytes of `w` are PLAIN, tested at once: a byte below 0x20, a '"', a '\\',
 * DEL or any byte from 0x80 sets its top bit in `flags`. Each test is exact for the word as a
 * whole when no byte is 0x80 or above, and such a byte sets its own flag (the `w` term).
 */
static bool plain_word(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u;
    const uint64_t quote = w ^ (ones * '"');
    const uint64_t backslash = w ^ (ones * '\\');
    uint64_t flags = (w - ones * 0x20) & ~w;  /* below 0x20 */
    flags |= (quote - ones) & ~quote;         /* '"' */
    flags |= (backslash - ones) & ~backslash; /* '\\' */
    flags |= w | (w + ones);                  /* 0x7F and above */
    return (flags & (ones * 0x80)) == 0;
}

/* The number of PLAIN bytes at the start of `p`, at most `n`: eight bytes per step while they
 * are all plain, then byte by byte through the table. */
static size_t plain_run(const unsigned char *p, size_t n)
{
    size_t k = 0;
    uint64_t w;
    while (n - k >= sizeof w) {
        memcpy(&w, p + k, sizeof w);
        if (!plain_word(w))
            break;
        k += sizeof w;
    }
    while (k < n && byte_class[p[k]] == BYTE_PLAIN)
        k++;
    return k;
}

/* Writes the escape of an ASCII byte that JSON does not allow raw (or that we keep out). */
static char *escape_ascii(char *out, unsigned char c)
{
    char short_form = 0;
    switch (c) {
    case '"':
        short_form = '"';
        break;
    case '\\':
        short_form = '\\';
        break;
    case '\b':
        short_form = 'b';
        break;
    case '\f':
        short_form = 'f';
        break;
    case '\n':
        short_form = 'n';
        break;
    case '\r':
        short_form = 'r';
        break;
    case '\t':
        short_form = 't';
        break;
    default:
        break;
    }
    *out++ = '\\';
    if (short_form != 0) {
        *out++ = short_form;
        return out;
    }
    *out++ = 'u';
    *out++ = '0';
    *out++ = '0';
    *out++ = hex_lower[c >> 4];
    *out++ = hex_lower[c & 0xF];
    return out;
}

/*
 * Escapes the input from *pos up to `end` into `out`, which has room for JSONBUF_MAX_EXPANSION
 * bytes per input byte up to JSONBUF_UTF8_MAX bytes past `end`: a UTF-8 sequence that starts
 * before `end` is taken whole, up to `length`. Advances *pos; returns the new end of `out`.
 */
static char *escape_span(char *out, const unsigned char *in, size_t *pos, size_t end, size_t length)
{
    size_t i = *pos;
    while (i < end) {
        size_t run = plain_run(in + i, end - i);
        memcpy(out, in + i, run);
        out += run;
        i += run;
        if (i == end)
            break;
        unsigned char c = in[i];
        if (byte_class[c] == BYTE_ESCAPE) {
            out = escape_ascii(out, c);
            i++;
            continue;
        }
        size_t n = utf8_sequence_length(in + i, length - i);
        if (n == 0) {
            memcpy(out, "\\ufffd", 6);
            out += 6;
            i++;
        } else {
            memcpy(out, in + i, n);
            out += n;
            i += n;
        }
    }
    *pos = i;
    return out;
}

void jsonbuf_string(jsonbuf *buf, const char *text, size_t length)
{
    const unsigned char *in = (const unsigned char *)text;
    size_t i = 0;

    /* One reservation covers a whole ordinary value and both quotes; a huge value is reserved
     * for chunk by chunk, so it never asks for six times its size at once. */
    do {
        size_t end = length - i > JSONBUF_STRING_CHUNK ? i + JSONBUF_STRING_CHUNK : length;
        size_t room = (end - i + JSONBUF_UTF8_MAX) * JSONBUF_MAX_EXPANSION + 2;
        if (!jsonbuf_reserve(buf, room))
            return;
        char *out = buf->data + buf->len;
        if (i == 0)
            *out++ = '"';
        out = escape_span(out, in, &i, end, length);
        if (i == length)
            *out++ = '"';
        buf->len = (size_t)(out - buf->data);
    } while (i < length);
}

bool jsonbuf_is_text(const char *text, size_t length)
{
    const unsigned char *in = (const unsigned char *)text;
    size_t i = 0;

    while (i < length) {
        if (in[i] == 0)
            return false;
        if (in[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_sequence_length(in + i, length - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

void jsonbuf_hex(jsonbuf *buf, const char *bytes, size_t length)
{
    const unsigned char *in = (const unsigned char *)bytes;

    /* Two digits per byte: a length past half of SIZE_MAX cannot be held. */
    if (length > SIZE_MAX / 2) {
        buf->failed = true;
        return;
    }
    if (!jsonbuf_reserve(buf, 2 * length))
        return;
    char *out = buf->data + buf->len;
    for (size_t i = 0; i < length; i++) {
        *out++ = hex_lower[in[i] >> 4];
        *out++ = hex_lower[in[i] & 0xF];
    }
    buf->len += 2 * length;
}
