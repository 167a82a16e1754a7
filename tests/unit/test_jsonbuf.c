/* jsonbuf's string escaper: every byte value at every place of a run, against a plain reference. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonbuf.h"
#include "run_suite.h"

#define RUN_LENGTH 19 /* two words of eight bytes and a tail */

/* What a single byte becomes inside a JSON string when it stands alone among ASCII letters. */
static void reference_escape(unsigned char c, char *out, size_t size)
{
    const char *short_form = NULL;

    switch (c) {
    case '"':
        short_form = "\\\"";
        break;
    case '\\':
        short_form = "\\\\";
        break;
    case '\b':
        short_form = "\\b";
        break;
    case '\f':
        short_form = "\\f";
        break;
    case '\n':
        short_form = "\\n";
        break;
    case '\r':
        short_form = "\\r";
        break;
    case '\t':
        short_form = "\\t";
        break;
    default:
        break;
    }
    if (short_form != NULL)
        snprintf(out, size, "%s", short_form);
    else if (c < 0x20 || c == 0x7F)
        snprintf(out, size, "\\u%04x", c);
    else if (c >= 0x80) /* a lone high byte is not UTF-8 */
        snprintf(out, size, "\\ufffd");
    else
        snprintf(out, size, "%c", c);
}

START_TEST(test_every_byte_at_every_place)
{
    for (int value = 0; value < 256; value++) {
        char escaped[16];

        reference_escape((unsigned char)value, escaped, sizeof escaped);
        for (size_t at = 0; at < RUN_LENGTH; at++) {
            char input[RUN_LENGTH];
            char expected[RUN_LENGTH + 16 + 2 + 1];
            jsonbuf buf = {0};

            memset(input, 'a', sizeof input);
            input[at] = (char)value;
            snprintf(expected, sizeof expected, "\"%.*s%s%.*s\"", (int)at, input, escaped,
                     (int)(RUN_LENGTH - at - 1), input + at + 1);
            jsonbuf_string(&buf, input, sizeof input);
            ck_assert_msg(!buf.failed, "byte 0x%02x at %zu: the buffer failed", value, at);
            ck_assert_msg(buf.len == strlen(expected) && memcmp(buf.data, expected, buf.len) == 0,
                          "byte 0x%02x at %zu: got %.*s, expected %s", value, at, (int)buf.len,
                          buf.data, expected);
            jsonbuf_free(&buf);
        }
    }
}
END_TEST

/* Text that needs no escape comes out as itself between quotes. */
static void assert_copied_whole(const char *text)
{
    jsonbuf buf = {0};
    char expected[128];

    ck_assert(snprintf(expected, sizeof expected, "\"%s\"", text) < (int)sizeof expected);
    jsonbuf_string(&buf, text, strlen(text));
    ck_assert_msg(buf.len == strlen(expected) && memcmp(buf.data, expected, buf.len) == 0,
                  "got %.*s, expected %s", (int)buf.len, buf.data, expected);
    jsonbuf_free(&buf);
}

START_TEST(test_plain_words_copied_whole)
{
    assert_copied_whole("customer 0123456789abcdef0123456789abcdef ~}|{ `_^] [ZYX");
}
END_TEST

START_TEST(test_utf8_after_plain_words)
{
    assert_copied_whole("abcdefgh\xc3\xa9t\xc3\xa9 abcdefgh\xe2\x82\xac");
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("jsonbuf");
    TCase *tc = tcase_create("escape");

    tcase_add_test(tc, test_every_byte_at_every_place);
    tcase_add_test(tc, test_plain_words_copied_whole);
    tcase_add_test(tc, test_utf8_after_plain_words);
    suite_add_tcase(suite, tc);
    return run_suite(suite) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
