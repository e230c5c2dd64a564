#include <config.h>

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kt_binding.h"
#include "kt_device.h"
#include "kt_graphql.h"

/* Every documented field, so that the bank's answer can be shown to the person. */
#define KT_BINDING_FIELDS "id deviceName ipAddress address createdAt confirmedAt rejectedAt"

static const char kt_create_query[] =
    "mutation CreateDeviceBindingRequest($deviceName: String!) "
    "{ createDeviceBindingRequest(deviceName: $deviceName) { " KT_BINDING_FIELDS " } }";
static const char kt_get_query[] = "query GetDeviceBindingRequest($id: String) "
                                   "{ getDeviceBindingRequest(id: $id) { " KT_BINDING_FIELDS " } }";

#define KT_CREATE_WHAT "create device binding request"
#define KT_GET_WHAT "check device binding request"
/* Longest text kept from a field that is only shown. */
#define KT_BINDING_TEXT_MAX 1024

void kt_binding_request_free(kt_binding_request *b)
{
    if (b == NULL)
        return;
    free(b->id);
    free(b->device_name);
    free(b->ip_address);
    free(b->address);
    free(b->created_at);
    free(b->confirmed_at);
    free(b->rejected_at);
    memset(b, 0, sizeof(*b));
}

static int kt_opt_text(const kt_json_doc *doc, json_object *obj, const char *key, char **out,
                       kt_error *err)
{
    return kt_json_string(doc, obj, key, KT_JSON_NULLABLE | KT_JSON_MAY_BE_EMPTY,
                          KT_BINDING_TEXT_MAX, out, err);
}

int kt_binding_request_read(struct json_object *obj, const char *what, kt_binding_request *out,
                            kt_error *err)
{
    kt_json_doc doc = {NULL, KT_ERR_PROTOCOL, 0, 0};
    int rc = -1;

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (what == NULL)
        what = "device binding request";
    doc.what = what;
    if (obj == NULL || !json_object_is_type(obj, json_type_object))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: not an object", what);
    if (kt_json_get_string(obj, "id", &out->id, what, err) != 0)
        goto out;
    /* The id goes back to the bank in every check; nothing strange may travel with it. */
    if (!kt_device_id_ok(out->id)) {
        kt_error_set(err, KT_ERR_PROTOCOL, "%s: \"id\" is not a valid id", what);
        goto out;
    }
    /* The rest is optional text: absent or null gives NULL; an overlong one is a broken answer. */
    if (kt_opt_text(&doc, obj, "deviceName", &out->device_name, err) != 0 ||
        kt_opt_text(&doc, obj, "ipAddress", &out->ip_address, err) != 0 ||
        kt_opt_text(&doc, obj, "address", &out->address, err) != 0 ||
        kt_opt_text(&doc, obj, "createdAt", &out->created_at, err) != 0 ||
        kt_opt_text(&doc, obj, "confirmedAt", &out->confirmed_at, err) != 0 ||
        kt_opt_text(&doc, obj, "rejectedAt", &out->rejected_at, err) != 0)
        goto out;
    /* A rejection wins over anything else the answer says. */
    if (out->rejected_at != NULL)
        out->state = KT_BINDING_REJECTED;
    else if (out->confirmed_at != NULL)
        out->state = KT_BINDING_CONFIRMED;
    else
        out->state = KT_BINDING_PENDING;
    rc = 0;
out:
    if (rc != 0)
        kt_binding_request_free(out);
    return rc;
}

/* data.FIELD of an answer (NULL for a JSON null), read and put. */
static int kt_binding_read_value(json_object *value, const char *what, kt_binding_request *out,
                                 kt_error *err)
{
    int rc;

    if (value == NULL)
        return kt_error_set(err, KT_ERR_MFA_FAILED,
                            "%s: the bank does not know the device binding request (any more)",
                            what);
    rc = kt_binding_request_read(value, what, out, err);
    json_object_put(value);
    return rc;
}

static int kt_binding_parse(long status, const char *body, size_t len, long retry_after,
                            const char *what, const char *field, kt_binding_request *out,
                            kt_error *err)
{
    json_object *value = NULL;

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (kt_graphql_answer(status, body, len, retry_after, what, field, KT_ERR_MFA_FAILED, &value,
                          err) != 0)
        return -1;
    return kt_binding_read_value(value, what, out, err);
}

int kt_binding_parse_create(long status, const char *body, size_t len, long retry_after,
                            kt_binding_request *out, kt_error *err)
{
    return kt_binding_parse(status, body, len, retry_after, KT_CREATE_WHAT,
                            "createDeviceBindingRequest", out, err);
}

int kt_binding_parse_get(long status, const char *body, size_t len, long retry_after,
                         kt_binding_request *out, kt_error *err)
{
    return kt_binding_parse(status, body, len, retry_after, KT_GET_WHAT, "getDeviceBindingRequest",
                            out, err);
}

static int kt_binding_call(kt_ctx *ctx, const char *access_token, const char *query,
                           const char *var_name, const char *var_value, const char *what,
                           const char *field, kt_binding_request *out, long *retry_after,
                           kt_error *err)
{
    const char *vars[] = {var_name, var_value, NULL};
    json_object *value = NULL;

    if (retry_after != NULL)
        *retry_after = -1;
    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (kt_graphql_call(ctx, access_token, query, vars, what, field, KT_ERR_MFA_FAILED, &value,
                        retry_after, err) != 0)
        return -1;
    return kt_binding_read_value(value, what, out, err);
}

int kt_binding_create(kt_ctx *ctx, const char *access_token, const char *device_name,
                      kt_binding_request *out, long *retry_after, kt_error *err)
{
    if (retry_after != NULL)
        *retry_after = -1;
    if (device_name == NULL || *device_name == '\0')
        return kt_error_set(err, KT_ERR_INTERNAL, "a device name is required");
    return kt_binding_call(ctx, access_token, kt_create_query, "deviceName", device_name,
                           KT_CREATE_WHAT, "createDeviceBindingRequest", out, retry_after, err);
}

int kt_binding_get(kt_ctx *ctx, const char *access_token, const char *id, kt_binding_request *out,
                   long *retry_after, kt_error *err)
{
    if (!kt_device_id_ok(id))
        return kt_error_set(err, KT_ERR_INTERNAL, "invalid device binding request id");
    return kt_binding_call(ctx, access_token, kt_get_query, "id", id, KT_GET_WHAT,
                           "getDeviceBindingRequest", out, retry_after, err);
}
