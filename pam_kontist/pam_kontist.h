/* Internals of pam_kontist.so, shared by its source files. Nothing here is exported: the version
 * script (pam_kontist.map) exports only the pam_sm_* entry points.
 *
 * The module itself never talks to the network, reads the client secret or holds a token: it
 * asks for the password and runs kontist-pam-helper, a short-lived process that does the rest
 * (see helper_main.c). So libcurl, OpenSSL and json-c are never loaded into sshd, sudo or login,
 * and nothing they allocate can stay behind in the host's heap. */
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
/* A failed authentication returns no sooner than this many milliseconds after it began, so that
 * a failure found locally (unknown or unpinned user) takes as long as one the bank answered;
 * libpam's own delay (pam_fail_delay) is random and added after, so it does not hide the
 * difference by itself. fail_floor_ms= changes it. */
#define KT_PAM_FAIL_FLOOR_MS 1000
#define KT_PAM_FAIL_FLOOR_MAX_MS 10000
/* Bounds of login_timeout=: a flow must end well before sshd's LoginGraceTime (120 s). It also
 * bounds the wait for a push MFA approval. */
#define KT_PAM_LOGIN_TIMEOUT_MAX 110
/* Passwords longer than this are refused before any network call. */
#define KT_PAM_PASSWORD_MAX 1024
/* The one prompt, the same for every user name: what it says must not depend on whether the
 * account exists or is enrolled, or the prompt itself tells an attacker which accounts do. */
#define KT_PAM_PROMPT "Password: "
/* The prompt of a push wait: an echoing prompt, because OpenSSH holds back PAM_TEXT_INFO messages
 * of keyboard-interactive authentication until the next prompt, so an info line would reach the
 * person only after the wait. The answer (Enter) is thrown away; the helper polls meanwhile. */
#define KT_PAM_PUSH_PROMPT                                                                         \
    "Confirm the login in the Kontist app (%ld:%02ld left), then press Enter: "
/* Where the module finds kontist-pam-helper unless helper= says otherwise; the build sets it to
 * $(pkglibexecdir)/kontist-pam-helper. */
#ifndef KT_PAM_HELPER_PATH
#define KT_PAM_HELPER_PATH "/usr/local/libexec/kontist-auth/kontist-pam-helper"
#endif
/* Where root pins local users to Kontist identities unless authfile= says otherwise. */
#define KT_PAM_DEFAULT_AUTHFILE "/etc/kontist/users"

/* --- module arguments (args.c) -------------------------------------------------------------- */

typedef enum kt_pam_mfa {
    KT_PAM_MFA_DEVICE = 0,  /* password grant, then device-challenge MFA: a confirmed token */
    KT_PAM_MFA_NONE,        /* password grant only: an unconfirmed token */
    KT_PAM_MFA_PUSH,        /* password grant, then push MFA approved in the Kontist app */
    KT_PAM_MFA_DEVICE_PUSH, /* device MFA when the user has a usable device here, else push */
    KT_PAM_MFA_PUSH_DEVICE, /* push first: the device is never needed */
} kt_pam_mfa;

/* Whether a mode may start a push challenge (and so needs a conversation that can prompt). */
bool kt_pam_mfa_has_push(kt_pam_mfa mfa);

typedef struct kt_pam_args {
    const char *config;   /* borrowed from argv; KT_SYSTEM_CONFIG when not given */
    const char *authfile; /* borrowed from argv; KT_PAM_DEFAULT_AUTHFILE when not given */
    bool authfile_given;
    const char *helper; /* borrowed from argv; KT_PAM_HELPER_PATH when not given */
    bool debug;
    bool nouserok;
    bool use_first_pass;
    bool try_first_pass;
    bool logout_on_close;
    bool nocache;
    kt_pam_mfa mfa;
    long login_timeout; /* 0: the configuration's */
    long fail_floor_ms; /* a failure returns no sooner than this after the call began */
} kt_pam_args;

/* Parses the module arguments strictly: an unknown or malformed argument is KT_ERR_CONFIG. */
int kt_pam_args_parse(kt_pam_args *args, int argc, const char **argv, kt_error *err);
const char *kt_pam_mfa_name(kt_pam_mfa mfa);

/* --- PAM codes (codes.c) -------------------------------------------------------------------- */

/* The PAM code for a failed flow. Never PAM_SUCCESS: a kind of KT_OK here is a bug and fails.
 * nouserok is true only for a user root has not pinned to a Kontist identity. */
int kt_pam_code_for_error(kt_err_kind kind, bool nouserok);
/* "PAM_AUTH_ERR" and friends, for logs. */
const char *kt_pam_code_name(int code);
/* The kind named by kt_err_kind_name(), or KT_ERR_INTERNAL for a name it never gives. */
kt_err_kind kt_pam_kind_from_name(const char *name);

/* --- the helper process (spawn.c) ----------------------------------------------------------- */

typedef enum kt_pam_op {
    KT_PAM_OP_LOGIN,  /* password grant + MFA; writes the user's token cache */
    KT_PAM_OP_LOGOUT, /* removes the user's token cache */
} kt_pam_op;

/* The local user, as the module's host resolves it (nss modules the helper may not see). */
typedef struct kt_pam_local_user {
    const char *name;
    uid_t uid;
    gid_t gid;
    const char *home;
} kt_pam_local_user;

/* What the helper reported. Nothing in here is secret. */
typedef struct kt_pam_result {
    kt_error err; /* kind KT_OK on success */
    bool pinned;  /* root pins this user to a Kontist identity */
    char kontist_user[256];
    char device_id[128];
    char cache[16]; /* "written", "failed", "skipped" or "" */
    char cache_reason[256];
    char connections[16];
    char factor[16];       /* the factor the helper used: "device", "push", "none", or "" */
    char passed_over[384]; /* why a device was passed over for push, or "" */
} kt_pam_result;

/* How the module asks the person for a token's PIN when the helper needs one (wire.h): *pin is
 * malloc'd (the caller wipes and frees it); -1 when the conversation gives none. */
typedef struct kt_pam_pin_asker {
    int (*ask)(void *data, const char *token, char **pin);
    void *data;
} kt_pam_pin_asker;

/* The module's side of a push wait (wire.h, push_wait): the helper has created a push challenge
 * and is polling it; the person must be told now. Returns 0, or -1 when the conversation failed
 * (the module then stops the helper: KT_ERR_CONV). */
typedef struct kt_pam_notice {
    int (*push_wait)(void *data, long seconds_left);
    void *data;
} kt_pam_notice;

/* Runs kontist-pam-helper for one operation and waits for its answer, at most login_timeout plus
 * a margin; a helper that does not answer in time is killed, and it, like one that dies without
 * answering, is KT_ERR_INTERNAL (never an outage: a stopped or starved host is no fallback).
 * password may be NULL (logout). pins (NULL: none can be asked) is used at most once, when the
 * helper asks for a token PIN after the bank accepted the password; the wait starts again after
 * it. notice may be NULL (no push wait is expected: a helper that announces one anyway is ignored
 * until it answers). Always fills res. */
void kt_pam_run_helper(const kt_pam_args *args, kt_pam_op op, const kt_pam_local_user *user,
                       const char *password, const kt_pam_pin_asker *pins,
                       const kt_pam_notice *notice, kt_pam_result *res);

/* --- logging (log.c) ------------------------------------------------------------------------ */

typedef struct kt_pam_attempt {
    uint64_t start_ms;
    const char *user;         /* PAM user, may be NULL */
    const char *kontist_user; /* may be NULL */
    const char *device_id;    /* may be NULL */
    kt_pam_mfa mfa;
    const char *factor; /* the factor the helper used, NULL when it got no further */
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
