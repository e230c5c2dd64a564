/* Fuzzes the parsers of the per-user state files: the token cache and the device record. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt_all.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    kt_token_set t = {0};
    kt_device_record rec = {0};
    kt_error err = {0};

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (kt_cache_parse(text, size, &t, &err) == 0) {
        /* What parses must serialise and parse again to the same thing. */
        char *again = kt_cache_serialize(&t);
        kt_token_set t2 = {0};
        if (again == NULL || kt_cache_parse(again, strlen(again), &t2, &err) != 0)
            abort();
        if (t.expires_at != t2.expires_at || t.confirmed != t2.confirmed)
            abort();
        kt_token_set_free(&t2);
        kt_secret_free(again);
    }
    kt_token_set_free(&t);
    kt_error_clear(&err);
    if (kt_record_parse(text, size, &rec, &err) == 0 && rec.username == NULL)
        abort();
    kt_record_free(&rec);
    free(text);
    return 0;
}
