#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kt_file.h"
#include "kt_json.h"
#include "kt_record.h"
#include "kt_secret.h"
#include "kt_util.h"
#include "kt_validate.h"

#define KT_RECORD_MAX_DEPTH 4

/* Unknown members are ignored so that a newer version's record still loads. */
static const kt_json_doc record_doc = {"device record", KT_ERR_CONFIG, KT_RECORD_MAX_SIZE,
                                       KT_RECORD_MAX_DEPTH};

static int get_member(json_object *obj, const char *key, bool required, char **out, kt_error *err)
{
    return kt_json_string(&record_doc, obj, key,
                          (required ? KT_JSON_REQUIRED : 0u) | KT_JSON_PRINTABLE, 0, out, err);
}

int kt_record_parse(const char *text, size_t len, kt_device_record *rec, kt_error *err)
{
    json_object *obj;
    kt_device_record r = {0};
    kt_error kerr = {KT_OK, ""};
    int rc = -1;

    memset(rec, 0, sizeof(*rec));
    obj = kt_json_parse_doc(&record_doc, text, len, err);
    if (obj == NULL)
        return -1;
    if (get_member(obj, "username", true, &r.username, err) != 0 ||
        get_member(obj, "device_id", false, &r.device_id, err) != 0 ||
        get_member(obj, "key", false, &r.key_ref, err) != 0 ||
        get_member(obj, "name", false, &r.name, err) != 0)
        goto out;
    if (r.device_id != NULL && !kt_device_id_ok(r.device_id)) {
        kt_error_set(err, KT_ERR_CONFIG, "device record: \"device_id\" has invalid characters");
        goto out;
    }
    if (r.key_ref != NULL && kt_key_ref_check(r.key_ref, &kerr) != 0) {
        kt_error_set(err, KT_ERR_CONFIG, "device record: \"key\": %s", kerr.message);
        goto out;
    }
    *rec = r;
    memset(&r, 0, sizeof(r));
    rc = 0;
out:
    kt_record_free(&r);
    kt_json_put_wiped(obj);
    return rc;
}

char *kt_record_serialize(const kt_device_record *rec)
{
    kt_json_writer w;

    /* The key reference may carry a PIN: the writer leaves no copy of the record unwiped. */
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_PRETTY | KT_JSON_STYLE_FILE);
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "username", rec->username);
    kt_json_put_string(&w, "device_id", rec->device_id);
    kt_json_put_string(&w, "key", rec->key_ref);
    kt_json_put_string(&w, "name", rec->name);
    kt_json_close(&w);
    return kt_json_writer_finish(&w, NULL);
}

int kt_record_load(const char *path, const kt_owner_policy *owners, kt_device_record *rec,
                   int *errno_out, kt_error *err)
{
    kt_file_policy policy = {
        .owners = *owners, .private_read = true, .max_size = KT_RECORD_MAX_SIZE};
    kt_error perr = {KT_OK, ""};
    char *data = NULL;
    size_t len = 0;
    int e = 0, rc;

    memset(rec, 0, sizeof(*rec));
    if (errno_out != NULL)
        *errno_out = 0;
    if (kt_file_read(path, &policy, &data, &len, &e, &perr) != 0) {
        if (errno_out != NULL)
            *errno_out = e;
        if (e == ENOENT)
            return kt_error_set(err, KT_ERR_NOT_ENROLLED, "no device record at %s", path);
        return kt_error_set(err, perr.kind, "%s", perr.message);
    }
    rc = kt_record_parse(data, len, rec, &perr);
    if (rc != 0)
        kt_error_set(err, perr.kind, "%s: %s", path, perr.message);
    kt_wipe(data, len);
    free(data);
    return rc;
}

static int check_for_save(const kt_device_record *rec, kt_error *err)
{
    if (rec->username == NULL || rec->username[0] == '\0' || kt_has_control(rec->username))
        return kt_error_set(err, KT_ERR_INTERNAL, "device record without a valid username");
    if (rec->device_id != NULL && !kt_device_id_ok(rec->device_id))
        return kt_error_set(err, KT_ERR_INTERNAL, "device id has invalid characters");
    if (rec->key_ref != NULL && !kt_key_ref_ok(rec->key_ref))
        return kt_error_set(err, KT_ERR_INTERNAL, "key reference is not absolute");
    if (rec->name != NULL && (rec->name[0] == '\0' || kt_has_control(rec->name)))
        return kt_error_set(err, KT_ERR_INTERNAL, "device name is empty or malformed");
    return 0;
}

int kt_record_save(const char *path, const kt_device_record *rec, kt_error *err)
{
    const char *slash = path != NULL ? strrchr(path, '/') : NULL;
    char *dir = NULL, *text = NULL;
    int rc = -1;

    if (slash == NULL || path[0] != '/')
        return kt_error_set(err, KT_ERR_IO, "%s: not an absolute path", path ? path : "(null)");
    if (check_for_save(rec, err) != 0)
        return -1;
    dir = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    text = kt_record_serialize(rec);
    if (dir == NULL || text == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (kt_dir_ensure_private(dir, err) != 0)
        goto out;
    rc = kt_file_write_atomic(path, text, strlen(text), 0600, err);
out:
    free(dir);
    kt_secret_free(text);
    return rc;
}

void kt_record_free(kt_device_record *rec)
{
    if (rec == NULL)
        return;
    free(rec->username);
    free(rec->device_id);
    kt_secret_free(rec->key_ref); /* a key URI may carry a PIN */
    free(rec->name);
    memset(rec, 0, sizeof(*rec));
}
