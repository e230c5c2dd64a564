/* Fuzzes the push MFA answers: a challenge ({"id","status","expiresAt"}, its date and time
 * parser) and the confirmed token answer of its token call. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kt_all.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    kt_push_challenge c;
    kt_token_set t = {0};
    kt_error err = {0};
    time_t when;

    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    /* A challenge that parses has an id fit for a URL and a known state. */
    if (kt_mfa_parse_challenge(200, "application/json", body, size, &c, &err) == 0 &&
        (c.id == NULL || !kt_device_id_ok(c.id) ||
         (c.state != KT_PUSH_PENDING && c.state != KT_PUSH_VERIFIED && c.state != KT_PUSH_DENIED)))
        abort();
    kt_push_challenge_free(&c);
    kt_error_clear(&err);
    if (kt_mfa_parse_challenge(201, "application/json", body, size, &c, &err) != 0 &&
        err.kind == KT_OK)
        abort();
    kt_push_challenge_free(&c);
    kt_error_clear(&err);
    (void)kt_iso8601_parse(body, &when);
    if (kt_parse_confirmed_tokens("push challenge token", 200, "application/json", body, size, &t,
                                  &err) == 0 &&
        t.access_token == NULL)
        abort();
    kt_token_set_free(&t);
    free(body);
    return 0;
}
