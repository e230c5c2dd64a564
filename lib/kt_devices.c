#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "kt_devices.h"
#include "kt_file.h"
#include "kt_graphql.h"
#include "kt_json.h"
#include "kt_keys.h"
#include "kt_record.h"
#include "kt_secret.h"
#include "kt_session.h"
#include "kt_tpm.h"
#include "kt_util.h"
#include "kt_validate.h"

static const char kt_list_query[] = "query ListBoundDevices { listBoundDevices { id name } }";
static const char kt_delete_query[] = "mutation DeleteBoundDevice($deviceId: String!) "
                                      "{ deleteBoundDevice(deviceId: $deviceId) }";

#define KT_LIST_WHAT "list bound devices"
#define KT_DELETE_WHAT "remove bound device"

/* --- the bank's answers ---------------------------------------------------------------------- */

static void bound_device_free(kt_bound_device *d)
{
    free(d->id);
    free(d->name);
    memset(d, 0, sizeof(*d));
}

void kt_device_list_free(kt_device_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        bound_device_free(&l->devices[i]);
    free(l->devices);
    free(l->username);
    memset(l, 0, sizeof(*l));
}

static int read_device(json_object *obj, size_t i, kt_bound_device *d, kt_error *err)
{
    kt_json_doc doc = {KT_LIST_WHAT, KT_ERR_PROTOCOL, 0, 0};

    if (obj == NULL || !json_object_is_type(obj, json_type_object))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: device %zu is not an object", KT_LIST_WHAT,
                            i + 1);
    if (kt_json_get_string(obj, "id", &d->id, KT_LIST_WHAT, err) != 0)
        return -1;
    /* The id goes back to the bank in a removal and is compared with the record's. */
    if (!kt_device_id_ok(d->id))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: device %zu has no valid id", KT_LIST_WHAT,
                            i + 1);
    /* A name is the person's own text: anything printable or not is kept, shown made safe. */
    if (kt_json_string(&doc, obj, "name", KT_JSON_REQUIRED | KT_JSON_MAY_BE_EMPTY,
                       KT_DEVICES_NAME_MAX, &d->name, err) != 0)
        return -1;
    return 0;
}

static int read_list(json_object *value, kt_device_list *out, kt_error *err)
{
    size_t n;

    if (value == NULL || !json_object_is_type(value, json_type_array))
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: the answer is not a list", KT_LIST_WHAT);
    n = json_object_array_length(value);
    if (n > KT_DEVICES_MAX)
        return kt_error_set(err, KT_ERR_PROTOCOL, "%s: more than %d devices", KT_LIST_WHAT,
                            KT_DEVICES_MAX);
    if (n == 0)
        return 0;
    out->devices = calloc(n, sizeof(*out->devices));
    if (out->devices == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        out->count = i + 1;
        if (read_device(json_object_array_get_idx(value, i), i, &out->devices[i], err) != 0)
            return -1;
    }
    return 0;
}

/* The list from a listBoundDevices value, which it releases; out is emptied on failure. */
static int take_list(json_object *value, kt_device_list *out, kt_error *err)
{
    int rc = read_list(value, out, err);

    json_object_put(value);
    if (rc != 0)
        kt_device_list_free(out);
    return rc;
}

int kt_devices_parse_list(long status, const char *body, size_t len, long retry_after,
                          kt_device_list *out, kt_error *err)
{
    json_object *value = NULL;

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (kt_graphql_answer(status, body, len, retry_after, KT_LIST_WHAT, "listBoundDevices",
                          KT_ERR_MFA_FAILED, &value, err) != 0)
        return -1;
    return take_list(value, out, err);
}

/* Whether a deleteBoundDevice value says the device went; releases the value. */
static int take_deleted(json_object *value, const char *device_id, kt_error *err)
{
    int rc = 0;

    if (value == NULL || !json_object_is_type(value, json_type_boolean))
        rc = kt_error_set(err, KT_ERR_PROTOCOL, "%s: the answer is not true or false",
                          KT_DELETE_WHAT);
    else if (!json_object_get_boolean(value))
        rc = kt_error_set(err, KT_ERR_MFA_FAILED, "%s: the bank did not remove device %s",
                          KT_DELETE_WHAT, device_id != NULL ? device_id : "(unknown)");
    json_object_put(value);
    return rc;
}

int kt_devices_parse_delete(long status, const char *body, size_t len, long retry_after,
                            const char *device_id, kt_error *err)
{
    json_object *value = NULL;

    if (kt_graphql_answer(status, body, len, retry_after, KT_DELETE_WHAT, "deleteBoundDevice",
                          KT_ERR_MFA_FAILED, &value, err) != 0)
        return -1;
    return take_deleted(value, device_id, err);
}

int kt_devices_fetch(kt_ctx *ctx, const char *access_token, kt_device_list *out, kt_error *err)
{
    json_object *value = NULL;

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (kt_graphql_call(ctx, access_token, kt_list_query, NULL, KT_LIST_WHAT, "listBoundDevices",
                        KT_ERR_MFA_FAILED, &value, NULL, err) != 0)
        return -1;
    return take_list(value, out, err);
}

int kt_devices_delete(kt_ctx *ctx, const char *access_token, const char *device_id, kt_error *err)
{
    const char *vars[] = {"deviceId", device_id, NULL};
    json_object *value = NULL;

    if (!kt_device_id_ok(device_id))
        return kt_error_set(err, KT_ERR_INTERNAL, "invalid device id");
    if (kt_graphql_call(ctx, access_token, kt_delete_query, vars, KT_DELETE_WHAT,
                        "deleteBoundDevice", KT_ERR_MFA_FAILED, &value, NULL, err) != 0)
        return -1;
    return take_deleted(value, device_id, err);
}

/* --- what this machine knows ----------------------------------------------------------------- */

/* The session's confirmed token and this machine's record (absent: all NULL), read before the
 * bank is asked anything: a record that cannot be read safely stops here, nothing changed. */
typedef struct kt_admin {
    kt_token_set t;
    kt_device_record rec;
    bool have_rec;
} kt_admin;

static void admin_free(kt_admin *a)
{
    kt_token_set_free(&a->t);
    kt_record_free(&a->rec);
    a->have_rec = false;
}

static int admin_start(kt_ctx *ctx, const kt_paths *paths, const kt_owner_policy *owners,
                       kt_admin *a, kt_error *err)
{
    kt_error local = {KT_OK, ""};
    int e = 0;

    memset(a, 0, sizeof(*a));
    if (ctx == NULL || paths == NULL || owners == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    if (kt_record_load(paths->record_file, owners, &a->rec, &e, &local) == 0)
        a->have_rec = true;
    else if (e != ENOENT)
        return kt_error_set(err, local.kind, "%s", local.message);
    /* A record without "key" signs with the default key file (kt_device_select): that is the
     * key this device has, and what removing it takes away. */
    if (a->have_rec && a->rec.device_id != NULL && a->rec.key_ref == NULL &&
        (a->rec.key_ref = strdup(paths->key_file)) == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    if (kt_session_get_valid(ctx, paths, owners, &a->t, err) != 0)
        return -1;
    /* The bank lets any token see and remove devices; only a confirmed one may do so here, as
     * only a confirmed one is handed out by kontist-auth. */
    if (!a->t.confirmed)
        return kt_error_set(err, KT_ERR_NOT_CONFIRMED,
                            "the cached token is not confirmed by device MFA");
    if (!kt_token_string_ok(a->t.access_token))
        return kt_error_set(err, KT_ERR_PROTOCOL, "the cached access token is not printable");
    return 0;
}

/* This machine's device for the cached login's user: the record's, when it names that user. */
static const char *local_device(const kt_admin *a)
{
    if (!a->have_rec || a->rec.device_id == NULL)
        return NULL;
    if (a->t.username != NULL && a->rec.username != NULL &&
        strcasecmp(a->t.username, a->rec.username) != 0)
        return NULL;
    return a->rec.device_id;
}

static int fetch_marked(kt_ctx *ctx, const kt_admin *a, kt_device_list *out, kt_error *err)
{
    const char *mine = local_device(a);

    kt_ctx_start_deadline(ctx);
    if (kt_devices_fetch(ctx, a->t.access_token, out, err) != 0)
        return -1;
    for (size_t i = 0; i < out->count; i++)
        out->devices[i].this_machine = mine != NULL && strcmp(out->devices[i].id, mine) == 0;
    if (a->t.username != NULL && (out->username = strdup(a->t.username)) == NULL) {
        kt_device_list_free(out);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

int kt_devices_list(kt_ctx *ctx, const kt_paths *paths, const kt_owner_policy *owners,
                    kt_device_list *out, kt_error *err)
{
    kt_admin a;
    int rc = -1;

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (admin_start(ctx, paths, owners, &a, err) == 0)
        rc = fetch_marked(ctx, &a, out, err);
    admin_free(&a);
    return rc;
}

/* --- removing ----------------------------------------------------------------------------------
 */

bool kt_devices_key_is_ours(const kt_paths *paths, const char *key_ref)
{
    const char *path = key_ref, *base, *ext;
    size_t dir_len;

    if (paths == NULL || paths->config_dir == NULL || key_ref == NULL)
        return false;
    if (strncmp(key_ref, KT_TPM_REF_PREFIX, strlen(KT_TPM_REF_PREFIX)) == 0)
        path = key_ref + strlen(KT_TPM_REF_PREFIX);
    dir_len = strlen(paths->config_dir);
    if (path[0] != '/' || strncmp(path, paths->config_dir, dir_len) != 0 || path[dir_len] != '/')
        return false;
    base = path + dir_len + 1;
    /* Directly in the directory, named as enrolling names the files it makes. */
    if (strchr(base, '/') != NULL || strncmp(base, "device-key", 10) != 0)
        return false;
    ext = strrchr(base, '.');
    if (ext == NULL)
        return false;
    return path == key_ref ? strcmp(ext, ".pem") == 0 : strcmp(ext, ".tss2") == 0;
}

/* Removes a file, saying whether there was one. */
static kt_local_step remove_file(const char *path, kt_error *err)
{
    struct stat st;

    if (lstat(path, &st) != 0 && errno == ENOENT)
        return KT_LOCAL_NONE;
    return kt_file_remove(path, err) == 0 ? KT_LOCAL_REMOVED : KT_LOCAL_FAILED;
}

static void note_failure(kt_device_removal *out, const kt_error *local)
{
    if (out->local_error == NULL)
        out->local_error = strdup(local->message[0] != '\0' ? local->message : "unknown error");
}

/* This machine's tokens, record and key, in that order, once the bank removed its device. The
 * tokens first: they are what an attacker could still use; then the record, so that no record
 * ever names a key that is gone; the key only when the record went. */
static void forget_this_machine(const kt_device_removal_request *req, const kt_admin *a,
                                kt_device_removal *out)
{
    const char *id = out->device.id;
    kt_error local = {KT_OK, ""};
    bool removed = false;

    if (kt_session_forget_device(req->paths, id, &removed, &local) == 0)
        out->tokens = removed ? KT_LOCAL_REMOVED : KT_LOCAL_NONE;
    else
        out->tokens = KT_LOCAL_FAILED;
    if (out->tokens == KT_LOCAL_FAILED)
        note_failure(out, &local);
    kt_error_clear(&local);
    out->record = remove_file(req->paths->record_file, &local);
    if (out->record == KT_LOCAL_FAILED) {
        note_failure(out, &local);
        out->key = KT_LOCAL_KEPT;
        return;
    }
    kt_error_clear(&local);
    if (a->rec.key_ref == NULL) {
        out->key = KT_LOCAL_NONE;
    } else if (!kt_devices_key_is_ours(req->paths, a->rec.key_ref)) {
        out->key = KT_LOCAL_KEPT;
    } else {
        const char *path = a->rec.key_ref;

        if (strncmp(path, KT_TPM_REF_PREFIX, strlen(KT_TPM_REF_PREFIX)) == 0)
            path += strlen(KT_TPM_REF_PREFIX);
        out->key = remove_file(path, &local);
        if (out->key == KT_LOCAL_FAILED)
            note_failure(out, &local);
    }
}

/* The device to remove: the given id, checked, or this machine's. */
static int choose_device(const kt_device_removal_request *req, const kt_admin *a, const char **id,
                         kt_error *err)
{
    if (req->device_id != NULL) {
        if (!kt_device_id_ok(req->device_id))
            return kt_error_set(err, KT_ERR_BAD_REQUEST,
                                "not a device id: 1 to %d characters of A-Z, a-z, 0-9, _ and -",
                                KT_DEVICE_ID_MAX);
        *id = req->device_id;
        return 0;
    }
    if (!a->have_rec || a->rec.device_id == NULL)
        return kt_error_set(err, KT_ERR_NOT_ENROLLED, "this machine has no enrolled device");
    if (local_device(a) == NULL)
        return kt_error_set(err, KT_ERR_IDENTITY_MISMATCH,
                            "this machine's device record is for %s, not for %s",
                            a->rec.username != NULL ? a->rec.username : "(unknown)",
                            a->t.username != NULL ? a->t.username : "(unknown)");
    *id = a->rec.device_id;
    return 0;
}

static int copy_device(const kt_bound_device *from, kt_bound_device *to, kt_error *err)
{
    to->id = strdup(from->id);
    to->name = strdup(from->name);
    to->this_machine = from->this_machine;
    if (to->id == NULL || to->name == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return 0;
}

static int find_and_confirm(kt_ctx *ctx, const kt_device_removal_request *req, const kt_admin *a,
                            const char *id, kt_device_removal *out, kt_error *err)
{
    kt_device_list list;
    const kt_bound_device *found = NULL;
    int rc;

    if (fetch_marked(ctx, a, &list, err) != 0)
        return -1;
    for (size_t i = 0; i < list.count && found == NULL; i++)
        if (strcmp(list.devices[i].id, id) == 0)
            found = &list.devices[i];
    if (found == NULL)
        rc = kt_error_set(err, KT_ERR_BAD_REQUEST,
                          "the bank lists no device %s for %s (%zu device%s bound)", id,
                          a->t.username != NULL ? a->t.username : "this login", list.count,
                          list.count == 1 ? "" : "s");
    else
        rc = copy_device(found, &out->device, err);
    kt_device_list_free(&list);
    if (rc != 0 || req->confirm == NULL)
        return rc;
    rc = req->confirm(req->confirm_data, &out->device, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        return kt_error_set(err, KT_ERR_CONV, "device %s was not removed", id);
    return 0;
}

int kt_devices_remove(kt_ctx *ctx, const kt_device_removal_request *req, kt_device_removal *out,
                      kt_error *err)
{
    kt_admin a;
    const char *id = NULL;
    int rc = -1;

    if (out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    memset(out, 0, sizeof(*out));
    if (req == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    /* A malformed id is refused before anything is read or sent. */
    if (req->device_id != NULL && choose_device(req, NULL, &id, err) != 0)
        return -1;
    if (admin_start(ctx, req->paths, req->owners, &a, err) != 0)
        goto out;
    if (choose_device(req, &a, &id, err) != 0 || find_and_confirm(ctx, req, &a, id, out, err) != 0)
        goto out;
    /* The person may have taken their time to answer. */
    kt_ctx_start_deadline(ctx);
    if (kt_devices_delete(ctx, a.t.access_token, id, err) != 0)
        goto out;
    out->removed = true;
    if (out->device.this_machine) {
        /* Out of memory only leaves the front end without the key's name; the steps still run. */
        out->key_ref = kt_strdup_or_null(a.rec.key_ref);
        out->key_kind = kt_key_kind(a.rec.key_ref);
        forget_this_machine(req, &a, out);
    } else {
        /* Tokens another device confirmed are this removal's business too: they are dead. */
        kt_error local = {KT_OK, ""};
        bool removed = false;

        if (kt_session_forget_device(req->paths, id, &removed, &local) != 0) {
            out->tokens = KT_LOCAL_FAILED;
            note_failure(out, &local);
        } else {
            out->tokens = removed ? KT_LOCAL_REMOVED : KT_LOCAL_NONE;
        }
    }
    if (out->local_error != NULL ||
        (out->tokens == KT_LOCAL_FAILED || out->record == KT_LOCAL_FAILED ||
         out->key == KT_LOCAL_FAILED)) {
        kt_error_set(err, KT_ERR_IO,
                     "device %s was removed at the bank, but not everything here: %s", id,
                     out->local_error != NULL ? out->local_error : "out of memory");
        goto out;
    }
    rc = 0;
out:
    admin_free(&a);
    return rc;
}

void kt_device_removal_free(kt_device_removal *out)
{
    if (out == NULL)
        return;
    bound_device_free(&out->device);
    kt_secret_free(out->key_ref); /* a key URI may carry a PIN */
    free(out->local_error);
    memset(out, 0, sizeof(*out));
}
