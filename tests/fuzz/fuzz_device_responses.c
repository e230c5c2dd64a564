/* Fuzzes the device-binding response parsers (REST and the GraphQL binding requests), the
 * device administration answers (listBoundDevices, deleteBoundDevice), the server-words reader
 * of error bodies and the JWT claim reader. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kt_all.h"

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
    kt_error_clear(&err);

    /* GraphQL answers: a success status and a refusal one. */
    for (int i = 0; i < 2; i++) {
        long status = i == 0 ? 200 : 403;
        kt_binding_request r;
        json_object *value = NULL;
        char words[KT_JSON_SERVER_TEXT_MAX + 1];

        if (kt_binding_parse_create(status, body, size, -1, &r, &err) == 0 &&
            (r.id == NULL || !kt_device_id_ok(r.id)))
            abort();
        kt_binding_request_free(&r);
        kt_error_clear(&err);
        if (kt_binding_parse_get(status, body, size, 3, &r, &err) == 0 && r.id == NULL)
            abort();
        kt_binding_request_free(&r);
        kt_error_clear(&err);
        if (kt_graphql_answer(status, body, size, -1, "list", "listBoundDevices", KT_ERR_MFA_FAILED,
                              &value, &err) == 0)
            json_object_put(value);
        else if (err.kind == KT_OK)
            abort();
        kt_error_clear(&err);
        {
            kt_device_list l;

            /* A list that parses holds only ids fit for a URL and names, at most the cap. */
            if (kt_devices_parse_list(status, body, size, 5, &l, &err) == 0) {
                if (l.count > KT_DEVICES_MAX || (l.count > 0 && l.devices == NULL))
                    abort();
                for (size_t j = 0; j < l.count; j++)
                    if (!kt_device_id_ok(l.devices[j].id) || l.devices[j].name == NULL ||
                        l.devices[j].this_machine)
                        abort();
            } else if (err.kind == KT_OK || l.devices != NULL || l.count != 0) {
                abort();
            }
            kt_device_list_free(&l);
            kt_error_clear(&err);
            /* Only a 2xx answer that says true removed a device. */
            if (kt_devices_parse_delete(status, body, size, -1, "d-1", &err) == 0) {
                if (status != 200 || strstr(body, "true") == NULL)
                    abort();
            } else if (err.kind == KT_OK) {
                abort();
            }
            kt_error_clear(&err);
        }
        kt_json_server_words(body, size, words, sizeof(words));
        if (strlen(words) > KT_JSON_SERVER_TEXT_MAX)
            abort();
    }
    free(body);
    return 0;
}
