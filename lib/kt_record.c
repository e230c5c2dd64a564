#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kt_file.h"
#include "kt_json.h"
#include "kt_record.h"
#include "kt_secret.h"
#include "kt_validate.h"

#define KT_RECORD_MAX_DEPTH 4

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static int get_member(json_object *obj, const char *key, bool required, char **out, kt_error *err)
{
    json_object *v;
    const char *s;

    if (!json_object_object_get_ex(obj, key, &v)) {
        if (required)
            return kt_error_set(err, KT_ERR_CONFIG, "device record has no \"%s\"", key);
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return kt_error_set(err, KT_ERR_CONFIG, "device record: \"%s\" is not a string", key);
    s = json_object_get_string(v);
    if ((size_t)json_object_get_string_len(v) != strlen(s) || s[0] == '\0' || has_control(s))
        return kt_error_set(err, KT_ERR_CONFIG, "device record: \"%s\" is empty or malformed", key);
    *out = strdup(s);
    if (*out == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return 0;
}

static json_object *parse_json(const char *text, size_t len, kt_error *err)
{
    json_tokener *tok;
    json_object *obj = NULL;
    size_t end;

    if (len > KT_RECORD_MAX_SIZE) {
        kt_error_set(err, KT_ERR_CONFIG, "device record larger than %d bytes", KT_RECORD_MAX_SIZE);
        return NULL;
    }
    if (memchr(text, '\0', len) != NULL) {
        kt_error_set(err, KT_ERR_CONFIG, "device record contains a NUL byte");
        return NULL;
    }
    /* Trailing data is allowed here only to be refused below with a clearer message. */
    tok =
        kt_json_tokener_new(KT_RECORD_MAX_DEPTH, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 |
                                                     JSON_TOKENER_ALLOW_TRAILING_CHARS);
    if (tok == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    obj = json_tokener_parse_ex(tok, text, (int)len);
    end = json_tokener_get_parse_end(tok);
    if (json_tokener_get_error(tok) == json_tokener_continue && end == len) {
        /* All input consumed but a bare scalar is not known to be complete: end it. */
        obj = json_tokener_parse_ex(tok, "", 1);
    }
    if (json_tokener_get_error(tok) != json_tokener_success) {
        kt_error_set(err, KT_ERR_CONFIG, "device record is not valid JSON");
        goto fail;
    }
    while (end < len && isspace((unsigned char)text[end]))
        end++;
    if (end != len) {
        kt_error_set(err, KT_ERR_CONFIG, "device record has data after the JSON object");
        goto fail;
    }
    /* json-c represents a JSON null as a NULL object. */
    if (obj == NULL || !json_object_is_type(obj, json_type_object)) {
        kt_error_set(err, KT_ERR_CONFIG, "device record is not a JSON object");
        goto fail;
    }
    kt_json_tokener_free_wiped(tok);
    return obj;
fail:
    kt_json_put_wiped(obj);
    kt_json_tokener_free_wiped(tok);
    return NULL;
}

int kt_record_parse(const char *text, size_t len, kt_device_record *rec, kt_error *err)
{
    json_object *obj;
    kt_device_record r = {0};
    int rc = -1;

    memset(rec, 0, sizeof(*rec));
    obj = parse_json(text, len, err);
    if (obj == NULL)
        return -1;
    /* Unknown members are ignored so that a newer version's record still loads. */
    if (get_member(obj, "username", true, &r.username, err) != 0 ||
        get_member(obj, "device_id", false, &r.device_id, err) != 0 ||
        get_member(obj, "key", false, &r.key_ref, err) != 0 ||
        get_member(obj, "name", false, &r.name, err) != 0)
        goto out;
    if (r.device_id != NULL && !kt_device_id_ok(r.device_id)) {
        kt_error_set(err, KT_ERR_CONFIG, "device record: \"device_id\" has invalid characters");
        goto out;
    }
    if (r.key_ref != NULL && !kt_key_ref_ok(r.key_ref)) {
        kt_error_set(err, KT_ERR_CONFIG,
                     "device record: \"key\" must be an absolute path or a key URI");
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

static int add_string(json_object *obj, const char *key, const char *value)
{
    json_object *v;

    if (value == NULL)
        return 0;
    v = json_object_new_string(value);
    if (v == NULL)
        return -1;
    if (json_object_object_add(obj, key, v) != 0) {
        kt_json_put_wiped(v);
        return -1;
    }
    return 0;
}

char *kt_record_serialize(const kt_device_record *rec)
{
    json_object *obj = json_object_new_object();
    char *text = NULL, *out = NULL;
    size_t len;

    if (obj == NULL)
        return NULL;
    if (add_string(obj, "username", rec->username) == 0 &&
        add_string(obj, "device_id", rec->device_id) == 0 &&
        add_string(obj, "key", rec->key_ref) == 0 && add_string(obj, "name", rec->name) == 0)
        text = kt_json_to_string(obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    /* The key reference may carry a PIN: no copy of the record is left unwiped. */
    if (text != NULL) {
        len = strlen(text);
        out = malloc(len + 2);
        if (out != NULL) {
            memcpy(out, text, len);
            out[len] = '\n';
            out[len + 1] = '\0';
        }
    }
    kt_secret_free(text);
    kt_json_put_wiped(obj);
    return out;
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
    if (rec->username == NULL || rec->username[0] == '\0' || has_control(rec->username))
        return kt_error_set(err, KT_ERR_INTERNAL, "device record without a valid username");
    if (rec->device_id != NULL && !kt_device_id_ok(rec->device_id))
        return kt_error_set(err, KT_ERR_INTERNAL, "device id has invalid characters");
    if (rec->key_ref != NULL && !kt_key_ref_ok(rec->key_ref))
        return kt_error_set(err, KT_ERR_INTERNAL, "key reference is not absolute");
    if (rec->name != NULL && (rec->name[0] == '\0' || has_control(rec->name)))
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
