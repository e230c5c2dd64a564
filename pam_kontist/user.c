/* Who a local user is at Kontist. Root decides (the authfile's pin); the user's own files may
 * only supply the device for that identity. Anything the user, or code running as the user, can
 * write must not widen what a login accepts for that user: naming another Kontist account and a
 * key for it would otherwise pass sudo with that other account's password. */
#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <unistd.h>

#include "pam_helper.h"

/* Files below a user's home may belong to that user or to root. */
static void user_owners(const kt_pam_user *u, kt_owner_policy *owners)
{
    owners->allow_root = true;
    owners->allow_uid = true;
    owners->uid = u->uid;
}

typedef struct as_user_call {
    const kt_pam_user *u;
    int (*fn)(const kt_pam_user *, void *, kt_error *);
    void *data;
} as_user_call;

static int call_as_user(void *data, kt_error *err)
{
    as_user_call *call = data;

    return call->fn(call->u, call->data, err);
}

int kt_pam_as_user(const kt_pam_user *u, int (*fn)(const kt_pam_user *, void *, kt_error *),
                   void *data, kt_error *err)
{
    as_user_call call = {u, fn, data};
    /* With every group of the user's: a key reached through a group (the TPM's device node,
     * open to `tss`) must load here as it does in the user's own session. */
    int rc = kt_privs_run_as_user(u->name, u->uid, u->gid, call_as_user, &call, err);

    /* The kernel clears the parent-death signal whenever the effective identity changes: arm it
     * again, and stop if the module died in the meantime. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || (u->parent != 0 && getppid() != u->parent))
        return kt_error_set(err, KT_ERR_INTERNAL, "the module is gone");
    return rc;
}

typedef struct own_device {
    bool need_key;
    kt_device_selection sel;
} own_device;

/* As the user: a user must not make root read a file the user could not read (a link to
 * /etc/shadow, a key of someone else). */
static int read_own_device(const kt_pam_user *u, void *data, kt_error *err)
{
    own_device *d = data;
    kt_owner_policy owners;

    user_owners(u, &owners);
    return kt_device_select(u->paths.record_file, u->paths.key_file, &owners, u->rec.username,
                            d->need_key, &d->sel, err);
}

/* The device of a pinned user from the user's own record, which must name the pinned identity.
 * Root pinned this user: a missing or broken record is a failed login, never "not enrolled"
 * (which nouserok would turn into a fallback to the local password). */
static int load_own_device(kt_pam_user *u, bool need_key, kt_error *err)
{
    own_device d;
    int rc;

    memset(&d, 0, sizeof(d));
    d.need_key = need_key;
    rc = kt_pam_as_user(u, read_own_device, &d, err);
    if (rc != 0)
        ; /* the record or key could not be read: err says why */
    else if (d.sel.choice == KT_DEVICE_OTHER_USER)
        rc = kt_error_set(err, KT_ERR_IDENTITY_MISMATCH,
                          "the device record names another Kontist user than root's pin");
    else if (need_key && d.sel.choice == KT_DEVICE_NONE)
        rc = kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no device record names a bound device");
    else if (need_key) {
        u->rec.device_id = d.sel.rec.device_id;
        u->rec.key_ref = d.sel.rec.key_ref;
        d.sel.rec.device_id = d.sel.rec.key_ref = NULL;
        u->key = d.sel.key;
        d.sel.key = NULL;
        u->key_after_password = d.sel.key_after_password;
    }
    kt_device_selection_free(&d.sel);
    return rc;
}

/* With a device on the authfile line everything is root's: the line and the key it names. */
static int load_central_key(kt_pam_user *u, kt_error *err)
{
    kt_owner_policy owners;

    kt_pam_trusted_owners(&owners);
    if (kt_key_ref_is_hardware(u->rec.key_ref)) {
        /* Root's token or TPM key is opened after the password, like any hardware key; a token's
         * PIN is root's and comes from its pin-source file, never from the person logging in. */
        if (kt_key_ref_is_token(u->rec.key_ref) &&
            !kt_key_ref_has_attr(u->rec.key_ref, "pin-source"))
            return kt_error_set(err, KT_ERR_CONFIG,
                                "the authfile's pkcs11: key needs pin-source=file:... in its URI "
                                "(the PIN of a central key is never asked at login)");
        u->key_after_password = true;
        u->key_central = true;
        return 0;
    }
    u->key = kt_key_load(u->rec.key_ref, &owners, err);
    return u->key != NULL ? 0 : -1;
}

typedef struct hardware_key_load {
    kt_key_pin_fn ask;
    void *ask_data;
    EVP_PKEY *key;
} hardware_key_load;

/* As the user, like every key of the user's own device: the module, the token and any pin-source
 * file are opened with the user's rights. */
static int load_hardware_as_user(const kt_pam_user *u, void *data, kt_error *err)
{
    hardware_key_load *t = data;
    kt_owner_policy owners;

    user_owners(u, &owners);
    kt_key_set_pin_prompt(t->ask, t->ask_data);
    t->key = kt_key_load(u->rec.key_ref, &owners, err);
    kt_key_set_pin_prompt(NULL, NULL);
    return t->key != NULL ? 0 : -1;
}

EVP_PKEY *kt_pam_user_load_hardware_key(kt_pam_user *u, kt_key_pin_fn ask, void *ask_data,
                                        kt_error *err)
{
    hardware_key_load t = {ask, ask_data, NULL};

    if (u->key != NULL)
        return u->key;
    if (!u->key_after_password) {
        kt_error_set(err, KT_ERR_INTERNAL, "no hardware key to load");
        return NULL;
    }
    if (u->key_central) {
        kt_owner_policy owners;

        kt_pam_trusted_owners(&owners);
        /* No prompt at all: a central key without a usable pin-source fails. */
        kt_key_set_pin_prompt(NULL, NULL);
        u->key = kt_key_load(u->rec.key_ref, &owners, err);
        return u->key;
    }
    if (kt_pam_as_user(u, load_hardware_as_user, &t, err) != 0) {
        EVP_PKEY_free(t.key);
        return NULL;
    }
    u->key = t.key;
    return u->key;
}

int kt_pam_user_load(kt_pam_user *u, const char *authfile, bool authfile_missing_ok, bool need_key,
                     kt_error *err)
{
    if (kt_pam_authfile_lookup(authfile, authfile_missing_ok, u->name, &u->rec, err) != 0)
        return -1;
    u->pinned = true;
    if (u->rec.device_id != NULL)
        return need_key ? load_central_key(u, err) : 0;
    return load_own_device(u, need_key, err);
}

void kt_pam_user_free(kt_pam_user *u)
{
    if (u == NULL)
        return;
    kt_paths_free(&u->paths);
    kt_record_free(&u->rec);
    EVP_PKEY_free(u->key);
    memset(u, 0, sizeof(*u));
}
