/*
 * webhook_loop: the limit the webhook plugin is measured against. It sends saved bodies (the
 * ones count_server saved while walnotify sent them) to a URL, one POST after another through
 * one kept-alive libcurl handle, with the plugin's Content-Type and an Idempotency-Key, and
 * reports how fast.
 *
 *   webhook_loop URL BODIES_FILE CONTENT_TYPE
 *
 * Prints "requests N events E seconds S".
 */
#include <curl/curl.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t drop(char *data, size_t size, size_t nmemb, void *user)
{
    (void)data;
    (void)user;
    return size * nmemb;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every saved body, read into memory before the clock starts. */
typedef struct bodies {
    char **data;
    size_t *length;
    size_t count;
} bodies;

static bool read_bodies(const char *path, bodies *out)
{
    FILE *f = fopen(path, "r");
    size_t cap = 0, length;

    if (f == NULL)
        return false;
    memset(out, 0, sizeof *out);
    while (fscanf(f, "%zu", &length) == 1 && fgetc(f) == '\n') {
        if (out->count == cap) {
            cap = cap ? cap * 2 : 1024;
            out->data = realloc(out->data, cap * sizeof *out->data);
            out->length = realloc(out->length, cap * sizeof *out->length);
            if (out->data == NULL || out->length == NULL)
                return false;
        }
        out->data[out->count] = malloc(length + 1);
        if (out->data[out->count] == NULL || fread(out->data[out->count], 1, length, f) != length)
            return false;
        out->length[out->count++] = length;
    }
    fclose(f);
    return true;
}

int main(int argc, char **argv)
{
    bodies b;
    unsigned long long events = 0;
    char type[128], key[64];
    double start;
    CURL *curl;

    if (argc != 4) {
        fprintf(stderr, "usage: webhook_loop URL BODIES_FILE CONTENT_TYPE\n");
        return 2;
    }
    if (!read_bodies(argv[2], &b)) {
        fprintf(stderr, "webhook_loop: cannot read %s\n", argv[2]);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    snprintf(type, sizeof type, "Content-Type: %s", argv[3]);
    curl_easy_setopt(curl, CURLOPT_URL, argv[1]);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, drop);
    start = now_s();
    for (size_t i = 0; i < b.count; i++) {
        struct curl_slist *headers = NULL;
        long status = 0;

        snprintf(key, sizeof key, "Idempotency-Key: %zu", i);
        headers = curl_slist_append(headers, type);
        headers = curl_slist_append(headers, key);
        headers = curl_slist_append(headers, "Expect:");
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, b.data[i]);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b.length[i]);
        if (curl_easy_perform(curl) != CURLE_OK ||
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200) {
            fprintf(stderr, "webhook_loop: request %zu failed (status %ld)\n", i, status);
            return 1;
        }
        curl_slist_free_all(headers);
        for (size_t j = 0; j < b.length[i]; j++)
            events += b.data[i][j] == '\n';
        if (b.length[i] > 0 && b.data[i][b.length[i] - 1] != '\n')
            events++;
    }
    printf("requests %zu events %llu seconds %.3f\n", b.count, events, now_s() - start);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return 0;
}
