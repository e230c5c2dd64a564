/* The configuration file: `key = value` lines, strict parsing.
 *
 * `#` starts a comment: at the start of a line, or after a blank following a value
 * (`key = value   # comment`). A `#` inside a value (`a#b`) is an error, never part of the value:
 * a literal `#` is written `\#`, or the whole value is put in double quotes
 * (`key = "a # b"`, where `\"` and `\\` stand for a quote and a backslash).
 * Every error names the file and the line. */
#ifndef KT_CONFIG_H
#define KT_CONFIG_H

#include <stdbool.h>
#include <sys/types.h>

#include "kt_error.h"

#define KT_DEFAULT_BASE_URL "https://api.kontist.com"
#define KT_DEFAULT_SCOPES "offline users accounts"
#define KT_SYSTEM_CONFIG "/etc/kontist/kontist.conf"
/* How many keys there are (base_url ... login_timeout). */
#define KT_CONFIG_KEYS 11

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
    long login_timeout;       /* seconds for a whole flow, default 30 */
    char *origin[KT_CONFIG_KEYS]; /* "FILE:LINE" where each key was set; NULL: default or
                                     kt_config_set (see kt_config_origin) */
} kt_config;

/* Who may own a configuration file. The PAM module passes KT_OWNER_ROOT only; the helper also
 * accepts the invoking user for files under their home. */
typedef struct kt_owner_policy {
    bool allow_root;
    bool allow_uid;
    uid_t uid;
} kt_owner_policy;

/* Fills defaults; never fails. */
void kt_config_init(kt_config *cfg);
/* Parses one file on top of what cfg already holds (later files override earlier ones).
 * The file is opened safely (kt_file_read) under the given owner policy. When missing_ok is true a
 * file that does not exist is not an error (returns 0 and sets *found false if found != NULL).
 * Reads client_secret_file (if set) after parsing. Returns 0 or -1 with err set (KT_ERR_CONFIG
 * for content, KT_ERR_IO / KT_ERR_CONFIG for unsafe files). */
int kt_config_load_file(kt_config *cfg, const char *path, const kt_owner_policy *owners,
                        bool missing_ok, bool *found, kt_error *err);
/* Reads cfg->client_secret_file (if set) into cfg->client_secret: the file must be owned as
 * `owners` allows and readable by its owner only (0600/0400); one trailing newline is dropped.
 * kt_config_load_file calls this for files that set client_secret_file; front ends call it after
 * kt_config_set("client_secret_file", ...). Errors are KT_ERR_CONFIG. */
int kt_config_load_secret(kt_config *cfg, const kt_owner_policy *owners, kt_error *err);
/* Parses a buffer; `name` is used in messages ("name:LINE: ..."). Does not read the secret file. */
int kt_config_parse(kt_config *cfg, const char *name, const char *text, size_t len, kt_error *err);
/* Sets one key from a string exactly as a config line would (used for module arguments and
 * command-line overrides). */
int kt_config_set(kt_config *cfg, const char *key, const char *value, kt_error *err);
/* Final check before use: base_url and client_id present. */
int kt_config_validate(const kt_config *cfg, kt_error *err);
/* "FILE:LINE" of the line that set `key` (a key name such as "ca_file"), or NULL. */
const char *kt_config_origin(const kt_config *cfg, const char *key);
/* Checks that this process can read the files the configuration names, ca_file and a
 * pinned_pubkey file (the client secret was read when the file was loaded), so that a file a user
 * cannot read is reported as what it is before anyone types a password, not as a TLS failure
 * afterwards. A refusal is KT_ERR_CONFIG naming the line that set the key, the file, its owner and
 * mode (or the directory on the way that cannot be searched), and who has to be able to read it. */
int kt_config_check_files(const kt_config *cfg, kt_error *err);
/* Host part of base_url ("api.kontist.com", "127.0.0.1:8443" keeps the port). Caller frees. */
char *kt_config_host(const kt_config *cfg);
void kt_config_free(kt_config *cfg);

#endif
