#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kt_device.h"
#include "kt_keys.h"
#include "kt_record.h"
#include "kontist.h"

int kt_device_select(const char *record_path, const char *default_key,
                     const kt_owner_policy *owners, const char *username, bool load_key,
                     kt_device_selection *sel, kt_error *err)
{
    kt_error rerr = {KT_OK, ""};
    int errno_out = 0;

    memset(sel, 0, sizeof(*sel));
    sel->choice = KT_DEVICE_NONE;
    if (kt_record_load(record_path, owners, &sel->rec, &errno_out, &rerr) != 0)
        return errno_out == ENOENT ? 0 : kt_error_set(err, rerr.kind, "%s", rerr.message);
    if (username != NULL &&
        (sel->rec.username == NULL || strcasecmp(sel->rec.username, username) != 0)) {
        sel->choice = KT_DEVICE_OTHER_USER;
        return 0;
    }
    if (sel->rec.device_id == NULL)
        return 0;
    if (!kt_device_id_ok(sel->rec.device_id))
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "the device record's device id is malformed");
    sel->choice = KT_DEVICE_USE;
    if (!load_key)
        return 0;
    /* Hardware is not touched before the password is accepted: no PIN prompt that would tell who
     * has a token, no PIN try and no TPM authorization (a blob names its own parent, whose
     * failed authorization counts towards the TPM's dictionary-attack lockout) that a stranger's
     * wrong password could spend. */
    if (kt_key_ref_is_hardware(sel->rec.key_ref)) {
        sel->key_after_password = true;
        return 0;
    }
    sel->key = kt_key_load(sel->rec.key_ref != NULL ? sel->rec.key_ref : default_key, owners, err);
    return sel->key != NULL ? 0 : -1;
}

EVP_PKEY *kt_device_load_key(kt_device_selection *sel, const char *default_key,
                             const kt_owner_policy *owners, kt_error *err)
{
    if (sel->choice != KT_DEVICE_USE) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no device is selected");
        return NULL;
    }
    if (sel->key == NULL)
        sel->key =
            kt_key_load(sel->rec.key_ref != NULL ? sel->rec.key_ref : default_key, owners, err);
    return sel->key;
}

void kt_device_selection_free(kt_device_selection *sel)
{
    if (sel == NULL)
        return;
    kt_record_free(&sel->rec);
    EVP_PKEY_free(sel->key);
    memset(sel, 0, sizeof(*sel));
}

int kt_mfa_decide(const kt_mfa_order *order, const kt_device_selection *sel, int select_rc,
                  const kt_error *select_err, kt_mfa_decision *out, kt_error *err)
{
    /* A hardware key is opened only after the password: it counts as usable here, and one that
     * then fails ends the login, never passing on to another factor. */
    bool device_usable = select_rc == 0 && sel->choice == KT_DEVICE_USE &&
                         (sel->key != NULL || sel->key_after_password);
    /* Only "no device here" and "its key does not load" may move a login on to the next factor:
     * an unsafe or malformed file is the owner's to fix, not a reason to ask for something
     * else. */
    bool may_pass_over =
        select_rc == 0 || (select_err != NULL && select_err->kind == KT_ERR_KEY_UNUSABLE);

    memset(out, 0, sizeof(*out));
    if (order == NULL || order->count == 0)
        return kt_error_set(err, KT_ERR_INTERNAL, "no MFA factor to try");
    for (unsigned i = 0; i < order->count && i < KT_MFA_ORDER_MAX; i++) {
        switch (order->factor[i]) {
        case KT_MFA_NONE:
            out->factor = KT_MFA_NONE;
            return 0;
        case KT_MFA_DEVICE:
            if (device_usable) {
                out->factor = KT_MFA_DEVICE;
                return 0;
            }
            if (!may_pass_over)
                return kt_error_set(err, select_err->kind, "%s", select_err->message);
            if (select_rc != 0)
                snprintf(out->passed_over, sizeof(out->passed_over),
                         "the device key cannot be used (%.300s)", select_err->message);
            else if (sel->choice == KT_DEVICE_OTHER_USER && sel->rec.device_id != NULL)
                snprintf(out->passed_over, sizeof(out->passed_over),
                         "the device enrolled here belongs to another Kontist user");
            else
                snprintf(out->passed_over, sizeof(out->passed_over),
                         "no device is enrolled here for this user");
            break;
        case KT_MFA_PUSH:
            out->factor = KT_MFA_PUSH;
            return 0;
        }
    }
    if (select_rc != 0)
        return kt_error_set(err, select_err->kind, "%s", select_err->message);
    return kt_error_set(err, KT_ERR_NOT_ENROLLED, "%s, and device MFA is the only factor allowed",
                        out->passed_over[0] != '\0' ? out->passed_over
                                                    : "no device is enrolled here for this user");
}
