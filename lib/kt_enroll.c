#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kontist.h"
#include "kt_file.h"
#include "kt_flow.h"
#include "kt_keys.h"
#include "kt_record.h"
#include "kt_session.h"
#include "kt_pkcs11.h"
#include "kt_token.h"

int kt_enroll_check_name(const char *name, kt_error *err)
{
    size_t len = strlen(name);

    if (len == 0 || len > KT_ENROLL_NAME_MAX)
        return kt_error_set(err, KT_ERR_CONFIG, "the device name must have 1 to %d characters",
                            KT_ENROLL_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        if (iscntrl((unsigned char)name[i]))
            return kt_error_set(err, KT_ERR_CONFIG,
                                "the device name must not contain control characters");
    return 0;
}

static char *default_name(kt_error *err)
{
    char host[256];
    char *out = NULL;

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    if (asprintf(&out, "kontist-auth on %.60s", host) < 0) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    return out;
}

/* Where a generated key goes: the default file, unless the current record still uses it (a
 * forced re-enrollment must not destroy the working key before the new device is verified). */
static char *new_key_path(const kt_paths *paths, const kt_device_record *old, kt_error *err)
{
    char *out = NULL;

    if (old->key_ref == NULL || strcmp(old->key_ref, paths->key_file) != 0)
        out = strdup(paths->key_file);
    else if (asprintf(&out, "%s/device-key-%lld.pem", paths->config_dir, (long long)time(NULL)) < 0)
        out = NULL;
    if (out == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return out;
}

/* The reference of a TPM key blob: tpm2:CONFIG_DIR/device-key.tss2, or a new name while the
 * current record still uses that one. */
static char *new_tpm_ref(const kt_paths *paths, const kt_device_record *old, kt_error *err)
{
    char *out = NULL;

    if (asprintf(&out, "tpm2:%s/device-key.tss2", paths->config_dir) >= 0 && old->key_ref != NULL &&
        strcmp(old->key_ref, out) == 0) {
        free(out);
        if (asprintf(&out, "tpm2:%s/device-key-%lld.tss2", paths->config_dir,
                     (long long)time(NULL)) < 0)
            out = NULL;
    }
    if (out == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    return out;
}

/* The current record; missing is fine, and a broken one only matters without force. */
static int check_existing(const kt_enroll_request *req, kt_device_record *old, kt_error *err)
{
    kt_error local = {KT_OK, ""};
    int e = 0;

    if (kt_record_load(req->paths->record_file, req->owners, old, &e, &local) != 0) {
        if (e == ENOENT || (req->force && local.kind == KT_ERR_CONFIG))
            return 0;
        return kt_error_set(err, local.kind, "%s", local.message);
    }
    if (old->device_id != NULL && !req->force)
        return kt_error_set(err, KT_ERR_ALREADY_ENROLLED,
                            "this machine is already enrolled as device %s for %s", old->device_id,
                            old->username != NULL ? old->username : "(unknown)");
    return 0;
}

typedef struct enrollment {
    const kt_enroll_request *req;
    kt_device_record old;
    kt_token_set t;
    EVP_PKEY *key;
    kt_binding binding;
    bool generated;   /* the key was made here (not given): saved once the device is verified */
    bool hardware;    /* ...in a TPM or on a token: removed there again when enrolling fails */
    bool key_written; /* a generated key is on disk: the rollback removes it */
} enrollment;

/* A key made in the TPM or on a token, before the bank is asked anything. Until the device is
 * verified only the TPM's transient copy (no blob file yet) or the token object exist. */
static int generate_hardware_key(enrollment *e, kt_device_record *rec, kt_error *err)
{
    const char *on = e->req->generate_on;
    char *where = strcmp(on, "tpm2") == 0 ? new_tpm_ref(e->req->paths, &e->old, err) : strdup(on);

    if (where == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    e->key = kt_key_generate_on(where, e->req->owners, &rec->key_ref, err);
    free(where);
    e->generated = e->hardware = e->key != NULL;
    return e->key == NULL ? -1 : 0;
}

/* A TPM in dictionary-attack lockout still makes and loads keys (the provider's parent is exempt
 * from DA protection) but signs with none of them: one signature finds that out before the bank
 * hears of a device. Every key but a token's signs once, whatever named it (tpm2:, handle:, any
 * other URI the tpm2 provider serves, a file), so no way of naming a TPM key escapes the check.
 * A token's key was just logged in to, and its signature may need a touch. */
static int check_key_signs(EVP_PKEY *key, kt_error *err)
{
    static const char probe[] = "kontist-auth: the device key signs";
    char *sig = NULL;
    int rc;

    if (kt_pkcs11_is_token_key(key))
        return 0;
    rc = kt_key_sign_hex(key, probe, sizeof(probe) - 1, &sig, err);
    free(sig);
    return rc;
}

/* Everything that can be checked before the bank is asked anything. */
static int prepare(kt_ctx *ctx, enrollment *e, kt_device_record *rec, kt_error *err)
{
    const kt_enroll_request *req = e->req;

    if (req->name != NULL && kt_enroll_check_name(req->name, err) != 0)
        return -1;
    if (req->key_ref != NULL && kt_key_ref_check(req->key_ref, err) != 0)
        return -1;
    /* The URI a key is generated on becomes the stored reference: the same rules. */
    if (req->key_ref == NULL && req->generate_on != NULL && kt_key_ref_is_token(req->generate_on) &&
        kt_key_ref_check(req->generate_on, err) != 0)
        return -1;
    if (check_existing(req, &e->old, err) != 0)
        return -1;
    if (kt_session_get_valid(ctx, req->paths, req->owners, &e->t, err) != 0)
        return -1;
    rec->username = strdup(e->t.username != NULL   ? e->t.username
                           : req->username != NULL ? req->username
                                                   : "");
    if (rec->username == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    if (rec->username[0] == '\0')
        return kt_error_set(err, KT_ERR_LOGIN_REQUIRED, "the cached login names no Kontist user");
    rec->name = req->name != NULL ? strdup(req->name) : default_name(err);
    if (rec->name == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    if (kt_dir_ensure_private(req->paths->config_dir, err) != 0)
        return -1;
    if (req->key_ref != NULL) {
        rec->key_ref = strdup(req->key_ref);
        if (rec->key_ref == NULL)
            return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        e->key = kt_key_load(rec->key_ref, req->owners, err);
        if (e->key == NULL)
            return -1;
    } else if (req->generate_on != NULL && generate_hardware_key(e, rec, err) != 0) {
        return -1;
    }
    /* A key just made persistent at a handle is evicted again by kt_enroll's rollback. */
    if (e->key != NULL && check_key_signs(e->key, err) != 0)
        return -1;
    if (kt_ctx_cancelled(ctx))
        return kt_error_set(err, KT_ERR_CONV, "cancelled");
    return 0;
}

/* A new key exists only once the binding request is confirmed, and only in memory until the bank
 * has verified the device: no failure, Ctrl-C or kill leaves a key behind. */
static int generate_key(enrollment *e, kt_device_record *rec, kt_error *err)
{
    rec->key_ref = new_key_path(e->req->paths, &e->old, err);
    if (rec->key_ref == NULL)
        return -1;
    e->key = kt_key_generate(err);
    e->generated = e->key != NULL;
    return e->key == NULL ? -1 : 0;
}

static int save(enrollment *e, const kt_device_record *rec, kt_error *err)
{
    kt_error undo = {KT_OK, ""};

    if (e->generated) {
        if (kt_key_save(e->key, rec->key_ref, err) != 0)
            return -1;
        e->key_written = !e->hardware;
    }
    if (kt_record_save(e->req->paths->record_file, rec, err) == 0)
        return 0;
    /* No record names the key: nothing would ever use or remove it. */
    if (e->key_written && kt_file_remove(rec->key_ref, &undo) == 0)
        e->key_written = false;
    return -1;
}

int kt_enroll(kt_ctx *ctx, const kt_enroll_request *req, kt_enroll_outcome *out, kt_error *err)
{
    enrollment e;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    memset(&e, 0, sizeof(e));
    e.req = req;
    out->step = KT_ENROLL_PREPARING;
    if (ctx == NULL || req == NULL || req->paths == NULL || req->owners == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "bad arguments");
    if (prepare(ctx, &e, &out->rec, err) != 0)
        goto out;
    out->step = KT_ENROLL_BINDING;
    if (kt_flow_bind(ctx, e.t.access_token, out->rec.name, req->confirm_timeout_s, &e.binding,
                     err) != 0)
        goto out;
    out->step = KT_ENROLL_DEVICE;
    if (e.key == NULL && generate_key(&e, &out->rec, err) != 0)
        goto out;
    if (kt_flow_enroll(ctx, e.t.access_token, out->rec.name, e.key, &e.binding, &out->rec.device_id,
                       err) != 0)
        goto out;
    out->step = KT_ENROLL_SAVING;
    if (save(&e, &out->rec, err) != 0)
        goto out;
    out->step = KT_ENROLL_DONE;
    rc = 0;
out:
    /* A key made on a token or persistent in the TPM for an enrollment that failed goes again. */
    if (rc != 0 && e.hardware)
        kt_key_discard(e.key, out->rec.key_ref);
    EVP_PKEY_free(e.key);
    kt_binding_free(&e.binding);
    kt_token_set_free(&e.t);
    kt_record_free(&e.old);
    return rc;
}

void kt_enroll_outcome_free(kt_enroll_outcome *out)
{
    if (out == NULL)
        return;
    kt_record_free(&out->rec);
    memset(out, 0, sizeof(*out));
}
