#include <config.h>

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <security/pam_modutil.h>

#include "pam_kontist.h"

/* Files below a user's home may belong to that user or to root. */
static void user_owners(const kt_pam_user *u, kt_owner_policy *owners)
{
    owners->allow_root = true;
    owners->allow_uid = true;
    owners->uid = u->uid;
}

int kt_pam_user_lookup(pam_handle_t *pamh, const char *name, kt_pam_user *u, bool *unknown,
                       kt_error *err)
{
    struct passwd *pw;

    memset(u, 0, sizeof(*u));
    *unknown = false;
    pw = pam_modutil_getpwnam(pamh, name);
    if (pw == NULL) {
        *unknown = true;
        return kt_error_set(err, KT_ERR_NOT_ENROLLED, "no such local user");
    }
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    u->name = strdup(name);
    if (u->name == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    if (kt_paths_for_home(&u->paths, pw->pw_dir, err) != 0) {
        kt_pam_user_free(u);
        return -1;
    }
    return 0;
}

/* The key a record points at, or the default place next to the record. */
static const char *key_ref(const kt_pam_user *u)
{
    return u->rec.key_ref != NULL ? u->rec.key_ref : u->paths.key_file;
}

/* Reads what the per-user files say, as the user: a user must not make root read a file the user
 * could not read (a link to /etc/shadow, a key of someone else). */
static int load_as_user(kt_pam_user *u, bool need_key, kt_error *err)
{
    kt_owner_policy owners;
    kt_privs privs;
    kt_error restore_err = {0};
    int rc;

    user_owners(u, &owners);
    memset(&privs, 0, sizeof(privs));
    if (kt_privs_drop(&privs, u->uid, u->gid, err) != 0)
        return -1;
    rc = kt_record_load(u->paths.record_file, &owners, &u->rec, NULL, err);
    if (rc == 0 && need_key && u->rec.device_id != NULL) {
        u->key = kt_key_load(key_ref(u), &owners, err);
        if (u->key == NULL)
            rc = -1;
    }
    if (kt_privs_restore(&privs, &restore_err) != 0) {
        /* Carrying on with the wrong identity is worse than any other failure: report this one. */
        *err = restore_err;
        err->kind = KT_ERR_INTERNAL;
        return -1;
    }
    return rc;
}

/* With an authfile everything is root's: the file and the keys it names. */
static int load_central(kt_pam_user *u, const char *authfile, bool need_key, kt_error *err)
{
    kt_owner_policy owners;

    if (kt_pam_authfile_lookup(authfile, u->name, &u->rec, err) != 0)
        return -1;
    if (!need_key || u->rec.device_id == NULL)
        return 0;
    kt_pam_trusted_owners(&owners);
    u->key = kt_key_load(u->rec.key_ref, &owners, err);
    return u->key != NULL ? 0 : -1;
}

int kt_pam_user_load(kt_pam_user *u, const kt_pam_args *args, kt_error *err)
{
    bool need_key = args->mfa == KT_PAM_MFA_DEVICE;
    int rc;

    if (args->authfile != NULL)
        rc = load_central(u, args->authfile, need_key, err);
    else
        rc = load_as_user(u, need_key, err);
    if (rc != 0)
        return -1;
    if (u->rec.username == NULL || u->rec.username[0] == '\0')
        return kt_error_set(err, KT_ERR_NOT_ENROLLED, "no Kontist username for this user");
    /* A record without a bound device names the Kontist user but cannot pass device MFA. */
    if (need_key && u->rec.device_id == NULL)
        return kt_error_set(err, KT_ERR_NOT_ENROLLED, "no device bound for this user");
    return 0;
}

void kt_pam_user_free(kt_pam_user *u)
{
    if (u == NULL)
        return;
    free(u->name);
    kt_paths_free(&u->paths);
    kt_record_free(&u->rec);
    EVP_PKEY_free(u->key);
    memset(u, 0, sizeof(*u));
}
