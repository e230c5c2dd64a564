#include <config.h>

#include <stdlib.h>
#include <string.h>

#include <security/pam_ext.h>

#include "pam_kontist.h"

static void state_free(kt_pam_state *s)
{
    if (s == NULL)
        return;
    kt_token_set_free(&s->tokens);
    free(s->user);
    kt_wipe(s, sizeof(*s));
    free(s);
}

/* libpam calls this from pam_end and when the data is replaced: the tokens never outlive the
 * handle, whatever the application does. */
static void state_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
    state_free(data);
}

int kt_pam_state_save(pam_handle_t *pamh, const char *user, kt_token_set *tokens, kt_error *err)
{
    kt_pam_state *s = calloc(1, sizeof(*s));

    if (s == NULL || (s->user = strdup(user)) == NULL) {
        free(s);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    s->tokens = *tokens;
    memset(tokens, 0, sizeof(*tokens));
    if (pam_set_data(pamh, KT_PAM_DATA_TOKENS, s, state_cleanup) != PAM_SUCCESS) {
        state_free(s);
        return kt_error_set(err, KT_ERR_INTERNAL, "cannot keep the tokens in the PAM handle");
    }
    return 0;
}

void kt_pam_state_drop(pam_handle_t *pamh)
{
    /* Replacing the data runs the cleanup of what was there. */
    if (kt_pam_state_get(pamh) != NULL)
        pam_set_data(pamh, KT_PAM_DATA_TOKENS, NULL, NULL);
}

kt_pam_state *kt_pam_state_get(pam_handle_t *pamh)
{
    const void *data = NULL;

    if (pam_get_data(pamh, KT_PAM_DATA_TOKENS, &data) != PAM_SUCCESS)
        return NULL;
    return (kt_pam_state *)(uintptr_t)data;
}

/* Runs one cache operation with the user's identity, so the files end up owned by the user and
 * nothing outside what the user may write can be touched. */
static int as_user(const kt_pam_user *u, const kt_token_set *tokens, kt_error *err)
{
    kt_privs privs;
    kt_error restore_err = {0};
    int rc;

    memset(&privs, 0, sizeof(privs));
    if (kt_privs_drop(&privs, u->uid, u->gid, err) != 0)
        return -1;
    if (tokens != NULL)
        rc = kt_cache_store(&u->paths, tokens, err);
    else
        rc = kt_cache_erase(&u->paths, 0, err);
    if (kt_privs_restore(&privs, &restore_err) != 0) {
        *err = restore_err;
        err->kind = KT_ERR_INTERNAL;
        return -1;
    }
    return rc;
}

int kt_pam_cache_store(const kt_pam_user *u, const kt_token_set *tokens, kt_error *err)
{
    return as_user(u, tokens, err);
}

int kt_pam_cache_erase(const kt_pam_user *u, kt_error *err)
{
    return as_user(u, NULL, err);
}
