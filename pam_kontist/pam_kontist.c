/* pam_kontist: the PAM entry points. Authentication is the Kontist password grant followed by
 * device-challenge MFA signed with the user's device key; pam_setcred hands the confirmed token
 * set to the user's token cache, where `kontist-auth token` finds it. */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "pam_kontist.h"

#define PASSWORD_PROMPT "Kontist password: "

/* Everything one pam_sm_authenticate call works with; freed at its single exit. */
typedef struct auth_run {
    kt_pam_args args;
    kt_config cfg;
    bool cfg_loaded;
    const char *pam_user; /* owned by libpam */
    bool unknown_user;
    bool mapped; /* the user has a mapping here (device record or authfile line) */
    kt_pam_user user;
    const char *password;     /* owned by libpam (PAM_AUTHTOK) */
    bool password_from_stack; /* an earlier module's PAM_AUTHTOK, taken with try_first_pass */
    kt_token_set tokens;
    kt_error err;
} auth_run;

static int load_config(auth_run *r)
{
    kt_owner_policy owners;

    kt_config_init(&r->cfg);
    r->cfg_loaded = true;
    kt_pam_trusted_owners(&owners);
    if (kt_config_load_file(&r->cfg, r->args.config, &owners, false, NULL, &r->err) == 0) {
        if (r->args.login_timeout > 0)
            r->cfg.login_timeout = r->args.login_timeout;
        if (kt_config_validate(&r->cfg, &r->err) == 0)
            return 0;
    }
    /* Whatever went wrong with the file (content, owner, mode, missing), the service is
     * misconfigured. */
    if (r->err.kind != KT_ERR_INTERNAL)
        r->err.kind = KT_ERR_CONFIG;
    return -1;
}

static int get_user(pam_handle_t *pamh, auth_run *r)
{
    int rc = pam_get_user(pamh, &r->pam_user, NULL);

    if (rc == PAM_CONV_ERR || rc == PAM_CONV_AGAIN)
        return kt_error_set(&r->err, KT_ERR_CONV, "no user name from the conversation");
    if (rc != PAM_SUCCESS)
        return kt_error_set(&r->err, KT_ERR_INTERNAL, "no user name: %s", pam_strerror(pamh, rc));
    if (r->pam_user == NULL || r->pam_user[0] == '\0') {
        r->unknown_user = true;
        return kt_error_set(&r->err, KT_ERR_NOT_ENROLLED, "empty user name");
    }
    return 0;
}

static int map_user(pam_handle_t *pamh, auth_run *r)
{
    char user[128], kuser[128], where[256];

    if (kt_pam_user_lookup(pamh, r->pam_user, &r->user, &r->unknown_user, &r->err) != 0)
        return -1;
    if (kt_pam_user_load(&r->user, &r->args, &r->err) != 0)
        return -1;
    if (r->args.debug) {
        kt_pam_log_escape(r->pam_user, user, sizeof(user));
        kt_pam_log_escape(r->user.rec.username, kuser, sizeof(kuser));
        kt_pam_log_escape(r->args.authfile ? r->args.authfile : r->user.paths.record_file, where,
                          sizeof(where));
        kt_pam_debug(pamh, &r->args, "user=%s maps to kontist_user=%s device=%s via %s", user,
                     kuser, r->user.rec.device_id ? r->user.rec.device_id : "-", where);
    }
    return 0;
}

/* pam_get_authtok honours use_first_pass and try_first_pass from the module arguments and keeps
 * the answer as PAM_AUTHTOK for the modules after this one. Its failures all look alike
 * (PAM_AUTHTOK_ERR), so the one case that is not the conversation's is told apart first. */
static int get_password(pam_handle_t *pamh, auth_run *r)
{
    const void *earlier = NULL;
    const char *pw = NULL;
    int rc;

    if (pam_get_item(pamh, PAM_AUTHTOK, &earlier) != PAM_SUCCESS)
        earlier = NULL;
    if (r->args.use_first_pass && earlier == NULL)
        return kt_error_set(&r->err, KT_ERR_BAD_CREDENTIALS,
                            "use_first_pass: no password from an earlier module");
    r->password_from_stack = earlier != NULL && r->args.try_first_pass && !r->args.use_first_pass;
    rc = pam_get_authtok(pamh, PAM_AUTHTOK, &pw, PASSWORD_PROMPT);
    if (rc == PAM_BUF_ERR)
        return kt_error_set(&r->err, KT_ERR_INTERNAL, "out of memory");
    if (rc != PAM_SUCCESS)
        return kt_error_set(&r->err, KT_ERR_CONV, "no password from the conversation: %s",
                            pam_strerror(pamh, rc));
    if (pw == NULL || pw[0] == '\0')
        return kt_error_set(&r->err, KT_ERR_BAD_CREDENTIALS, "empty password");
    if (strlen(pw) > KT_PAM_PASSWORD_MAX)
        return kt_error_set(&r->err, KT_ERR_BAD_CREDENTIALS, "password too long");
    r->password = pw;
    return 0;
}

static int login(pam_handle_t *pamh, int flags, auth_run *r)
{
    kt_pam_conv_data conv_data;
    kt_conv conv;
    kt_login_params params = {
        .username = r->user.rec.username,
        .password = r->password,
        .device_id = r->args.mfa == KT_PAM_MFA_DEVICE ? r->user.rec.device_id : NULL,
        .key = r->args.mfa == KT_PAM_MFA_DEVICE ? r->user.key : NULL,
    };
    kt_ctx *ctx;
    int rc;

    kt_token_set_free(&r->tokens);
    kt_pam_conv_init(&conv, &conv_data, pamh, flags);
    ctx = kt_ctx_new(&r->cfg, &conv, &r->err);
    if (ctx == NULL)
        return -1;
    rc = kt_flow_login(ctx, &params, &r->tokens, &r->err);
    kt_pam_debug(pamh, &r->args, "login flow used %ld connection(s)",
                 kt_http_connections(ctx->http));
    kt_ctx_free(ctx);
    if (rc != 0)
        return -1;
    /* Device MFA passed only if the server says so in the token itself. */
    if (r->args.mfa == KT_PAM_MFA_DEVICE && !r->tokens.confirmed)
        return kt_error_set(&r->err, KT_ERR_PROTOCOL,
                            "the device challenge was accepted but the token is not confirmed");
    if (r->tokens.access_token == NULL)
        return kt_error_set(&r->err, KT_ERR_PROTOCOL, "the login gave no access token");
    return kt_pam_state_save(pamh, r->pam_user, &r->tokens, &r->err);
}

/* try_first_pass: the earlier module's password was not the Kontist one, so ask for that one,
 * as pam_unix does; the answer replaces PAM_AUTHTOK for the modules after this one. */
static int ask_again(pam_handle_t *pamh, auth_run *r)
{
    const void *item = NULL;
    char *answer = NULL;
    int rc;

    kt_error_clear(&r->err);
    rc = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", PASSWORD_PROMPT);
    if (rc != PAM_SUCCESS || answer == NULL) {
        kt_secret_free(answer);
        return kt_error_set(&r->err, KT_ERR_CONV, "no password from the conversation");
    }
    rc = pam_set_item(pamh, PAM_AUTHTOK, answer);
    kt_secret_free(answer);
    if (rc != PAM_SUCCESS || pam_get_item(pamh, PAM_AUTHTOK, &item) != PAM_SUCCESS || item == NULL)
        return kt_error_set(&r->err, KT_ERR_INTERNAL, "cannot keep the password");
    r->password = item;
    if (r->password[0] == '\0')
        return kt_error_set(&r->err, KT_ERR_BAD_CREDENTIALS, "empty password");
    if (strlen(r->password) > KT_PAM_PASSWORD_MAX)
        return kt_error_set(&r->err, KT_ERR_BAD_CREDENTIALS, "password too long");
    return 0;
}

static int authenticate(pam_handle_t *pamh, int flags, auth_run *r)
{
    int rc = -1;

    if (load_config(r) == 0 && get_user(pamh, r) == 0 && map_user(pamh, r) == 0) {
        r->mapped = true;
        if (get_password(pamh, r) == 0) {
            rc = login(pamh, flags, r);
            if (rc != 0 && r->err.kind == KT_ERR_BAD_CREDENTIALS && r->password_from_stack)
                rc = ask_again(pamh, r) == 0 ? login(pamh, flags, r) : -1;
        }
    }
    if (rc == 0)
        return PAM_SUCCESS;
    if (r->unknown_user)
        return PAM_USER_UNKNOWN;
    /* nouserok lets users without a mapping here through to the next module. A mapped user whose
     * device the bank no longer knows is not one of them: a device removed at the bank must not
     * switch the Kontist login off for that user. */
    return kt_pam_code_for_error(r->err.kind, r->args.nouserok && !r->mapped);
}

static void auth_run_free(auth_run *r)
{
    if (r->cfg_loaded)
        kt_config_free(&r->cfg);
    kt_pam_user_free(&r->user);
    kt_token_set_free(&r->tokens);
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    auth_run r;
    kt_pam_attempt attempt;
    int code;

    memset(&r, 0, sizeof(r));
    memset(&attempt, 0, sizeof(attempt));
    attempt.start_ms = kt_now_ms();
    /* Tokens of an earlier attempt on this handle must not survive a later failed one. */
    kt_pam_state_drop(pamh);
    if (kt_pam_args_parse(&r.args, argc, argv, &r.err) != 0)
        code = PAM_SERVICE_ERR;
    else
        code = authenticate(pamh, flags, &r);
    if (code != PAM_SUCCESS)
        pam_fail_delay(pamh, KT_PAM_FAIL_DELAY_USEC);
    attempt.mfa = r.args.mfa;
    attempt.user = r.pam_user;
    if (attempt.user == NULL) {
        /* Failed before asking for it: log the user the application named, without asking. */
        const void *item = NULL;

        if (pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS)
            attempt.user = item;
    }
    attempt.kontist_user = r.user.rec.username;
    attempt.device_id = r.args.mfa == KT_PAM_MFA_DEVICE ? r.user.rec.device_id : NULL;
    kt_pam_log_attempt(pamh, &attempt, code, &r.err);
    auth_run_free(&r);
    return code;
}

/* Parses the arguments of a non-auth entry point; a bad one is logged and ends the call. */
static int parse_args(pam_handle_t *pamh, kt_pam_args *args, int argc, const char **argv,
                      const char *what)
{
    kt_error err = {0};
    char reason[256];

    if (kt_pam_args_parse(args, argc, argv, &err) == 0)
        return 0;
    kt_pam_log_escape_text(err.message, reason, sizeof(reason));
    pam_syslog(pamh, LOG_ERR, "%s: configuration error: %s", what, reason);
    return -1;
}

/* The exit of every entry point but pam_sm_authenticate (which logs its attempt line). */
static int finish(pam_handle_t *pamh, const kt_pam_args *args, const char *what, const char *why,
                  int code)
{
    kt_pam_debug(pamh, args, "%s: %s: %s", what, why, kt_pam_code_name(code));
    return code;
}

/* The user the tokens were obtained for, resolved again for its home and ids. */
static int resolve(pam_handle_t *pamh, const char *name, kt_pam_user *u, int fail_code,
                   const char *what)
{
    kt_error err = {0};
    bool unknown = false;
    char escaped[128], reason[256];

    if (kt_pam_user_lookup(pamh, name, u, &unknown, &err) == 0)
        return PAM_SUCCESS;
    kt_pam_log_escape(name, escaped, sizeof(escaped));
    kt_pam_log_escape_text(err.message, reason, sizeof(reason));
    pam_syslog(pamh, LOG_ERR, "%s: user=%s error=%s reason=\"%s\"", what, escaped,
               kt_err_kind_name(err.kind), reason);
    return unknown ? PAM_USER_UNKNOWN : fail_code;
}

/* Stores tokens in, or (tokens NULL) removes, the token cache of the named user. */
static int cache_op(pam_handle_t *pamh, const char *name, const kt_token_set *tokens, int fail_code,
                    const char *what)
{
    kt_pam_user u;
    kt_error err = {0};
    char escaped[128], reason[256];
    int code = resolve(pamh, name, &u, fail_code, what);
    int rc;

    if (code != PAM_SUCCESS)
        return code;
    if (tokens != NULL)
        rc = kt_pam_cache_store(&u, tokens, &err);
    else
        rc = kt_pam_cache_erase(&u, &err);
    if (rc != 0) {
        kt_pam_log_escape(name, escaped, sizeof(escaped));
        kt_pam_log_escape_text(err.message, reason, sizeof(reason));
        pam_syslog(pamh, LOG_ERR, "%s: user=%s error=%s reason=\"%s\"", what, escaped,
                   kt_err_kind_name(err.kind), reason);
        code = fail_code;
    }
    kt_pam_user_free(&u);
    return code;
}

static int setcred_store(pam_handle_t *pamh, const kt_pam_args *args)
{
    kt_pam_state *s = kt_pam_state_get(pamh);
    const void *user = NULL;
    int code;

    if (s == NULL)
        return finish(pamh, args, "setcred", "no token set from pam_authenticate", PAM_IGNORE);
    /* sudo and su switch PAM_USER to the target user before pam_setcred: the tokens belong to
     * the person who authenticated and must not land in someone else's cache. */
    if (pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS || user == NULL ||
        strcmp(user, s->user) != 0)
        return finish(pamh, args, "setcred", "PAM_USER changed since authentication", PAM_IGNORE);
    code = cache_op(pamh, s->user, &s->tokens, PAM_CRED_ERR, "setcred");
    if (code == PAM_SUCCESS)
        s->stored = true;
    return finish(pamh, args, "setcred", "token cache written", code);
}

/* Removes what this handle established: a cache the user got elsewhere is not ours to drop. */
static int setcred_delete(pam_handle_t *pamh, const kt_pam_args *args)
{
    kt_pam_state *s = kt_pam_state_get(pamh);
    int code;

    if (s == NULL || !s->stored)
        return finish(pamh, args, "setcred delete", "nothing established on this handle",
                      PAM_IGNORE);
    code = cache_op(pamh, s->user, NULL, PAM_CRED_ERR, "setcred delete");
    if (code == PAM_SUCCESS)
        s->stored = false;
    return finish(pamh, args, "setcred delete", "token cache removed", code);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;

    if (parse_args(pamh, &args, argc, argv, "setcred") != 0)
        return PAM_SERVICE_ERR;
    switch (flags & ~PAM_SILENT) {
    case PAM_ESTABLISH_CRED:
    case PAM_REINITIALIZE_CRED:
    case PAM_REFRESH_CRED:
        return setcred_store(pamh, &args);
    case PAM_DELETE_CRED:
        return setcred_delete(pamh, &args);
    default:
        pam_syslog(pamh, LOG_ERR, "setcred: invalid flags 0x%x", (unsigned)flags);
        return PAM_CRED_ERR;
    }
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;

    if (parse_args(pamh, &args, argc, argv, "open_session") != 0)
        return PAM_SERVICE_ERR;
    /* The token cache is written by pam_setcred; opening a session adds nothing. */
    return finish(pamh, &args, "open_session", "nothing to do", PAM_IGNORE);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;
    const void *user = NULL;
    kt_pam_state *s;
    int code;

    if (parse_args(pamh, &args, argc, argv, "close_session") != 0)
        return PAM_SERVICE_ERR;
    if (!args.logout_on_close)
        return finish(pamh, &args, "close_session", "logout_on_close not set", PAM_IGNORE);
    if (pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS || user == NULL ||
        ((const char *)user)[0] == '\0') {
        pam_syslog(pamh, LOG_ERR, "close_session: no user");
        return PAM_SESSION_ERR;
    }
    code = cache_op(pamh, user, NULL, PAM_SESSION_ERR, "close_session");
    s = kt_pam_state_get(pamh);
    if (code == PAM_SUCCESS && s != NULL)
        s->stored = false;
    return finish(pamh, &args, "close_session", "token cache removed", code);
}

/* Account management is not this module's business (the Kontist account was checked when the
 * user authenticated): it says so with PAM_IGNORE rather than approving the account. */
PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;

    if (parse_args(pamh, &args, argc, argv, "acct_mgmt") != 0)
        return PAM_SERVICE_ERR;
    return finish(pamh, &args, "acct_mgmt", "no account management", PAM_IGNORE);
}

/* A Kontist password is changed with Kontist, not through PAM: refuse visibly. */
PAM_EXTERN int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;

    if (parse_args(pamh, &args, argc, argv, "chauthtok") != 0)
        return PAM_SERVICE_ERR;
    pam_syslog(pamh, LOG_NOTICE, "chauthtok: password changes are not supported");
    if ((flags & PAM_SILENT) == 0 && (flags & PAM_PRELIM_CHECK) != 0)
        pam_error(pamh, "The Kontist password cannot be changed here.");
    return finish(pamh, &args, "chauthtok", "not supported", PAM_AUTHTOK_ERR);
}
