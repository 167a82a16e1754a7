/* lsn: PostgreSQL WAL positions, parsed from and printed as "X/X". */
#ifndef WN_LSN_H
#define WN_LSN_H

#include <stdbool.h>
#include <stdint.h>

typedef uint64_t wn_lsn;

#define WN_LSN_INVALID ((wn_lsn)0)
#define WN_LSN_TEXT_MAX 18 /* "FFFFFFFF/FFFFFFFF" plus NUL */

/* Parses "16/B374D848" (hex, upper or lower case); false for anything else. */
bool wn_lsn_parse(const char *text, wn_lsn *lsn);

/* Prints lsn into text (at least WN_LSN_TEXT_MAX bytes); returns text. */
char *wn_lsn_format(wn_lsn lsn, char *text);

#endif
