/* kontist.h: the one header of the kontist-auth core that its front ends (kontist-auth and the
 * PAM module's kontist-pam-helper) include. Everything else in lib/ is the core's own business.
 *
 * A guide to the API, in the order a front end meets it (doc/architecture.md has the whole
 * picture: the layers, who runs as whom, what is wiped, what is atomic):
 *
 *   1. Results. Every call that can fail returns 0 or -1 and fills a kt_error: a kind (what the
 *      front end maps to an exit status or a PAM code) and a message that never carries a secret
 *      and never names a command (the front end words its own hints).
 *   2. Configuration and files: kt_config_* reads kontist.conf strictly; kt_paths_* says where a
 *      user's files are; kt_owner_policy says who may own the files the core reads.
 *   3. A context (kt_ctx, opaque) holds one configuration, the conversation callbacks through
 *      which the core asks and tells the person (kt_conv, kt_conv_progress), one HTTPS connection
 *      and the flow deadline.
 *   4. Operations: kt_flow_login (password grant, then device MFA when a device is chosen by
 *      kt_device_select); kt_session_* (a valid token from the cache, refreshed once under the
 *      lock; saving a login; logging out); kt_enroll (binding this machine as a device);
 *      kt_devices_list and kt_devices_remove (the account's bound devices, and removing one,
 *      with this machine's local state after its own).
 *   5. Small tools the front ends share with the core: wiping secrets, hex, a monotonic clock,
 *      safe reading of a file, running code as another user.
 *   6. kt_doctor_run checks a whole setup, one result per check, through a callback;
 *      kt_runtime_versions_get names the libraries the process runs with.
 */
#ifndef KONTIST_H
#define KONTIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/types.h>

/* --- 1. results ------------------------------------------------------------------------------ */

typedef enum kt_err_kind {
    KT_OK = 0,
    KT_ERR_BAD_CREDENTIALS, /* wrong username/password: the token endpoint refused the password */
    KT_ERR_LOGIN_REQUIRED,  /* refresh token or access token rejected or absent: log in again */
    KT_ERR_MFA_FAILED,      /* the server rejected a device signature, OTP, challenge or device */
    KT_ERR_NOT_ENROLLED,    /* no device for this user (no pin, or the bank no longer knows it) */
    KT_ERR_KEY_UNUSABLE,    /* device key missing, unreadable, wrong permissions or wrong type */
    KT_ERR_UNAVAILABLE,     /* network, TLS, timeout, deadline, HTTP 5xx only (never 4xx/429) */
    KT_ERR_PROTOCOL,        /* the server answered something that breaks the contract */
    KT_ERR_CONFIG,          /* bad configuration, bad client credentials (invalid_client) */
    KT_ERR_CONV,            /* the conversation failed or the person gave no answer */
    KT_ERR_IO,              /* local files: permissions, ownership, disk */
    KT_ERR_INTERNAL,        /* out of memory, library failure, bug */
    /* HTTP 429 from any endpoint. Not "unavailable": anyone can push the bank's rate limit (wrong
     * passwords for someone's account), so it must never open a PAM stack's fallback. */
    KT_ERR_RATE_LIMITED,
    /* A user's own files name another Kontist identity than root pinned. */
    KT_ERR_IDENTITY_MISMATCH,
    KT_ERR_NO_SUCH_USER,     /* the local account does not exist (PAM) */
    KT_ERR_NOT_CONFIRMED,    /* a token is there but did not pass MFA, and a confirmed one is due */
    KT_ERR_BAD_REQUEST,      /* a caller's request is malformed (a git credential request) */
    KT_ERR_ALREADY_ENROLLED, /* this machine already holds a device for the user */
    /* A push MFA challenge was neither approved nor denied before it expired, or before the
     * login's deadline: nobody answered. Its own kind so that a log can tell "nobody answered"
     * from "the person said no" (KT_ERR_MFA_FAILED); for PAM both are PAM_AUTH_ERR. */
    KT_ERR_MFA_EXPIRED,
} kt_err_kind;

/* One past the last kind, for tables indexed by kind. */
#define KT_ERR_KIND_COUNT (KT_ERR_MFA_EXPIRED + 1)

/* How the bank's answers map to kinds is one table, in lib/kt_error.h. */
typedef struct kt_error {
    kt_err_kind kind;
    char message[512];
} kt_error;

/* Records the first error only: a cleanup path cannot overwrite the cause. Always returns -1 so
 * callers can write `return kt_error_set(err, ...);`. err may be NULL. */
int kt_error_set(kt_error *err, kt_err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kt_error_clear(kt_error *err);
/* The Retry-After seconds a KT_ERR_RATE_LIMITED error carries, or -1 (none, or another kind). */
long kt_error_retry_after(const kt_error *err);
/* Stable lowercase name of a kind, for logs ("bad_credentials", "unavailable", ...). */
const char *kt_err_kind_name(kt_err_kind kind);

/* --- 2. configuration and files -------------------------------------------------------------- */

#define KT_DEFAULT_BASE_URL "https://api.kontist.com"
#define KT_DEFAULT_SCOPES "offline users accounts"
#define KT_SYSTEM_CONFIG "/etc/kontist/kontist.conf"
/* How many keys there are (base_url ... mfa). */
#define KT_CONFIG_KEYS 14
/* The factors a login of kontist-auth tries, in order, when the configuration names none. */
#define KT_DEFAULT_MFA "device,push"

typedef struct kt_config {
    char *base_url; /* https:// only; no trailing slash after parsing */
    char *client_id;
    char *client_secret;      /* secret: read from client_secret_file, wiped on free */
    char *client_secret_file; /* absolute path; file owned by root (or the caller) and mode
                                 0600/0400 */
    char *scopes;             /* space separated */
    char *ca_file;            /* NULL: system trust store */
    char *pinned_pubkey;      /* curl CURLOPT_PINNEDPUBLICKEY syntax, e.g. "sha256//base64" */
    char *proxy;              /* NULL: libcurl defaults (environment) are NOT used; "" = no proxy */
    char *username;           /* optional default Kontist username (helper) */
    long connect_timeout;     /* seconds, default 5 */
    long timeout;             /* seconds per request, default 10 */
    long login_timeout;       /* seconds for a whole flow, default 30; a push MFA wait too */
    char *tpm_tcti;           /* the TPM's TCTI; NULL: KT_TPM_DEFAULT_TCTI, never a TSS fallback */
    char *pkcs11_modules;     /* modules by path the PAM helper may load for a user's key */
    char *mfa;                /* the factor order for kontist-auth login ("device,push", ...);
                                 NULL: KT_DEFAULT_MFA. The PAM module follows its own mfa= */
    char *origin[KT_CONFIG_KEYS]; /* "FILE:LINE" where each key was set; NULL: default or
                                     kt_config_set (see kt_config_origin) */
} kt_config;

/* Who may own a file the core reads. The PAM module passes root only; the helper also accepts
 * the invoking user for files under their home. */
typedef struct kt_owner_policy {
    bool allow_root;
    bool allow_uid;
    uid_t uid;
} kt_owner_policy;

/* The TPM a tpm_tcti-less configuration uses: the kernel's resource manager, nothing else. */
#define KT_TPM_DEFAULT_TCTI "device:/dev/tpmrm0"

/* Fills defaults; never fails. */
void kt_config_init(kt_config *cfg);
/* Parses one file on top of what cfg already holds (later files override earlier ones). The file
 * is opened safely (kt_file_read) under the given owner policy. With missing_ok a file that does
 * not exist is not an error (returns 0 and sets *found false if found != NULL). Reads
 * client_secret_file (if set) after parsing. Returns 0 or -1 with err set (KT_ERR_CONFIG for
 * content, KT_ERR_IO / KT_ERR_CONFIG for unsafe files). Every error names the file and line. */
int kt_config_load_file(kt_config *cfg, const char *path, const kt_owner_policy *owners,
                        bool missing_ok, bool *found, kt_error *err);
/* Final check before use: base_url and client_id present. */
int kt_config_validate(const kt_config *cfg, kt_error *err);
/* Checks that this process can read the files the configuration names (ca_file, a pinned_pubkey
 * file), so that a file a user cannot read is reported as what it is before anyone types a
 * password, not as a TLS failure afterwards (KT_ERR_CONFIG naming the line, the file, its owner
 * and mode). */
int kt_config_check_files(const kt_config *cfg, kt_error *err);
/* Host part of base_url ("api.kontist.com", "127.0.0.1:8443" keeps the port). Caller frees. */
char *kt_config_host(const kt_config *cfg);
void kt_config_free(kt_config *cfg);

/* Where a user's files live. */
typedef struct kt_paths {
    char *config_dir;  /* ~/.config/kontist */
    char *state_dir;   /* ~/.local/state/kontist */
    char *user_config; /* config_dir/kontist.conf */
    char *record_file; /* config_dir/device.json */
    char *key_file;    /* config_dir/device-key.pem (default for new keys) */
    char *cache_file;  /* state_dir/tokens.json */
    char *lock_file;   /* state_dir/tokens.lock */
} kt_paths;

/* Defaults below a home directory, ignoring XDG variables (the PAM module). */
int kt_paths_for_home(kt_paths *p, const char *home, kt_error *err);
/* XDG_CONFIG_HOME / XDG_STATE_HOME when set and absolute, else below HOME (the helper). */
int kt_paths_from_env(kt_paths *p, kt_error *err);
void kt_paths_free(kt_paths *p);

#define KT_FILE_MAX_SIZE (64 * 1024)

typedef struct kt_file_policy {
    kt_owner_policy owners;
    bool private_read; /* refuse group/world readable (secrets, keys, tokens) */
    size_t max_size;   /* 0: KT_FILE_MAX_SIZE */
} kt_file_policy;

/* Reads a whole file into a NUL-terminated buffer (wipe it with kt_secret_free when it holds
 * secrets): opened with O_NOFOLLOW, a regular file, owned as the policy allows, not group/world
 * writable (nor readable with private_read), at most the size cap. ENOENT gives KT_ERR_IO with
 * *errno_out ENOENT (errno_out may be NULL). */
int kt_file_read(const char *path, const kt_file_policy *policy, char **data, size_t *len,
                 int *errno_out, kt_error *err);

/* The device record: which Kontist user and bound device a local account uses, and where its key
 * is (~/.config/kontist/device.json). */
typedef struct kt_device_record {
    char *username;  /* Kontist username */
    char *device_id; /* NULL when only the username is known (not enrolled) */
    char *key_ref;   /* absolute path or provider URI */
    char *name;      /* device name given at enrollment */
} kt_device_record;

/* Missing file: returns -1, KT_ERR_NOT_ENROLLED and *errno_out = ENOENT. Unsafe file: KT_ERR_IO.
 * Malformed: KT_ERR_CONFIG naming the file. */
int kt_record_load(const char *path, const kt_owner_policy *owners, kt_device_record *rec,
                   int *errno_out, kt_error *err);
void kt_record_free(kt_device_record *rec);

/* True for a server-issued id that may be put into a URL path: 1 to KT_DEVICE_ID_MAX characters
 * of [A-Za-z0-9_-]. A hostile server must not inject path characters into later requests. */
#define KT_DEVICE_ID_MAX 128
bool kt_device_id_ok(const char *id);
/* True for a key reference that may be stored: an absolute path or a URI, never a relative path
 * whose meaning depends on the working directory of whoever reads it. */
bool kt_key_ref_ok(const char *ref);
/* kt_key_ref_ok with the reason (KT_ERR_CONFIG): also refuses a pkcs11: URI that carries its
 * PIN (pin-value), whose PIN would be stored wherever the reference is. */
int kt_key_ref_check(const char *ref, kt_error *err);
/* Whether a pkcs11: URI has the attribute name (path or query part, any case). */
bool kt_key_ref_has_attr(const char *ref, const char *name);
/* Whether ref names a key on a PKCS#11 token (a pkcs11: URI). */
bool kt_key_ref_is_token(const char *ref);
/* Whether ref names a key in the TPM (a tpm2: key blob or a persistent handle:). */
bool kt_key_ref_in_tpm(const char *ref);
/* Any key but a file (a path or a file: URI): a token, the TPM, or whatever device a provider's
 * URI reaches. Hardware is opened only after the bank accepted the password (a PIN try, a TPM's
 * dictionary-attack counter, time on a slow device are never spent on a guess). */
bool kt_key_ref_is_hardware(const char *ref);
/* The length of the URI scheme at the start of s, without its colon ("pkcs11:" gives 6), 0 when
 * s does not start with one. */
size_t kt_uri_scheme_len(const char *s);

/* --- 3. the context and the conversation ----------------------------------------------------- */

/* How the core talks to a person through whichever front end runs it. */
typedef struct kt_conv {
    /* Asks a question; *answer is a malloc'd string the core wipes and frees. Returns 0, or -1 when
     * no answer can be had (no terminal, cancelled). */
    int (*prompt)(void *data, const char *message, bool echo, char **answer);
    void (*info)(void *data, const char *message);
    void *data;
} kt_conv;

/* While the core waits for the person to do something elsewhere (confirm a device binding request
 * in the Kontist app or in an email). A context without it waits quietly and can only be stopped
 * by its timeout. */
typedef struct kt_conv_progress {
    /* Called a few times a second while waiting, with what is awaited and the seconds waited so
     * far, and once with message NULL when the wait is over (to clear a status line). For display
     * only: a front end without a terminal shows nothing. May be NULL. */
    void (*waiting)(void *data, const char *message, long elapsed_s);
    /* True once the person asked to stop (Ctrl-C): the core then gives up at its next step with
     * KT_ERR_CONV "cancelled". May be NULL. */
    bool (*cancelled)(void *data);
    void *data;
    /* Called once when a wait for the person starts that they must be told about at that very
     * moment (a push MFA challenge: "confirm the login in the Kontist app"), with the plain
     * instruction and the seconds it stays open. A front end whose messages would otherwise
     * arrive late (the PAM module under sshd) turns it into a prompt. May be NULL: the
     * instruction then goes to the conversation's info. */
    void (*instruct)(void *data, const char *instruction, long seconds_left);
} kt_conv_progress;

/* One configuration (borrowed: it must outlive the context), a conversation, one HTTPS
 * connection and a flow deadline. A PAM handle or a helper process owns its own: no global
 * mutable state. */
typedef struct kt_ctx kt_ctx;

/* conv may be NULL (no person to ask). */
kt_ctx *kt_ctx_new(const kt_config *cfg, const kt_conv *conv, kt_error *err);
void kt_ctx_free(kt_ctx *ctx);
/* progress may be NULL (none). */
void kt_ctx_set_progress(kt_ctx *ctx, const kt_conv_progress *progress);
/* How many TLS connections the context opened (one per flow, kept alive). */
long kt_ctx_connections(const kt_ctx *ctx);

/* --- 4. operations --------------------------------------------------------------------------- */

/* A token set: what a login or refresh yields and what the cache keeps. */
typedef struct kt_token_set {
    char *access_token;  /* secret */
    char *refresh_token; /* secret, may be NULL */
    time_t expires_at;   /* absolute UNIX time of access-token expiry, on this machine's clock */
    bool confirmed;      /* the access token carries a cnf claim (passed MFA) */
    char *scope;         /* may be NULL */
    char *username;      /* Kontist username the set belongs to, may be NULL */
    char *device_id;     /* device that confirmed it, may be NULL */
    char *client_id;     /* the OAuth client the tokens were issued to (only that client can
                            refresh them); NULL when unknown (a cache from an older version) */
    time_t login_at;     /* when the login that issued the set ran; 0 when unknown */
    int mfa;             /* the kt_mfa_factor that confirmed it; KT_MFA_NONE when unconfirmed
                            or unknown (a cache from an older version) */
} kt_token_set;

void kt_token_set_free(kt_token_set *t); /* wipes secrets; leaves *t zeroed */
/* True when the access token is present and still valid for at least min_left seconds at now. */
bool kt_token_set_usable(const kt_token_set *t, time_t now, long min_left);
/* True for a token that can travel in an Authorization header: 1 to KT_TOKEN_MAX visible ASCII
 * characters. */
#define KT_TOKEN_MAX 8192
bool kt_token_string_ok(const char *s);

/* Which device key a login uses: decided here, once, for kontist-auth and the PAM module. */
typedef enum kt_device_choice {
    KT_DEVICE_USE,        /* the record's device and key (loaded when asked for) */
    KT_DEVICE_NONE,       /* no record, or the user's record without a bound device */
    KT_DEVICE_OTHER_USER, /* the record names another Kontist user: nothing in it may be used */
} kt_device_choice;

typedef struct kt_device_selection {
    kt_device_choice choice;
    kt_device_record rec;    /* the record as read (empty without one) */
    EVP_PKEY *key;           /* with KT_DEVICE_USE and load_key, unless key_after_password */
    bool key_after_password; /* a hardware key (token, TPM): left for kt_device_load_key */
} kt_device_selection;

/* Reads the device record at record_path (files owned by `owners`) and decides for a login of
 * `username`: the record's device when it names that user (Kontist usernames are e-mail
 * addresses: compared without case; NULL: whoever the record names), with its key (the
 * record's reference, else default_key) loaded when load_key, except a hardware key (a
 * PKCS#11 token or the TPM; key_after_password: kt_device_load_key loads it later). A record that
 * cannot be read safely or parsed, a malformed device id (KT_ERR_KEY_UNUSABLE, before any password
 * goes anywhere) or a key that does not load is an error; a missing record is KT_DEVICE_NONE. */
int kt_device_select(const char *record_path, const char *default_key,
                     const kt_owner_policy *owners, const char *username, bool load_key,
                     kt_device_selection *sel, kt_error *err);
/* Loads the selected device's key into sel->key when it is not there yet (a hardware key, left
 * out by kt_device_select so that it is opened only after the password was accepted). */
EVP_PKEY *kt_device_load_key(kt_device_selection *sel, const char *default_key,
                             const kt_owner_policy *owners, kt_error *err);
void kt_device_selection_free(kt_device_selection *sel);

/* MFA factors, and the order a login tries them in (the configuration's `mfa`, kontist-auth
 * login --mfa, the PAM module's mfa=). */
typedef enum kt_mfa_factor {
    KT_MFA_NONE = 0, /* the password grant only: an unconfirmed token */
    KT_MFA_DEVICE,   /* the device key signs a device challenge */
    KT_MFA_PUSH,     /* the person approves a push challenge in the Kontist app */
} kt_mfa_factor;

#define KT_MFA_ORDER_MAX 2
typedef struct kt_mfa_order {
    kt_mfa_factor factor[KT_MFA_ORDER_MAX];
    unsigned count;
} kt_mfa_order;

/* "device", "push", "device,push", "push,device" (blanks around commas allowed), or, with
 * allow_none, "none" on its own. Anything else, a repeated factor or "none" in a list is
 * KT_ERR_CONFIG. */
int kt_mfa_order_parse(const char *text, bool allow_none, kt_mfa_order *out, kt_error *err);
/* "none", "device", "push". */
const char *kt_mfa_factor_name(kt_mfa_factor factor);
/* "device,push" and the like, into buf. */
void kt_mfa_order_format(const kt_mfa_order *order, char *buf, size_t size);

typedef struct kt_mfa_decision {
    kt_mfa_factor factor;
    /* Why a device earlier in the order was passed over ("" when it was not): a front end must
     * say it, a factor is never changed silently. */
    char passed_over[384];
} kt_mfa_decision;

/* Which factor a login uses: the first of `order` that this machine can use. `select_rc` and
 * `select_err` are what kt_device_select (with load_key) gave for `sel`. The device is usable
 * when the selection uses a device and its key loaded. It is passed over for the next factor
 * (with passed_over set) only when there is no device for the user here or its key cannot be
 * loaded (KT_ERR_KEY_UNUSABLE); any other selection error (an unsafe or malformed file) stands.
 * Only local facts decide: nothing the bank answers is an input, so a key the bank rejects fails
 * the login instead of moving on to push. No usable factor: the selection's error, or
 * KT_ERR_NOT_ENROLLED. */
int kt_mfa_decide(const kt_mfa_order *order, const kt_device_selection *sel, int select_rc,
                  const kt_error *select_err, kt_mfa_decision *out, kt_error *err);
/* Loads a private key by reference. A plain absolute path (or a local file: URI: file:/p,
 * file:///p, file://localhost/p, %XX escapes undone) is opened safely first: regular file, not a
 * link, mode 0600 or stricter, owned by one of `owners`; the bytes read from that descriptor are
 * decoded (PEM or DER, PKCS#8 or traditional; unencrypted: nothing is ever prompted for). Other
 * URIs (pkcs11:, handle:) go to OSSL_STORE when a loaded OpenSSL provider serves their scheme
 * (e.g. tpm2-openssl configured in openssl.cnf); they are refused when none does, or when a file
 * named like the URI exists in the working directory (OSSL_STORE would read it unchecked).
 * Messages about URIs name only the scheme (a URI may carry a PIN). Relative paths are refused.
 * Must be a P-256 EC key. Failures are KT_ERR_KEY_UNUSABLE. */
EVP_PKEY *kt_key_load(const char *ref, const kt_owner_policy *owners, kt_error *err);

const char *kt_key_kind(const char *ref);
/* How a token's PIN is asked for when a pkcs11: key needs one and its URI has no pin-source
 * (kt_pkcs11.h). Process-wide; NULL refuses such keys. */
typedef int (*kt_key_pin_fn)(void *data, const char *token, char *pin, size_t size, kt_error *err);
void kt_key_set_pin_prompt(kt_key_pin_fn fn, void *data);
/* How this process reaches the TPM: tcti (the configuration's tpm_tcti; NULL:
 * KT_TPM_DEFAULT_TCTI), or with environment_wins a TPM2OPENSSL_TCTI of the caller's. The PAM
 * helper passes false: only root's configuration decides, whatever the environment held. */
int kt_key_set_tpm_tcti(const char *tcti, bool environment_wins, kt_error *err);
/* Which PKCS#11 modules a key URI's module-path may name in this process. A process of the key's
 * owner (any_module) loads what its own record names. The PAM helper's real uid stays root while
 * it acts for a user, so code it loads could make itself root again: there module-path must name
 * one of `allowed` (root's pkcs11_modules, comma-separated absolute paths; NULL: none), and other
 * modules are reached through p11-kit's registry (module-name=) only. */
int kt_key_set_pkcs11_modules(const char *allowed, bool any_module, kt_error *err);

typedef struct kt_login_params {
    const char *username;
    const char *password;
    const char *device_id; /* NULL: no device MFA */
    EVP_PKEY *key;         /* the device key, with device_id */
    /* With device_id and no key: loads the key once the bank has accepted the password (a key on
     * a PKCS#11 token: its PIN is asked for, and the token's login tried, only then, so that a
     * wrong password neither shows who has a token nor uses up the token's PIN tries). The key
     * stays the caller's (load_key_data's) to free. */
    EVP_PKEY *(*load_key)(void *data, kt_error *err);
    void *load_key_data;
    bool push; /* without device_id: push MFA; neither: the result is unconfirmed */
} kt_login_params;

/* Password grant, then either (device) create challenge -> sign -> verify, or (push) create a
 * push challenge, tell the person (progress instruct, else conversation info), poll it every
 * 3 s (or as Retry-After says) with the progress callbacks told, until VERIFIED, DENIED
 * (KT_ERR_MFA_FAILED), its expiresAt or the flow deadline (KT_ERR_MFA_EXPIRED), or a cancel
 * (KT_ERR_CONV "cancelled"); then fetch the confirmed token set once. All of it over the
 * context's one connection and within login_timeout. out->username, out->device_id (device) and
 * out->mfa are filled. */
int kt_flow_login(kt_ctx *ctx, const kt_login_params *params, kt_token_set *out, kt_error *err);

/* A token is handed out only with at least this much life left. */
#define KT_TOKEN_MIN_LEFT 60

/* The session: a valid token from the cache, refreshed once under the cache lock when needed
 * (the space for the result reserved before the bank is asked, saved before it is returned, a
 * rotated refresh token never lost), checked to be the tokens the cache is for. Never prompts.
 * No usable cache: KT_ERR_LOGIN_REQUIRED. See lib/kt_session.h for every case. */
int kt_session_get_valid(kt_ctx *ctx, const kt_paths *paths, const kt_owner_policy *owners,
                         kt_token_set *out, kt_error *err);
/* Saves a fresh login's set (stamped with ctx's client and the time, checked) as the cache. */
int kt_session_save_login(kt_ctx *ctx, const kt_paths *paths, kt_token_set *t, kt_error *err);
/* Removes the cache (access_only: only the access token) and any temporary copy a crash left. */
int kt_session_logout(const kt_paths *paths, bool access_only, kt_error *err);

/* Drops the cached access token (the refresh token stays, so the next get refreshes), but only
 * when the cache holds this user's tokens (NULL or "": any) and this access token (NULL: any),
 * compared under the lock: a caller that saw an old token rejected must not take away a newer one
 * another process saved since. A cache holding other tokens is left alone; that is not an error. */
int kt_session_forget_access(const kt_paths *paths, const char *username, const char *access_token,
                             kt_error *err);

/* The cache as it is, for reports (`status`): no refresh and no lock (the file is replaced
 * atomically, so a reader sees one whole version); a set that fails the session's check (the
 * tokens name different subjects, or another device) reads as KT_CACHE_CORRUPT with why. */
typedef enum kt_cache_status {
    KT_CACHE_LOADED = 0,
    KT_CACHE_ABSENT = 1,
    KT_CACHE_CORRUPT = 2, /* err holds why; callers report it and go on as if absent */
} kt_cache_status;

/* Returns a kt_cache_status, or -1 for an unsafe file (owner, mode, link): KT_ERR_IO. The file
 * must be private (0600 or stricter). owners NULL: the effective uid. */
int kt_session_read(const kt_paths *paths, const kt_owner_policy *owners, kt_token_set *t,
                    kt_error *err);

/* Enrollment: binding this machine to the logged-in Kontist user as a device. */
#define KT_ENROLL_NAME_MAX 100

/* How far an enrollment got: a front end words its advice after a failure by the step. */
typedef enum kt_enroll_step {
    KT_ENROLL_PREPARING, /* nothing was asked of the bank */
    KT_ENROLL_BINDING,   /* the device binding request: created, awaited */
    KT_ENROLL_DEVICE,    /* the device: key, creation, SMS code, verification */
    KT_ENROLL_SAVING,    /* verified at the bank; key and record being written here */
    KT_ENROLL_DONE,
} kt_enroll_step;

typedef struct kt_enroll_request {
    const kt_paths *paths;         /* the user's files */
    const kt_owner_policy *owners; /* who may own them (a given key, the current record) */
    const char *name;              /* device name; NULL: "kontist-auth on HOST" */
    const char *key_ref;           /* an existing key (absolute path or URI); NULL: generate one */
    /* Where a new key is generated when key_ref is NULL: NULL, a PEM file in the config
     * directory (after the binding request is confirmed); "tpm2", inside this machine's TPM with
     * its blob in the config directory; "handle:0x81......", inside the TPM, persistent at that
     * handle; "pkcs11:URI", on that token. A hardware key is made before the bank is asked
     * anything (a missing TPM, a wrong PIN stop at once) and removed again when enrolling fails. */
    const char *generate_on;
    const char *username;   /* when the cached login names no user (configuration) */
    bool force;             /* enroll although a device is enrolled (replaces the record) */
    long confirm_timeout_s; /* how long the binding request is awaited */
} kt_enroll_request;

typedef struct kt_enroll_outcome {
    kt_enroll_step step;  /* KT_ENROLL_DONE, or the step that failed */
    kt_device_record rec; /* what is known of the new device (all of it when done) */
} kt_enroll_outcome;

/* Enrolls with the cached login's token (never prompts for a password): binding request, then a
 * new key in memory (or the given one, loaded and checked before the bank is asked anything),
 * the device and its SMS code (asked through the conversation); only then is a generated key
 * written (0600, never over the key the current record uses) and the record replaced. A
 * failure, a rejection, a timeout or a cancel through the progress callbacks writes nothing; a
 * record that cannot be saved takes the key written for it away again. An enrolled machine
 * without force is KT_ERR_ALREADY_ENROLLED. */
int kt_enroll(kt_ctx *ctx, const kt_enroll_request *req, kt_enroll_outcome *out, kt_error *err);
void kt_enroll_outcome_free(kt_enroll_outcome *out);
/* The rule for device names (1 to KT_ENROLL_NAME_MAX characters, no control characters), for a
 * front end to check its arguments before anything else: KT_ERR_CONFIG. */
int kt_enroll_check_name(const char *name, kt_error *err);

/* Device administration: the devices the bank has bound to the cached login's Kontist user, and
 * removing one. Both need a confirmed access token from the session (kt_session_get_valid; never
 * a prompt) and speak GraphQL (listBoundDevices, deleteBoundDevice). */
#define KT_DEVICES_MAX 1000 /* the longest list read; a longer answer breaks the contract */

typedef struct kt_bound_device {
    char *id;          /* kt_device_id_ok */
    char *name;        /* the bank's text as sent: may hold anything; make it safe to show */
    bool this_machine; /* the device this machine's record names for the same Kontist user */
} kt_bound_device;

typedef struct kt_device_list {
    kt_bound_device *devices; /* in the bank's order */
    size_t count;
    char *username; /* the Kontist user of the cached login, NULL when it names none */
} kt_device_list;

/* Reads this machine's record (a missing one is fine; an unsafe or broken one is an error before
 * the bank is asked) and lists the bound devices, marking this machine's. */
int kt_devices_list(kt_ctx *ctx, const kt_paths *paths, const kt_owner_policy *owners,
                    kt_device_list *out, kt_error *err);
void kt_device_list_free(kt_device_list *l);

/* What happened to one piece of local state when a device was removed. */
typedef enum kt_local_step {
    KT_LOCAL_NONE,    /* nothing to do: absent, or not this machine's device */
    KT_LOCAL_REMOVED, /* removed */
    KT_LOCAL_KEPT,    /* left on purpose: a key kontist-auth did not make, or one in hardware */
    KT_LOCAL_FAILED,  /* could not be removed (the outcome's local error says why) */
} kt_local_step;

typedef struct kt_device_removal_request {
    const kt_paths *paths;
    const kt_owner_policy *owners;
    const char *device_id; /* NULL: this machine's device (from its record) */
    /* Asked once the bank has listed the device and before it is removed: 1 removes it, 0 stops
     * with KT_ERR_CONV and nothing changed, -1 too (the callback's error in err). NULL: no
     * question. */
    int (*confirm)(void *data, const kt_bound_device *device, kt_error *err);
    void *confirm_data;
} kt_device_removal_request;

typedef struct kt_device_removal {
    kt_bound_device device; /* as the bank listed it (empty when the bank was not asked) */
    bool removed;           /* the bank removed the device */
    /* When it was this machine's device, after the bank removed it, in this order: the cached
     * tokens it confirmed (under the cache lock), the device record, then the key (a file that
     * kontist-auth made in the configuration directory, key or TPM key blob; a key on a token,
     * persistent in the TPM or given by the person stays: KT_LOCAL_KEPT). Cached tokens another
     * device confirmed are kept. */
    kt_local_step tokens, record, key;
    char *key_ref;        /* this machine's key reference, NULL otherwise */
    const char *key_kind; /* kt_key_kind(key_ref) */
    char *local_error;    /* the first local failure, NULL when none */
} kt_device_removal;

/* Removes a bound device: the bank lists it first (an id it does not list is KT_ERR_BAD_REQUEST
 * and nothing changes), confirm is asked, then deleteBoundDevice. Only after the bank removed it
 * is local state touched, and only for this machine's device; a failure before that changes
 * nothing here. Returns 0 when the bank removed it and no local step failed; -1 otherwise, with
 * out->removed saying whether the bank did (then err is the first local failure, KT_ERR_IO). */
int kt_devices_remove(kt_ctx *ctx, const kt_device_removal_request *req, kt_device_removal *out,
                      kt_error *err);
void kt_device_removal_free(kt_device_removal *out);

/* --- 5. small tools -------------------------------------------------------------------------- */

/* Wipes and frees a NUL-terminated string; NULL is fine. */
void kt_secret_free(char *s);
/* Wipes and frees a string, then sets the pointer to NULL. */
void kt_secret_clear(char **s);
/* Overwrites memory in a way the compiler cannot optimise away. */
void kt_wipe(void *p, size_t len);
/* Decodes hex (either case, even length, no separators) into out (size >= strlen(hex)/2).
 * Returns the number of bytes, or -1 for bad input or a too-small buffer. */
long kt_hex_decode(const char *hex, unsigned char *out, size_t out_size);
/* Milliseconds on CLOCK_MONOTONIC. */
uint64_t kt_now_ms(void);
/* Runs fn(data, err) with the effective identity of uid/gid, then restores the caller's: the one
 * way the core and its front ends act as another user. A failed restore wins over fn's result
 * (KT_ERR_INTERNAL): carrying on with the wrong identity is worse than any other failure. */
int kt_privs_run_as(uid_t uid, gid_t gid, int (*fn)(void *data, kt_error *err), void *data,
                    kt_error *err);
/* kt_privs_run_as with all of the user's supplementary groups (getgrouplist of user and gid), not
 * only gid: what the user may open through a group (the TPM's device node through `tss`, a
 * smartcard reader's) works as it does in the user's own session. */
int kt_privs_run_as_user(const char *user, uid_t uid, gid_t gid,
                         int (*fn)(void *data, kt_error *err), void *data, kt_error *err);

/* --- 6. checking a setup, and what it runs with ---------------------------------------------- */

/* `kontist-auth doctor`: checks everything a working setup needs and says how to fix what is
 * wrong. The checks live here; front ends only format the results the callback hands them.
 *
 * The checks send no password and make at most three requests: one to the token endpoint (a
 * refresh grant with a token that cannot exist: it shows that TLS works, that the endpoint
 * answers, that the client credentials are accepted, and the server's clock from its Date
 * header), and, when the token cache holds a valid access token and a device is enrolled, one
 * device challenge and its verification, signed with the device key, so that the bank itself says
 * whether the key is the one it has bound. The tokens that verification yields are wiped, never
 * stored: the doctor changes no file. */
/* The most the server's clock may differ from this machine's. Tokens carry absolute expiry times
 * (the JWT exp claim) that this machine compares with its own clock. */
#define KT_DOCTOR_MAX_SKEW_S 60

typedef enum kt_doctor_status {
    KT_DOCTOR_OK,
    KT_DOCTOR_WARN, /* works, but not as it should, or not everywhere */
    KT_DOCTOR_FAIL, /* this stops logins */
    KT_DOCTOR_SKIP, /* could not be checked because something before it failed or is absent */
} kt_doctor_status;

/* The step a fix leads to, when it is one of the front end's own commands: the core says which,
 * the front end names the command. */
typedef enum kt_doctor_next {
    KT_DOCTOR_NEXT_NONE,
    KT_DOCTOR_NEXT_LOGIN,   /* log in */
    KT_DOCTOR_NEXT_RELOGIN, /* log out (remove the cache), then log in */
    KT_DOCTOR_NEXT_ENROLL,  /* enroll this machine as a device */
} kt_doctor_next;

typedef struct kt_doctor_result {
    const char *name; /* stable check name: "config-file", "tls", "sshd-usepam", ... */
    kt_doctor_status status;
    const char *detail;  /* what was found; never a secret */
    const char *fix;     /* what to do, or NULL when there is nothing to do */
    kt_doctor_next next; /* the command a fix (or a skipped check) leads to, if any */
    kt_err_kind kind;    /* the error kind of a failure (for exit codes), KT_OK otherwise */
} kt_doctor_result;

/* Called once per check, in order; the strings live until the callback returns. */
typedef void (*kt_doctor_report_fn)(const kt_doctor_result *result, void *data);

/* What the PAM module makes of one stack line's arguments. */
typedef struct kt_doctor_module_args {
    const char *config; /* config= or the system file */
    const char *helper; /* helper= or the built-in path of kontist-pam-helper */
    long login_timeout; /* login_timeout=, 0 when not given (the configuration's applies) */
    bool nouserok;
    bool mfa_device; /* a confirmed token (mfa=device, the default, or push) rather than none */
    const char *mfa; /* the mfa= mode as written ("device,push"), NULL: mfa_device says */
} kt_doctor_module_args;

/* The module's own argument parser (front ends hand in pam_kontist's, so that the doctor can never
 * accept what the module refuses). Returns 0, or -1 with err set. */
typedef int (*kt_doctor_module_parser)(int argc, const char **argv, kt_doctor_module_args *out,
                                       kt_error *err);

/* One configuration file the front end would read, in order (later files override earlier). */
typedef struct kt_doctor_config_file {
    const char *path;
    kt_owner_policy owners;
    bool missing_ok;
} kt_doctor_config_file;

typedef struct kt_doctor_options {
    const kt_doctor_config_file *config_files;
    size_t n_config_files;
    const kt_paths *paths;       /* this user's record, key and cache */
    kt_owner_policy user_owners; /* who may own this user's files */
    bool network;                /* false: no DNS, no connection, no request */
    bool system;                 /* also the PAM stacks and sshd (run as root) */
    const char *pam_dir;         /* NULL: /etc/pam.d */
    const char *sshd_config;     /* NULL: /etc/ssh/sshd_config */
    const char *sshd_binary;     /* NULL: /usr/sbin/sshd; "": parse sshd_config ourselves */
    kt_doctor_module_parser parse_module_args; /* NULL: stack arguments are not checked */
} kt_doctor_options;

typedef struct kt_doctor_summary {
    unsigned ok, warn, fail, skip;
    kt_err_kind first_failure; /* kind of the first failed check, KT_OK when none failed */
} kt_doctor_summary;

/* Runs every check and reports each through `report`. Returns 0 when no check failed, -1
 * otherwise (summary says which kind failed first). */
int kt_doctor_run(const kt_doctor_options *opts, kt_doctor_report_fn report, void *data,
                  kt_doctor_summary *summary);

/* "ok", "warn", "fail", "skip". */
const char *kt_doctor_status_name(kt_doctor_status status);

/* sshd's LoginGraceTime syntax ("120", "2m", "1h30m", "0"): seconds, or -1 when malformed.
 * Exposed for tests. */
long kt_doctor_sshd_time(const char *value);

/* The versions of the libraries this process runs with, as they report themselves (not the
 * headers it was built with): what a bug report needs. */
typedef struct kt_runtime_versions {
    char curl[160];   /* "8.11.1 (OpenSSL/3.0.15)", or why libcurl cannot be loaded */
    char openssl[96]; /* "OpenSSL 3.0.15 3 Sep 2024" */
    char json_c[32];  /* "0.16" */
} kt_runtime_versions;

/* Loads libcurl the way the first request does (kt_curl_get) and asks each library. */
void kt_runtime_versions_get(kt_runtime_versions *v);

#endif
