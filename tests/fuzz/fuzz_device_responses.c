/* Fuzzes the device-binding response parsers and the JWT claim reader. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kontist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    char *a = NULL, *b = NULL;
    kt_token_set t = {0};
    kt_error err = {0};
    time_t exp;
    bool confirmed;

    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';

    if (kt_device_parse_create(200, "application/json", body, size, &a, &b, &err) == 0 &&
        (a == NULL || b == NULL))
        abort();
    free(a);
    free(b);
    a = b = NULL;
    kt_error_clear(&err);
    if (kt_device_parse_challenge(200, "application/json", body, size, &a, &b, &err) == 0 &&
        (a == NULL || b == NULL))
        abort();
    free(a);
    free(b);
    kt_error_clear(&err);
    (void)kt_device_parse_confirmed(200, "application/json", body, size, &t, &err);
    kt_token_set_free(&t);
    kt_error_clear(&err);
    (void)kt_jwt_peek(body, &exp, &confirmed, &err);
    free(body);
    return 0;
}
