/* lsn: WAL positions as text. */
#include "lsn.h"

#include <inttypes.h>
#include <stdio.h>

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 1 to 8 hex digits from *text, advancing it. */
static bool parse_half(const char **text, uint32_t *half)
{
    uint32_t value = 0;
    int digits = 0;
    int d;

    while ((d = hex_digit(**text)) >= 0) {
        if (++digits > 8)
            return false;
        value = (value << 4) | (uint32_t)d;
        (*text)++;
    }
    *half = value;
    return digits > 0;
}

bool wn_lsn_parse(const char *text, wn_lsn *lsn)
{
    uint32_t high, low;

    if (text == NULL || !parse_half(&text, &high) || *text++ != '/' || !parse_half(&text, &low) ||
        *text != '\0')
        return false;
    *lsn = ((wn_lsn)high << 32) | low;
    return true;
}

char *wn_lsn_format(wn_lsn lsn, char *text)
{
    snprintf(text, WN_LSN_TEXT_MAX, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
    return text;
}
