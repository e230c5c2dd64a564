#include <config.h>

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_config.h"
#include "kt_util.h"
#include "kt_file.h"
#include "kt_secret.h"

/* Result of applying one value; the reason for a refusal goes into a caller's buffer so that the
 * parser can prefix it with file and line and kt_config_set with the key. */
enum { SET_OK = 0, SET_BAD = -1, SET_NOMEM = -2 };

enum {
    K_BASE_URL,
    K_CLIENT_ID,
    K_CLIENT_SECRET_FILE,
    K_SCOPES,
    K_CA_FILE,
    K_PINNED_PUBKEY,
    K_PROXY,
    K_USERNAME,
    K_CONNECT_TIMEOUT,
    K_TIMEOUT,
    K_LOGIN_TIMEOUT,
    K_TPM_TCTI,
    K_PKCS11_MODULES,
    K_MFA,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    [K_BASE_URL] = "base_url",
    [K_CLIENT_ID] = "client_id",
    [K_CLIENT_SECRET_FILE] = "client_secret_file",
    [K_SCOPES] = "scopes",
    [K_CA_FILE] = "ca_file",
    [K_PINNED_PUBKEY] = "pinned_pubkey",
    [K_PROXY] = "proxy",
    [K_USERNAME] = "username",
    [K_CONNECT_TIMEOUT] = "connect_timeout",
    [K_TIMEOUT] = "timeout",
    [K_LOGIN_TIMEOUT] = "login_timeout",
    [K_TPM_TCTI] = "tpm_tcti",
    [K_PKCS11_MODULES] = "pkcs11_modules",
    [K_MFA] = "mfa",
};

_Static_assert(K_COUNT == KT_CONFIG_KEYS, "KT_CONFIG_KEYS must count the keys");

static const char *const kontist_scopes[] = {
    "accounts",      "clients",      "offline",   "statements",
    "subscriptions", "transactions", "transfers", "users",
};

typedef struct why_buf {
    char *text;
    size_t size;
} why_buf;

static int bad(why_buf *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(why_buf *why, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why->text, why->size, fmt, ap);
    va_end(ap);
    return SET_BAD;
}

static int key_lookup(const char *key)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strcmp(key, key_names[i]) == 0)
            return i;
    return -1;
}

static bool has_char_in(const char *s, const char *set)
{
    return s[strcspn(s, set)] != '\0';
}

static bool has_space(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s == ' ' || *s == '\t')
            return true;
    return false;
}

/* ---- value checks ---------------------------------------------------------------------- */

static int check_host(const char *host, size_t len, why_buf *why)
{
    if (len == 0)
        return bad(why, "URL has no host");
    if (host[0] == '[') {
        if (len < 3 || host[len - 1] != ']')
            return bad(why, "malformed IPv6 address in URL");
        for (size_t i = 1; i < len - 1; i++)
            if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.')
                return bad(why, "malformed IPv6 address in URL");
        return SET_OK;
    }
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)host[i]) && host[i] != '.' && host[i] != '-' && host[i] != '_')
            return bad(why, "invalid character in URL host");
    return SET_OK;
}

static int check_port(const char *port, size_t len, why_buf *why)
{
    long value = 0;

    if (len == 0 || len > 5)
        return bad(why, "invalid port in URL");
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)port[i]))
            return bad(why, "invalid port in URL");
        value = value * 10 + (port[i] - '0');
    }
    if (value < 1 || value > 65535)
        return bad(why, "port out of range in URL");
    return SET_OK;
}

/* Splits "host[:port]" (host may be a bracketed IPv6 literal) and checks both. */
static int check_authority(const char *auth, size_t len, why_buf *why)
{
    const char *colon = NULL;

    if (memchr(auth, '@', len) != NULL)
        return bad(why, "URL must not contain user information");
    if (len > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', len);

        if (close == NULL)
            return bad(why, "malformed IPv6 address in URL");
        if ((size_t)(close + 1 - auth) < len) {
            if (close[1] != ':')
                return bad(why, "malformed URL host");
            colon = close + 1;
        }
    } else {
        colon = memchr(auth, ':', len);
    }
    if (colon == NULL)
        return check_host(auth, len, why);
    if (check_host(auth, (size_t)(colon - auth), why) != SET_OK)
        return SET_BAD;
    return check_port(colon + 1, len - (size_t)(colon + 1 - auth), why);
}

/* https://host[:port][/path]: no userinfo, query or fragment; the scheme and host are lowercased
 * and trailing slashes dropped so that API paths can be appended. */
static int check_base_url(const char *v, char **out, why_buf *why)
{
    const char *rest, *path;
    size_t alen, plen;

    if (strncasecmp(v, "https://", 8) != 0)
        return bad(why, "base_url must be an https:// URL");
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '\\')
            return bad(why, "invalid character in URL");
    if (has_char_in(v, "?#"))
        return bad(why, "URL must not contain a query or fragment");
    rest = v + 8;
    alen = strcspn(rest, "/");
    if (check_authority(rest, alen, why) != SET_OK)
        return SET_BAD;
    path = rest + alen;
    plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    if (asprintf(out, "https://%.*s%.*s", (int)alen, rest, (int)plen, path) < 0) {
        *out = NULL;
        return SET_NOMEM;
    }
    for (char *p = *out + 8; p < *out + 8 + alen; p++)
        *p = (char)tolower((unsigned char)*p);
    return SET_OK;
}

static int check_proxy(const char *v, why_buf *why)
{
    static const char *const schemes[] = {"http://",    "https://",  "socks4://",
                                          "socks4a://", "socks5://", "socks5h://"};
    size_t n = 0;

    if (v[0] == '\0')
        return SET_OK; /* explicitly no proxy */
    for (const char *p = v; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return bad(why, "invalid character in proxy URL");
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncasecmp(v, schemes[i], strlen(schemes[i])) == 0)
            n = strlen(schemes[i]);
    if (n == 0)
        return bad(why, "proxy must be a URL with scheme http, https, socks4, socks4a, socks5 or "
                        "socks5h");
    if (v[n] == '\0' || v[n] == '/')
        return bad(why, "proxy URL has no host");
    return SET_OK;
}

static int check_abs_path(const char *v, why_buf *why)
{
    if (v[0] != '/')
        return bad(why, "path must be absolute");
    return SET_OK;
}

static int check_token_like(const char *v, const char *what, why_buf *why)
{
    if (strlen(v) > 256)
        return bad(why, "%s is too long", what);
    if (has_space(v))
        return bad(why, "%s must not contain spaces", what);
    return SET_OK;
}

/* A TCTI of the TPM software stack, named explicitly: "device:/dev/tpmrm0" (an absolute device
 * node), or a simulator or resource manager with its settings ("swtpm:host=127.0.0.1,port=2321",
 * "mssim:...", "tabrmd:..."). A bare name would let the TSS pick its own defaults, and the point
 * of the setting is that nothing is picked: no fallback to a TCP port anyone could listen on. */
static int check_tcti(const char *v, why_buf *why)
{
    static const char *const kinds[] = {"swtpm:", "mssim:", "tabrmd:"};

    if (check_token_like(v, "tpm_tcti", why) != SET_OK)
        return SET_BAD;
    if (strncmp(v, "device:", 7) == 0)
        return v[7] == '/' ? SET_OK : bad(why, "tpm_tcti device: needs an absolute path");
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strncmp(v, kinds[i], strlen(kinds[i])) == 0 && v[strlen(kinds[i])] != '\0')
            return SET_OK;
    return bad(why, "tpm_tcti must be device:/path, or swtpm:, mssim: or tabrmd: with its "
                    "settings");
}

/* PKCS#11 modules by absolute path, separated by commas: the modules besides p11-kit's registry
 * that the PAM helper may load for a key a user's own record names. */
static int check_module_list(const char *v, why_buf *why)
{
    const char *p = v;

    if (check_token_like(v, "pkcs11_modules", why) != SET_OK)
        return SET_BAD;
    for (;;) {
        if (*p != '/')
            return bad(why, "pkcs11_modules lists absolute paths, separated by commas");
        p = strchr(p, ',');
        if (p == NULL)
            return SET_OK;
        p++;
    }
}

/* The configuration names factors only: "none" (an unconfirmed token) is a choice made on the
 * command line for one login, never a standing setting. */
static int check_mfa(const char *v, char **normalized, why_buf *why)
{
    kt_error err = {KT_OK, ""};
    kt_mfa_order order;
    char buf[64];

    if (kt_mfa_order_parse(v, false, &order, &err) != 0)
        return bad(why, "%s", err.message);
    kt_mfa_order_format(&order, buf, sizeof(buf));
    *normalized = strdup(buf);
    return *normalized != NULL ? SET_OK : SET_NOMEM;
}

static int check_client_id(const char *v, why_buf *why)
{
    if (check_token_like(v, "client_id", why) != SET_OK)
        return SET_BAD;
    /* HTTP Basic authentication cannot carry a colon in the user id. */
    if (strchr(v, ':') != NULL)
        return bad(why, "client_id must not contain ':'");
    return SET_OK;
}

static bool is_base64_sha256(const char *s, size_t len)
{
    /* 32 bytes: 43 base64 characters and one '=' of padding. */
    if (len != 44 || s[43] != '=')
        return false;
    for (size_t i = 0; i < 43; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
            return false;
    return true;
}

/* curl's CURLOPT_PINNEDPUBLICKEY: a public key file, or sha256//HASH[;sha256//HASH...]. */
static int check_pinned(const char *v, why_buf *why)
{
    const char *p = v;

    if (v[0] == '/')
        return SET_OK;
    for (;;) {
        size_t len = strcspn(p, ";");

        if (len < 8 || strncmp(p, "sha256//", 8) != 0 || !is_base64_sha256(p + 8, len - 8))
            return bad(why, "pinned_pubkey must be an absolute path or sha256//BASE64 hashes "
                            "separated by ';'");
        if (p[len] == '\0')
            return SET_OK;
        p += len + 1;
    }
}

static bool is_kontist_scope(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(kontist_scopes) / sizeof(kontist_scopes[0]); i++)
        if (strlen(kontist_scopes[i]) == len && memcmp(kontist_scopes[i], s, len) == 0)
            return true;
    return false;
}

/* Space-separated Kontist scopes, each once; rewritten with single spaces. */
static int check_scopes(const char *v, char **out, why_buf *why)
{
    size_t cap = strlen(v) + 1, used = 0;
    char *norm = malloc(cap);
    const char *p = v;

    if (norm == NULL)
        return SET_NOMEM;
    norm[0] = '\0';
    while (*p != '\0') {
        size_t len;

        p += strspn(p, " \t");
        len = strcspn(p, " \t");
        if (len == 0)
            break;
        if (!is_kontist_scope(p, len)) {
            free(norm);
            return bad(why, "unknown scope '%.*s'", (int)(len > 40 ? 40 : len), p);
        }
        for (const char *q = norm; *q != '\0'; q += strcspn(q, " "), q += strspn(q, " ")) {
            if (strcspn(q, " ") == len && memcmp(q, p, len) == 0) {
                free(norm);
                return bad(why, "scope '%.*s' given twice", (int)len, p);
            }
        }
        if (used > 0)
            norm[used++] = ' ';
        memcpy(norm + used, p, len);
        used += len;
        norm[used] = '\0';
        p += len;
    }
    *out = norm;
    return SET_OK;
}

static int parse_seconds(const char *v, const char *key, long *out, why_buf *why)
{
    long value = 0;

    if (v[0] == '\0' || strlen(v) > 6)
        return bad(why, "%s must be a number of seconds from 1 to 300", key);
    for (const char *p = v; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return bad(why, "%s must be a number of seconds from 1 to 300", key);
        value = value * 10 + (*p - '0');
    }
    if (value < 1 || value > 300)
        return bad(why, "%s must be a number of seconds from 1 to 300", key);
    *out = value;
    return SET_OK;
}

/* ---- applying a value ------------------------------------------------------------------ */

static char **string_field(kt_config *cfg, int id)
{
    switch (id) {
    case K_BASE_URL:
        return &cfg->base_url;
    case K_CLIENT_ID:
        return &cfg->client_id;
    case K_CLIENT_SECRET_FILE:
        return &cfg->client_secret_file;
    case K_SCOPES:
        return &cfg->scopes;
    case K_CA_FILE:
        return &cfg->ca_file;
    case K_PINNED_PUBKEY:
        return &cfg->pinned_pubkey;
    case K_PROXY:
        return &cfg->proxy;
    case K_USERNAME:
        return &cfg->username;
    case K_TPM_TCTI:
        return &cfg->tpm_tcti;
    case K_PKCS11_MODULES:
        return &cfg->pkcs11_modules;
    case K_MFA:
        return &cfg->mfa;
    }
    return NULL;
}

static long *number_field(kt_config *cfg, int id)
{
    switch (id) {
    case K_CONNECT_TIMEOUT:
        return &cfg->connect_timeout;
    case K_TIMEOUT:
        return &cfg->timeout;
    case K_LOGIN_TIMEOUT:
        return &cfg->login_timeout;
    }
    return NULL;
}

/* Checks a value for key `id`; *normalized gets a malloc'd form for keys that rewrite it. */
static int check_value(int id, const char *value, char **normalized, why_buf *why)
{
    switch (id) {
    case K_BASE_URL:
        return check_base_url(value, normalized, why);
    case K_SCOPES:
        return check_scopes(value, normalized, why);
    case K_CLIENT_ID:
        return check_client_id(value, why);
    case K_CLIENT_SECRET_FILE:
    case K_CA_FILE:
        return check_abs_path(value, why);
    case K_PINNED_PUBKEY:
        return check_pinned(value, why);
    case K_PROXY:
        return check_proxy(value, why);
    case K_USERNAME:
        return check_token_like(value, "username", why);
    case K_PKCS11_MODULES:
        return check_module_list(value, why);
    case K_TPM_TCTI:
        return check_tcti(value, why);
    case K_MFA:
        return check_mfa(value, normalized, why);
    }
    return bad(why, "internal: no check for '%s'", key_names[id]);
}

static int apply_value(kt_config *cfg, int id, const char *value, why_buf *why)
{
    char *normalized = NULL, **field;
    long *number = number_field(cfg, id);
    int rc;

    for (const char *p = value; *p != '\0'; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return bad(why, "control character in value of '%s'", key_names[id]);
    if (value[0] == '\0' && id != K_PROXY)
        return bad(why, "empty value for '%s'", key_names[id]);
    if (number != NULL)
        return parse_seconds(value, key_names[id], number, why);
    rc = check_value(id, value, &normalized, why);
    if (rc != SET_OK)
        return rc;
    if (normalized == NULL && (normalized = strdup(value)) == NULL)
        return SET_NOMEM;
    field = string_field(cfg, id);
    if (field == NULL) {
        free(normalized);
        return bad(why, "internal: no field for '%s'", key_names[id]);
    }
    free(*field);
    *field = normalized;
    return SET_OK;
}

/* ---- files ----------------------------------------------------------------------------- */

#define KT_CONFIG_MAX_LINE 4096

static int bad_escape(char next, why_buf *why)
{
    if (next == '\0')
        return bad(why, "the value ends in a backslash: write a backslash as \\\\");
    return bad(why,
               "unknown escape '\\%c': only \\#, \\\" and \\\\ are escapes (a backslash is "
               "written \\\\)",
               next);
}

/* The value part of a line, after the '=': unquoted, or one double-quoted string; either may be
 * followed by a comment that starts with '#' after a blank. Writes the value into out (at least
 * strlen(raw) + 1 bytes). A '#' glued to a value is refused rather than guessed at: it is either
 * a comment someone forgot the blank for or a character someone forgot to escape, and taking it
 * either way silently would hand the wrong value to whoever reads the file next. */
static int unquote_value(const char *raw, char *out, why_buf *why)
{
    const char *p = raw;
    size_t n = 0;

    if (*p == '"') {
        for (p++;; p++) {
            if (*p == '\0')
                return bad(why, "a quoted value has no closing '\"'");
            if (*p == '"')
                break;
            if (*p == '\\') {
                if (p[1] != '"' && p[1] != '\\' && p[1] != '#')
                    return bad_escape(p[1], why);
                p++;
            }
            out[n++] = *p;
        }
        p++;
        p += strspn(p, " \t");
        if (*p != '\0' && *p != '#')
            return bad(why, "text after the closing '\"' of a quoted value");
        out[n] = '\0';
        return SET_OK;
    }
    for (; *p != '\0'; p++) {
        if (*p == '#') {
            if (p == raw || p[-1] == ' ' || p[-1] == '\t')
                break; /* a comment */
            return bad(why, "'#' inside a value: put a blank before a comment; write a literal "
                            "'#' as \\# or quote the whole value (\"...\")");
        }
        if (*p == '"')
            return bad(why, "'\"' inside a value: quote the whole value (\"...\") and write the "
                            "quote as \\\"");
        if (*p == '\\') {
            if (p[1] != '#' && p[1] != '\\' && p[1] != '"')
                return bad_escape(p[1], why);
            p++;
        }
        out[n++] = *p;
    }
    /* Blanks before a comment are not part of the value; escaped characters are never blank. */
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
    return SET_OK;
}

static int set_origin(kt_config *cfg, int id, const char *name, unsigned lineno)
{
    char *where = NULL;

    if (asprintf(&where, "%s:%u", name, lineno) < 0)
        return -1;
    free(cfg->origin[id]);
    cfg->origin[id] = where;
    return 0;
}

static int parse_line(kt_config *cfg, const char *name, unsigned lineno, char *line, unsigned *seen,
                      kt_error *err)
{
    char reason[200];
    char value[KT_CONFIG_MAX_LINE + 1];
    why_buf why = {reason, sizeof(reason)};
    char *eq, *key;
    int id, rc;

    line = kt_trim(line);
    if (line[0] == '\0' || line[0] == '#')
        return 0;
    eq = strchr(line, '=');
    if (eq == NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: expected 'key = value'", name, lineno);
    *eq = '\0';
    key = kt_trim(line);
    if (key[0] == '\0')
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: missing key before '='", name, lineno);
    id = key_lookup(key);
    if (id < 0)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: unknown key '%.64s'", name, lineno, key);
    if (*seen & (1u << id))
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: duplicate key '%s'", name, lineno, key);
    *seen |= 1u << id;
    if (unquote_value(kt_trim(eq + 1), value, &why) != SET_OK)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: %s: %s", name, lineno, key, reason);
    rc = apply_value(cfg, id, value, &why);
    if (rc == SET_OK && set_origin(cfg, id, name, lineno) != 0)
        rc = SET_NOMEM;
    kt_wipe(value, sizeof(value));
    if (rc == SET_NOMEM)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    if (rc != SET_OK)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: %s", name, lineno, reason);
    return 0;
}

static int parse_text(kt_config *cfg, const char *name, const char *text, size_t len,
                      unsigned *seen, kt_error *err)
{
    char line[KT_CONFIG_MAX_LINE + 1];
    unsigned lineno = 0;
    size_t pos = 0;

    *seen = 0;
    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - start) : len - pos;

        lineno++;
        pos += llen + (nl != NULL);
        if (llen > KT_CONFIG_MAX_LINE)
            return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: line longer than %d bytes", name,
                                lineno, KT_CONFIG_MAX_LINE);
        if (memchr(start, '\0', llen) != NULL)
            return kt_error_set(err, KT_ERR_CONFIG, "%s:%u: NUL byte in line", name, lineno);
        memcpy(line, start, llen);
        line[llen] = '\0';
        if (parse_line(cfg, name, lineno, line, seen, err) != 0)
            return -1;
    }
    return 0;
}

/* ---- public ---------------------------------------------------------------------------- */

void kt_config_init(kt_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->base_url = strdup(KT_DEFAULT_BASE_URL);
    cfg->scopes = strdup(KT_DEFAULT_SCOPES);
    cfg->connect_timeout = 5;
    cfg->timeout = 10;
    cfg->login_timeout = 30;
}

int kt_config_parse(kt_config *cfg, const char *name, const char *text, size_t len, kt_error *err)
{
    unsigned seen;

    return parse_text(cfg, name != NULL ? name : "(config)", text, len, &seen, err);
}

int kt_config_set(kt_config *cfg, const char *key, const char *value, kt_error *err)
{
    char reason[200];
    why_buf why = {reason, sizeof(reason)};
    int id, rc;

    if (key == NULL || (id = key_lookup(key)) < 0)
        return kt_error_set(err, KT_ERR_CONFIG, "unknown option '%.64s'", key ? key : "(null)");
    if (value == NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "option '%s' needs a value", key);
    rc = apply_value(cfg, id, value, &why);
    if (rc == SET_NOMEM)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    if (rc != SET_OK)
        return kt_error_set(err, KT_ERR_CONFIG, "option '%s': %s", key, reason);
    free(cfg->origin[id]);
    cfg->origin[id] = NULL;
    return 0;
}

const char *kt_config_origin(const kt_config *cfg, const char *key)
{
    int id = key != NULL ? key_lookup(key) : -1;

    return id >= 0 ? cfg->origin[id] : NULL;
}

/* "alice (uid 1000)" for the effective user. */
static void describe_self(char *buf, size_t size)
{
    struct passwd pw, *res = NULL;
    char pbuf[1024];
    uid_t uid = geteuid();

    if (getpwuid_r(uid, &pw, pbuf, sizeof(pbuf), &res) == 0 && res != NULL)
        snprintf(buf, size, "%s (uid %lu)", res->pw_name, (unsigned long)uid);
    else
        snprintf(buf, size, "uid %lu", (unsigned long)uid);
}

/* "root:root, mode 0600" for a file's owner, group and permission bits. */
static void describe_owner(const struct stat *st, char *buf, size_t size)
{
    struct passwd pw, *pres = NULL;
    struct group gr, *gres = NULL;
    char pbuf[1024], gbuf[1024], user[64], group[64];

    if (getpwuid_r(st->st_uid, &pw, pbuf, sizeof(pbuf), &pres) == 0 && pres != NULL)
        snprintf(user, sizeof(user), "%s", pres->pw_name);
    else
        snprintf(user, sizeof(user), "%lu", (unsigned long)st->st_uid);
    if (getgrgid_r(st->st_gid, &gr, gbuf, sizeof(gbuf), &gres) == 0 && gres != NULL)
        snprintf(group, sizeof(group), "%s", gres->gr_name);
    else
        snprintf(group, sizeof(group), "%lu", (unsigned long)st->st_gid);
    snprintf(buf, size, "%s:%s, mode %04o", user, group, (unsigned)(st->st_mode & 07777));
}

/* Why this process cannot open `path` for reading (errno e): for a permission problem, the
 * directory on the way it may not search or the file itself, with owner and mode. */
static void explain_unreadable(const char *path, int e, char *buf, size_t size)
{
    char self[128], owner[160], dir[PATH_MAX];
    struct stat st;

    if (e == ENOENT) {
        snprintf(buf, size, "does not exist");
        return;
    }
    if (e != EACCES) {
        snprintf(buf, size, "cannot be opened: %s", strerror(e));
        return;
    }
    describe_self(self, sizeof(self));
    /* Each directory on the way must be searchable (x) by whoever reads the file. */
    for (const char *slash = strchr(path + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        size_t len = (size_t)(slash - path);

        if (len >= sizeof(dir))
            break;
        memcpy(dir, path, len);
        dir[len] = '\0';
        if (faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) != 0 && errno == EACCES &&
            stat(dir, &st) == 0) {
            describe_owner(&st, owner, sizeof(owner));
            snprintf(buf, size,
                     "cannot be read by %s: the directory %.200s (%s) cannot be searched by them",
                     self, dir, owner);
            return;
        }
    }
    if (stat(path, &st) == 0) {
        describe_owner(&st, owner, sizeof(owner));
        snprintf(buf, size, "(%s) cannot be read by %s", owner, self);
    } else {
        snprintf(buf, size, "cannot be read by %s: %s", self, strerror(e));
    }
}

/* "FILE:LINE: " for messages about the value of key `id`, or "" when it was not set by a file. */
static void origin_prefix(const kt_config *cfg, int id, char *buf, size_t size)
{
    if (cfg->origin[id] != NULL)
        snprintf(buf, size, "%s: ", cfg->origin[id]);
    else
        buf[0] = '\0';
}

int kt_config_load_secret(kt_config *cfg, const kt_owner_policy *owners, kt_error *err)
{
    kt_file_policy policy = {.owners = *owners, .private_read = true, .max_size = 4096};
    kt_error ferr = {KT_OK, ""};
    char where[PATH_MAX + 32], why[640];
    const char *path = cfg->client_secret_file;
    char *data = NULL;
    size_t len = 0;
    int e = 0, rc = -1;

    if (path == NULL)
        return 0;
    origin_prefix(cfg, K_CLIENT_SECRET_FILE, where, sizeof(where));
    if (kt_file_read(path, &policy, &data, &len, &e, &ferr) != 0) {
        if (ferr.kind == KT_ERR_INTERNAL)
            return kt_error_set(err, KT_ERR_INTERNAL, "%s", ferr.message);
        if (e == ENOENT)
            return kt_error_set(err, KT_ERR_CONFIG, "%sclient_secret_file %s does not exist", where,
                                path);
        if (e == EACCES) {
            explain_unreadable(path, e, why, sizeof(why));
            return kt_error_set(err, KT_ERR_CONFIG,
                                "%sclient_secret_file %s %s; everyone who uses this "
                                "configuration needs to read it: give users a configuration "
                                "without client_secret_file (a public client)",
                                where, path, why);
        }
        /* kt_file's message starts with the path already. */
        return kt_error_set(err, KT_ERR_CONFIG, "%sclient_secret_file %s", where, ferr.message);
    }
    if (strlen(data) != len) {
        kt_error_set(err, KT_ERR_CONFIG, "%sclient_secret_file %s: NUL byte in client secret",
                     where, path);
        goto out;
    }
    if (len > 0 && data[len - 1] == '\n')
        data[--len] = '\0';
    if (len > 0 && data[len - 1] == '\r')
        data[--len] = '\0';
    if (strpbrk(data, "\r\n") != NULL) {
        kt_error_set(err, KT_ERR_CONFIG,
                     "%sclient_secret_file %s: the client secret must be a single line", where,
                     path);
        goto out;
    }
    kt_secret_free(cfg->client_secret);
    cfg->client_secret = data;
    data = NULL;
    rc = 0;
out:
    if (data != NULL) {
        kt_wipe(data, len);
        free(data);
    }
    return rc;
}

/* One file the configuration names must be readable by this process. */
static int check_readable(const kt_config *cfg, int id, const char *path, kt_error *err)
{
    char where[PATH_MAX + 32], why[640];
    struct stat st;
    int fd, e;

    origin_prefix(cfg, id, where, sizeof(where));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return kt_error_set(err, KT_ERR_CONFIG, "%s%s %s does not exist", where, key_names[id],
                            path);
    if (fd < 0) {
        e = errno;
        explain_unreadable(path, e, why, sizeof(why));
        return kt_error_set(err, KT_ERR_CONFIG,
                            "%s%s %s %s; everyone who uses this configuration must be able to "
                            "read it (and search the directories above it)",
                            where, key_names[id], path, why);
    }
    e = fstat(fd, &st) == 0 ? 0 : errno;
    close(fd);
    if (e != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "%s%s %s: %s", where, key_names[id], path,
                            strerror(e));
    if (!S_ISREG(st.st_mode))
        return kt_error_set(err, KT_ERR_CONFIG, "%s%s %s is not a regular file", where,
                            key_names[id], path);
    return 0;
}

int kt_config_check_files(const kt_config *cfg, kt_error *err)
{
    if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0' &&
        check_readable(cfg, K_CA_FILE, cfg->ca_file, err) != 0)
        return -1;
    /* pinned_pubkey is a file only when it is a path; sha256// hashes name no file. */
    if (cfg->pinned_pubkey != NULL && cfg->pinned_pubkey[0] == '/' &&
        check_readable(cfg, K_PINNED_PUBKEY, cfg->pinned_pubkey, err) != 0)
        return -1;
    return 0;
}

int kt_config_load_file(kt_config *cfg, const char *path, const kt_owner_policy *owners,
                        bool missing_ok, bool *found, kt_error *err)
{
    kt_file_policy policy = {.owners = *owners, .private_read = false, .max_size = 0};
    kt_error ferr = {KT_OK, ""};
    char *data = NULL;
    size_t len = 0;
    unsigned seen = 0;
    int e = 0, rc = -1;

    if (found != NULL)
        *found = false;
    if (kt_file_read(path, &policy, &data, &len, &e, &ferr) != 0) {
        if (e == ENOENT && missing_ok)
            return 0;
        /* An unsafe or unreadable configuration is a configuration problem for the admin. */
        return kt_error_set(err, ferr.kind == KT_ERR_INTERNAL ? KT_ERR_INTERNAL : KT_ERR_CONFIG,
                            "%s", ferr.message);
    }
    if (found != NULL)
        *found = true;
    if (parse_text(cfg, path, data, len, &seen, err) != 0)
        goto out;
    if ((seen & (1u << K_CLIENT_SECRET_FILE)) && kt_config_load_secret(cfg, owners, err) != 0)
        goto out;
    rc = 0;
out:
    kt_wipe(data, len);
    free(data);
    return rc;
}

int kt_config_validate(const kt_config *cfg, kt_error *err)
{
    if (cfg->base_url == NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "base_url is not set");
    if (strncmp(cfg->base_url, "https://", 8) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "base_url must be an https:// URL");
    if (cfg->client_id == NULL || cfg->client_id[0] == '\0')
        return kt_error_set(err, KT_ERR_CONFIG, "client_id is not set");
    if (cfg->scopes == NULL || cfg->scopes[0] == '\0')
        return kt_error_set(err, KT_ERR_CONFIG, "scopes is not set");
    return 0;
}

char *kt_config_host(const kt_config *cfg)
{
    const char *rest;

    if (cfg->base_url == NULL || strncmp(cfg->base_url, "https://", 8) != 0)
        return NULL;
    rest = cfg->base_url + 8;
    return strndup(rest, strcspn(rest, "/"));
}

void kt_config_free(kt_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->base_url);
    free(cfg->client_id);
    kt_secret_free(cfg->client_secret);
    free(cfg->client_secret_file);
    free(cfg->scopes);
    free(cfg->ca_file);
    free(cfg->tpm_tcti);
    free(cfg->pkcs11_modules);
    free(cfg->pinned_pubkey);
    free(cfg->proxy);
    free(cfg->username);
    free(cfg->mfa);
    for (int i = 0; i < K_COUNT; i++)
        free(cfg->origin[i]);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- MFA factor orders ------------------------------------------------------------------ */

const char *kt_mfa_factor_name(kt_mfa_factor factor)
{
    switch (factor) {
    case KT_MFA_NONE:
        return "none";
    case KT_MFA_DEVICE:
        return "device";
    case KT_MFA_PUSH:
        return "push";
    }
    return "unknown";
}

int kt_mfa_order_parse(const char *text, bool allow_none, kt_mfa_order *out, kt_error *err)
{
    const char *p = text;

    memset(out, 0, sizeof(*out));
    if (text == NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "no MFA factor given");
    for (;;) {
        size_t len;
        kt_mfa_factor f;

        p += strspn(p, " \t");
        len = strcspn(p, ", \t");
        if (len == 6 && strncmp(p, "device", len) == 0)
            f = KT_MFA_DEVICE;
        else if (len == 4 && strncmp(p, "push", len) == 0)
            f = KT_MFA_PUSH;
        else if (len == 4 && strncmp(p, "none", len) == 0)
            f = KT_MFA_NONE;
        else
            return kt_error_set(err, KT_ERR_CONFIG,
                                "MFA factors are device and push, in the order to try them "
                                "(device,push)%s",
                                allow_none ? ", or none alone" : "");
        if (f == KT_MFA_NONE && (!allow_none || out->count > 0))
            return kt_error_set(err, KT_ERR_CONFIG,
                                allow_none ? "none stands alone: it is no factor to try in a list"
                                           : "none is no MFA factor to configure: skipping MFA is "
                                             "a choice for one login");
        for (unsigned i = 0; i < out->count; i++)
            if (out->factor[i] == f)
                return kt_error_set(err, KT_ERR_CONFIG, "MFA factor %s given twice",
                                    kt_mfa_factor_name(f));
        if (out->count > 0 && out->factor[0] == KT_MFA_NONE)
            return kt_error_set(err, KT_ERR_CONFIG,
                                "none stands alone: it is no factor to try in a list");
        if (out->count == KT_MFA_ORDER_MAX)
            return kt_error_set(err, KT_ERR_CONFIG, "too many MFA factors");
        out->factor[out->count++] = f;
        p += len;
        p += strspn(p, " \t");
        if (*p == '\0')
            return 0;
        if (*p != ',')
            return kt_error_set(err, KT_ERR_CONFIG, "MFA factors are separated by commas");
        p++;
    }
}

void kt_mfa_order_format(const kt_mfa_order *order, char *buf, size_t size)
{
    size_t used = 0;

    if (size == 0)
        return;
    buf[0] = '\0';
    for (unsigned i = 0; i < order->count && i < KT_MFA_ORDER_MAX; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i > 0 ? "," : "",
                         kt_mfa_factor_name(order->factor[i]));

        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
}
