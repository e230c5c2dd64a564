/* pam_kontist: the PAM entry points. Authentication is the Kontist password grant followed by
 * device-challenge MFA signed with the user's device key, run by kontist-pam-helper (spawn.c).
 *
 * Where the token goes: the helper writes the confirmed token set into the user's token cache
 * during pam_authenticate, with the user's identity. Keeping it in the PAM handle until
 * pam_setcred does not work in every host: OpenSSH runs keyboard-interactive authentication in a
 * separate process that exits without pam_end, so data kept with pam_set_data never reaches the
 * pam_setcred of the session, and a root-owned stash handed over through the PAM environment
 * (pam_krb5's way) would need a spool that some process must clean up after every abandoned
 * login. The user's cache is what `kontist-auth login` would write anyway; a failed login never
 * writes it. */
#include <config.h>

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_PASSWORD
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include "pam_kontist.h"

/* Everything one pam_sm_authenticate call works with. */
typedef struct auth_run {
    kt_pam_args args;
    pam_handle_t *pamh;
    const char *pam_user; /* owned by libpam */
    const char *password; /* owned by libpam (PAM_AUTHTOK), which wipes it at pam_end */
    kt_pam_result res;
} auth_run;

/* The helper has created a push challenge and polls it: the person is told now, with a prompt
 * (see KT_PAM_PUSH_PROMPT for why not an info message). Whatever is typed is thrown away; the
 * login goes on when the helper answers, approved or not. */
static int tell_push_wait(void *data, long seconds_left)
{
    auth_run *r = data;
    char *answer = NULL;
    int rc;

    rc = pam_prompt(r->pamh, PAM_PROMPT_ECHO_ON, &answer, KT_PAM_PUSH_PROMPT, seconds_left / 60,
                    seconds_left % 60);
    if (answer != NULL) {
        explicit_bzero(answer, strlen(answer));
        free(answer);
    }
    return rc == PAM_SUCCESS ? 0 : -1;
}

/* A device passed over for push is logged: the admin allowed both, but should see why. */
static void log_passed_over(pam_handle_t *pamh, const auth_run *r)
{
    char user[128], reason[300];

    if (r->res.passed_over[0] == '\0')
        return;
    kt_pam_log_escape(r->pam_user, user, sizeof(user));
    kt_pam_log_escape_text(r->res.passed_over, reason, sizeof(reason));
    pam_syslog(pamh, LOG_NOTICE, "auth user=%s no device MFA, push instead: %s", user, reason);
}

static int get_user(pam_handle_t *pamh, auth_run *r)
{
    int rc = pam_get_user(pamh, &r->pam_user, NULL);

    if (rc == PAM_CONV_ERR || rc == PAM_CONV_AGAIN)
        return kt_error_set(&r->res.err, KT_ERR_CONV, "no user name from the conversation");
    if (rc != PAM_SUCCESS)
        return kt_error_set(&r->res.err, KT_ERR_INTERNAL, "no user name: %s",
                            pam_strerror(pamh, rc));
    return 0;
}

/* pam_get_authtok honours use_first_pass and try_first_pass from the module arguments and keeps
 * the answer as PAM_AUTHTOK for the modules after this one. It is asked before anything is
 * known about the user, with the same prompt for everyone, so that neither whether a prompt
 * comes nor what it says depends on the account. */
static int get_password(pam_handle_t *pamh, auth_run *r)
{
    const void *earlier = NULL;
    const char *pw = NULL;
    int rc;

    if (pam_get_item(pamh, PAM_AUTHTOK, &earlier) != PAM_SUCCESS)
        earlier = NULL;
    if (r->args.use_first_pass && earlier == NULL)
        return kt_error_set(&r->res.err, KT_ERR_BAD_CREDENTIALS,
                            "use_first_pass: no password from an earlier module");
    rc = pam_get_authtok(pamh, PAM_AUTHTOK, &pw, KT_PAM_PROMPT);
    if (rc == PAM_BUF_ERR)
        return kt_error_set(&r->res.err, KT_ERR_INTERNAL, "out of memory");
    if (rc != PAM_SUCCESS)
        return kt_error_set(&r->res.err, KT_ERR_CONV, "no password from the conversation: %s",
                            pam_strerror(pamh, rc));
    if (pw == NULL || pw[0] == '\0')
        return kt_error_set(&r->res.err, KT_ERR_BAD_CREDENTIALS, "empty password");
    if (strlen(pw) > KT_PAM_PASSWORD_MAX)
        return kt_error_set(&r->res.err, KT_ERR_BAD_CREDENTIALS, "password too long");
    r->password = pw;
    return 0;
}

/* The local user as the host's name service sees it (nss modules the helper might not load). */
static int lookup_user(pam_handle_t *pamh, const char *name, kt_pam_local_user *u, kt_error *err)
{
    struct passwd *pw = name[0] != '\0' ? pam_modutil_getpwnam(pamh, name) : NULL;

    /* The account's own name, not what was typed: with a name service that ignores case (sssd),
     * "ALICE" finds alice's entry, and alice's pin must apply. */
    if (pw == NULL || pw->pw_dir == NULL || pw->pw_dir[0] != '/' || pw->pw_name == NULL)
        return kt_error_set(err, KT_ERR_NO_SUCH_USER, "no such local user");
    u->name = pw->pw_name;
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    u->home = pw->pw_dir;
    return 0;
}

static void log_cache(pam_handle_t *pamh, const auth_run *r)
{
    char user[128], reason[300];

    if (strcmp(r->res.cache, "failed") != 0) {
        kt_pam_debug(pamh, &r->args, "token cache: %s", r->res.cache[0] ? r->res.cache : "-");
        return;
    }
    /* The login stands: a full disk or a broken cache must not lock the person out. */
    kt_pam_log_escape(r->pam_user, user, sizeof(user));
    kt_pam_log_escape_text(r->res.cache_reason, reason, sizeof(reason));
    pam_syslog(pamh, LOG_WARNING, "auth user=%s token cache not written: %s", user, reason);
}

/* The device key is on a token that needs a PIN: the helper asks for it once, after the bank has
 * accepted the password, and this asks the person in the same conversation. A wrong PIN is the
 * helper's error, never a reason to ask again (the token counts failed attempts and locks). */
static int ask_token_pin(void *data, const char *token, char **pin)
{
    pam_handle_t *pamh = data;
    char label[64];
    char *answer = NULL;
    int rc;

    *pin = NULL;
    /* The label comes from the token: only printable ASCII of it reaches the prompt. */
    kt_pam_log_escape_text(token, label, sizeof(label));
    rc = pam_prompt(pamh, PAM_PROMPT_ECHO_OFF, &answer, "PIN for token \"%s\": ", label);
    if (rc != PAM_SUCCESS || answer == NULL || answer[0] == '\0') {
        if (answer != NULL) {
            explicit_bzero(answer, strlen(answer));
            free(answer);
        }
        return -1;
    }
    *pin = answer;
    return 0;
}

static int authenticate(pam_handle_t *pamh, auth_run *r)
{
    kt_pam_local_user local;
    kt_pam_pin_asker pins = {ask_token_pin, pamh};
    kt_pam_notice notice = {tell_push_wait, r};

    if (get_user(pamh, r) != 0 || get_password(pamh, r) != 0)
        return kt_pam_code_for_error(r->res.err.kind, false);
    /* A user the system does not know is no user nouserok could let through. */
    if (lookup_user(pamh, r->pam_user, &local, &r->res.err) != 0)
        return PAM_USER_UNKNOWN;
    kt_pam_run_helper(&r->args, KT_PAM_OP_LOGIN, &local, r->password, &pins,
                      kt_pam_mfa_has_push(r->args.mfa) ? &notice : NULL, &r->res);
    log_passed_over(pamh, r);
    if (r->res.err.kind == KT_OK) {
        log_cache(pamh, r);
        return PAM_SUCCESS;
    }
    /* nouserok lets users root has not pinned through to the next module. A pinned user is not
     * one of them, whatever their own files say: deleting or breaking a device record must not
     * switch the Kontist login off for that user. */
    return kt_pam_code_for_error(r->res.err.kind, r->args.nouserok && !r->res.pinned);
}

/* Sleeps until floor_ms after start_ms: see KT_PAM_FAIL_FLOOR_MS. */
static void wait_for_floor(uint64_t start_ms, long floor_ms)
{
    uint64_t until = start_ms + (uint64_t)floor_ms;
    uint64_t now;

    while ((now = kt_now_ms()) < until) {
        struct timespec ts = {(time_t)((until - now) / 1000),
                              (long)((until - now) % 1000) * 1000000};

        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            break;
    }
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    auth_run r;
    kt_pam_attempt attempt;
    int code;

    (void)flags;
    memset(&r, 0, sizeof(r));
    r.pamh = pamh;
    memset(&attempt, 0, sizeof(attempt));
    attempt.start_ms = kt_now_ms();
    /* Asked for up front, so that every failure below, early or late, takes at least as long. */
    pam_fail_delay(pamh, KT_PAM_FAIL_DELAY_USEC);
    if (kt_pam_args_parse(&r.args, argc, argv, &r.res.err) != 0)
        code = PAM_SERVICE_ERR;
    else
        code = authenticate(pamh, &r);
    if (code != PAM_SUCCESS)
        wait_for_floor(attempt.start_ms, r.args.fail_floor_ms);
    attempt.mfa = r.args.mfa;
    attempt.user = r.pam_user;
    if (attempt.user == NULL) {
        /* Failed before asking for it: log the user the application named, without asking. */
        const void *item = NULL;

        if (pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS)
            attempt.user = item;
    }
    attempt.kontist_user = r.res.kontist_user[0] ? r.res.kontist_user : NULL;
    attempt.device_id = r.res.device_id[0] ? r.res.device_id : NULL;
    attempt.factor = r.res.factor[0] ? r.res.factor : NULL;
    kt_pam_debug(pamh, &r.args, "login flow used %s connection(s)",
                 r.res.connections[0] ? r.res.connections : "0");
    kt_pam_log_attempt(pamh, &attempt, code, &r.res.err);
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

/* Credentials were handed over during pam_authenticate (see the top of this file), so there is
 * nothing left to establish or delete. PAM_SUCCESS, not PAM_IGNORE: when this module is the only
 * one in the auth stack, libpam turns an all-PAM_IGNORE pam_setcred into PAM_PERM_DENIED and
 * sshd, su and login would end a session whose login succeeded. Nothing here can fail a login. */
PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;

    if (parse_args(pamh, &args, argc, argv, "setcred") != 0)
        memset(&args, 0, sizeof(args));
    return finish(pamh, &args, "setcred",
                  (flags & PAM_DELETE_CRED) != 0 ? "the cache stays (logout_on_close removes it)"
                                                 : "token cache written during authentication",
                  PAM_SUCCESS);
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;

    (void)flags;
    if (parse_args(pamh, &args, argc, argv, "open_session") != 0)
        return PAM_SERVICE_ERR;
    /* The token cache was written during authentication; opening a session adds nothing. */
    return finish(pamh, &args, "open_session", "nothing to do", PAM_IGNORE);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;
    kt_pam_local_user local;
    kt_pam_result res;
    const void *user = NULL;
    char escaped[128], reason[300];

    (void)flags;
    if (parse_args(pamh, &args, argc, argv, "close_session") != 0)
        return PAM_SERVICE_ERR;
    if (!args.logout_on_close)
        return finish(pamh, &args, "close_session", "logout_on_close not set", PAM_IGNORE);
    memset(&res, 0, sizeof(res));
    if (pam_get_item(pamh, PAM_USER, &user) != PAM_SUCCESS || user == NULL ||
        lookup_user(pamh, user, &local, &res.err) != 0) {
        pam_syslog(pamh, LOG_ERR, "close_session: no such user");
        return PAM_SESSION_ERR;
    }
    kt_pam_run_helper(&args, KT_PAM_OP_LOGOUT, &local, NULL, NULL, NULL, &res);
    if (res.err.kind != KT_OK) {
        kt_pam_log_escape(user, escaped, sizeof(escaped));
        kt_pam_log_escape_text(res.err.message, reason, sizeof(reason));
        pam_syslog(pamh, LOG_ERR, "close_session: user=%s error=%s reason=\"%s\"", escaped,
                   kt_err_kind_name(res.err.kind), reason);
        return PAM_SESSION_ERR;
    }
    return finish(pamh, &args, "close_session", "token cache removed", PAM_SUCCESS);
}

/* Account management is not this module's business (the Kontist account was checked when the
 * user authenticated): it says so with PAM_IGNORE rather than approving the account. */
PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    kt_pam_args args;

    (void)flags;
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
