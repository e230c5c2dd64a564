/* Fuzzes the token endpoint response parser with every status class and both grants. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt_all.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 401, 429, 500};
    char *body;

    /* Bodies from curl are NUL-terminated; keep that invariant. */
    body = malloc(size + 1);
    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        for (int g = 0; g < 2; g++) {
            kt_token_set t = {0};
            kt_error err = {0};
            int rc = kt_oauth_parse_token_response(statuses[i], "application/json", body, size,
                                                   g ? KT_GRANT_REFRESH : KT_GRANT_PASSWORD,
                                                   1700000000, &t, &err);
            if (rc == 0 && (statuses[i] != 200 || t.access_token == NULL))
                abort();
            kt_token_set_free(&t);
        }
    }
    free(body);
    return 0;
}
