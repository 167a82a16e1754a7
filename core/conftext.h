/*
 * conftext: the configuration's text as libconfig will read it. The file is read whole, its
 * folder found, and every @include it holds followed and checked before libconfig sees any of
 * it, so that what libconfig reads is bounded and stays in the configuration's folder.
 */
#ifndef WN_CONFTEXT_H
#define WN_CONFTEXT_H

#include <stdarg.h>
#include <stddef.h>

typedef struct wn_conftext {
    char *text;      /* the configuration file, NUL-terminated; owned */
    char *dir;       /* its canonical folder: relative paths and @include names resolve here;
                        owned */
    char **included; /* every file an @include reads, canonical, in the order met; owned */
    size_t nincluded;
} wn_conftext;

/*
 * Reads the configuration file path (at most 1 MiB with everything it includes, no NUL byte)
 * and follows its @include directives: each must name a regular file in the configuration's
 * folder or below, nested at most 10 deep. Returns 0, or -1 with one line in err ("FILE: what"
 * or "FILE:LINE: what", FILE an included file when the fault is there); on failure *out holds
 * nothing that needs freeing.
 */
int wn_conftext_read(const char *path, wn_conftext *out, char *err, size_t errlen);

void wn_conftext_free(wn_conftext *conftext);

/*
 * Writes the shape of every configuration error into err: "FILE:LINE: message" when line > 0,
 * else "FILE: message", made one line (control characters become '?') whatever the file name
 * or message held. Nothing when err is NULL or errlen 0.
 */
void wn_conftext_verror(char *err, size_t errlen, const char *file, int line, const char *format,
                        va_list args) __attribute__((format(printf, 5, 0)));

#endif
