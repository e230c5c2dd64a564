/* Internals of pam_kontist.so, shared by its source files. Nothing here is exported: the version
 * script (pam_kontist.map) exports only the pam_sm_* entry points. */
#ifndef PAM_KONTIST_H
#define PAM_KONTIST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <security/pam_modules.h>

#include "kontist.h"

/* Delay requested from libpam on every failure, in microseconds. The application may handle it
 * itself through the PAM_FAIL_DELAY item. */
#define KT_PAM_FAIL_DELAY_USEC 2000000u
/* Bounds of login_timeout=: a flow must end well before sshd's LoginGraceTime (120 s). */
#define KT_PAM_LOGIN_TIMEOUT_MAX 110
/* The name under which the confirmed token set is kept in the PAM handle. */
#define KT_PAM_DATA_TOKENS "pam_kontist_tokens"
/* Passwords longer than this are refused before any network call. */
#define KT_PAM_PASSWORD_MAX 1024

/* --- module arguments (args.c) -------------------------------------------------------------- */

typedef enum kt_pam_mfa {
    KT_PAM_MFA_DEVICE = 0, /* password grant, then device-challenge MFA: a confirmed token */
    KT_PAM_MFA_NONE,       /* password grant only: an unconfirmed token */
} kt_pam_mfa;

typedef struct kt_pam_args {
    const char *config;   /* borrowed from argv; KT_SYSTEM_CONFIG when not given */
    const char *authfile; /* borrowed from argv; NULL: per-user device records */
    bool debug;
    bool nouserok;
    bool use_first_pass;
    bool try_first_pass;
    bool logout_on_close;
    kt_pam_mfa mfa;
    long login_timeout; /* 0: the configuration's */
} kt_pam_args;

/* Parses the module arguments strictly: an unknown or malformed argument is KT_ERR_CONFIG. */
int kt_pam_args_parse(kt_pam_args *args, int argc, const char **argv, kt_error *err);
const char *kt_pam_mfa_name(kt_pam_mfa mfa);

/* --- PAM codes (codes.c) -------------------------------------------------------------------- */

/* The PAM code for a failed flow. Never PAM_SUCCESS: a kind of KT_OK here is a bug and fails. */
int kt_pam_code_for_error(kt_err_kind kind, bool nouserok);
/* "PAM_AUTH_ERR" and friends, for logs. */
const char *kt_pam_code_name(int code);

/* --- users: who the PAM user is at Kontist (user.c, authfile.c) ----------------------------- */

typedef struct kt_pam_user {
    char *name; /* the local (PAM) user */
    uid_t uid;
    gid_t gid;
    kt_paths paths;       /* below the user's home, XDG variables ignored */
    kt_device_record rec; /* the mapping: Kontist username, device id, key reference */
    EVP_PKEY *key;        /* loaded with mfa=device */
} kt_pam_user;

/* Resolves the local user through the password database. A user the system does not know gives
 * KT_ERR_NOT_ENROLLED with *unknown set. */
int kt_pam_user_lookup(pam_handle_t *pamh, const char *name, kt_pam_user *u, bool *unknown,
                       kt_error *err);
/* Reads the user's mapping (per-user device record with privileges dropped to the user, or the
 * central authfile) and, with mfa=device, loads the device key. */
int kt_pam_user_load(kt_pam_user *u, const kt_pam_args *args, kt_error *err);
void kt_pam_user_free(kt_pam_user *u);

/* Who may own files the module reads as root: root, or, in a process that does not run as root,
 * that process's own user (nobody else can change what such a process does anyway). */
void kt_pam_trusted_owners(kt_owner_policy *owners);

/* The central authfile: one line per local user, `local-user kontist-username [device-id
 * key-ref]`, `#` comments. Parsed strictly; errors name file and line (KT_ERR_CONFIG). A user
 * without a line gives KT_ERR_NOT_ENROLLED. */
int kt_pam_authfile_parse(const char *name, const char *text, size_t len, const char *user,
                          kt_device_record *rec, kt_error *err);
int kt_pam_authfile_lookup(const char *path, const char *user, kt_device_record *rec,
                           kt_error *err);

/* --- credentials kept between pam_authenticate and pam_setcred (cred.c) --------------------- */

/* Takes over *tokens (left zeroed) and keeps them in the handle with a cleanup that wipes them. */
int kt_pam_state_save(pam_handle_t *pamh, const char *user, kt_token_set *tokens, kt_error *err);
/* Drops whatever an earlier pam_authenticate on this handle kept. */
void kt_pam_state_drop(pam_handle_t *pamh);
/* Writes or removes the user's token cache with privileges dropped to the user. */
int kt_pam_cache_store(const kt_pam_user *u, const kt_token_set *tokens, kt_error *err);
int kt_pam_cache_erase(const kt_pam_user *u, kt_error *err);

typedef struct kt_pam_state {
    char *user; /* the PAM user the tokens were obtained for */
    kt_token_set tokens;
    bool stored; /* pam_setcred wrote them to the user's cache */
} kt_pam_state;

kt_pam_state *kt_pam_state_get(pam_handle_t *pamh);

/* --- conversation (conv.c) ------------------------------------------------------------------ */

typedef struct kt_pam_conv_data {
    pam_handle_t *pamh;
    bool silent;
} kt_pam_conv_data;

void kt_pam_conv_init(kt_conv *conv, kt_pam_conv_data *data, pam_handle_t *pamh, int flags);

/* --- logging (log.c) ------------------------------------------------------------------------ */

typedef struct kt_pam_attempt {
    uint64_t start_ms;
    const char *user;         /* PAM user, may be NULL */
    const char *kontist_user; /* may be NULL */
    const char *device_id;    /* may be NULL */
    kt_pam_mfa mfa;
} kt_pam_attempt;

/* The one line an authentication attempt leaves in syslog (LOG_AUTHPRIV): service, user, rhost,
 * Kontist username, device id, outcome, PAM code, duration and, on failure, the reason. */
void kt_pam_log_attempt(pam_handle_t *pamh, const kt_pam_attempt *a, int code, const kt_error *err);
/* Copies `in` into out (size > 0) with everything but visible, harmless ASCII escaped as \xNN, so a
 * user name or a server message cannot forge log fields or lines. NULL or "" gives "-". */
void kt_pam_log_escape(const char *in, char *out, size_t size);
/* The same for a message: spaces are kept, quotes, backslashes and control bytes escaped. */
void kt_pam_log_escape_text(const char *in, char *out, size_t size);
/* Debug lines, only with the `debug` argument. */
void kt_pam_debug(pam_handle_t *pamh, const kt_pam_args *args, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
