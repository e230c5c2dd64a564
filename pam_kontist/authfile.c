#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pam_helper.h"

#define AUTHFILE_FIELDS 4

void kt_pam_trusted_owners(kt_owner_policy *owners)
{
    uid_t euid = geteuid();

    owners->allow_root = true;
    owners->allow_uid = euid != 0;
    owners->uid = euid;
}

/* Splits one line (already without its newline) into at most AUTHFILE_FIELDS whitespace-separated
 * fields, in place. Returns the number of fields, or -1 when there are too many. */
static int split_fields(char *line, char **fields)
{
    int n = 0;
    char *p = line;

    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            return n;
        if (n == AUTHFILE_FIELDS)
            return -1;
        fields[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
}

/* The Kontist username a `*` line's template gives for user: %u is the local name, %% a percent
 * sign; any other % is an error (found when the file is parsed, whoever logs in). */
static int expand_template(const char *name, int lineno, const char *tmpl, const char *user,
                           char **out, kt_error *err)
{
    size_t cap = strlen(tmpl) + 1, len = 0;
    bool has_user = false;
    char *buf;

    for (const char *p = tmpl; *p != '\0'; p++) {
        if (*p != '%')
            continue;
        if (p[1] == 'u') {
            has_user = true;
            cap += user != NULL ? strlen(user) : 0;
            p++;
        } else if (p[1] == '%') {
            p++;
        } else {
            return kt_error_set(err, KT_ERR_CONFIG,
                                "%s:%d: only %%u and %%%% may follow %% in a "
                                "template",
                                name, lineno);
        }
    }
    /* A template without %u would pin every user to one Kontist account. */
    if (!has_user)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: the * line's template needs %%u", name,
                            lineno);
    if (user == NULL)
        return 0;
    buf = malloc(cap);
    if (buf == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    for (const char *p = tmpl; *p != '\0'; p++) {
        if (*p == '%' && p[1] == 'u') {
            memcpy(buf + len, user, strlen(user));
            len += strlen(user);
            p++;
        } else {
            buf[len++] = *p;
            if (*p == '%')
                p++;
        }
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static int fill_record(const char *name, int lineno, char **fields, int n, kt_device_record *rec,
                       kt_error *err)
{
    kt_error kerr = {KT_OK, ""};

    if (n == 3)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: a device id needs a key reference", name,
                            lineno);
    if (n == 4 && strcmp(fields[1], KT_PAM_NOT_PINNED) == 0)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: a user marked - has no device", name,
                            lineno);
    if (n == 4 && !kt_device_id_ok(fields[2]))
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: malformed device id", name, lineno);
    if (n == 4 && kt_key_ref_check(fields[3], &kerr) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: %s", name, lineno, kerr.message);
    /* A key on this line is root's, used for whoever logs in: its PIN is root's secret, never
     * asked of the person at the login prompt. */
    if (n == 4 && kt_key_ref_is_token(fields[3]) && !kt_key_ref_has_attr(fields[3], "pin-source"))
        return kt_error_set(err, KT_ERR_CONFIG,
                            "%s:%d: a pkcs11: key on an authfile line needs pin-source=file:... "
                            "in its URI (the PIN of a central key is never asked at login)",
                            name, lineno);
    rec->username = strdup(fields[1]);
    if (n == 4) {
        rec->device_id = strdup(fields[2]);
        rec->key_ref = strdup(fields[3]);
    }
    if (rec->username == NULL || (n == 4 && (rec->device_id == NULL || rec->key_ref == NULL))) {
        kt_record_free(rec);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

/* What the `*` line of a file says, until the whole file has been read. */
typedef struct wildcard {
    int lineno; /* 0: no `*` line */
    char *username;
} wildcard;

static int parse_wildcard(const char *name, int lineno, char **fields, int n, const char *user,
                          wildcard *wild, kt_error *err)
{
    if (n != 2)
        return kt_error_set(err, KT_ERR_CONFIG,
                            "%s:%d: a * line pins a template only, not a device or key", name,
                            lineno);
    if (wild->lineno != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: second * line", name, lineno);
    wild->lineno = lineno;
    return expand_template(name, lineno, fields[1], user, &wild->username, err);
}

/* Checks one line and, when it names `user`, fills rec (a second line for the same user is an
 * error: the file would be ambiguous). */
static int parse_line(const char *name, int lineno, char *line, const char *user,
                      kt_device_record *rec, wildcard *wild, kt_error *err)
{
    char *fields[AUTHFILE_FIELDS] = {NULL};
    int n = split_fields(line, fields);

    if (n == 0)
        return 0;
    if (n < 0)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: too many fields", name, lineno);
    if (n == 1)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: missing Kontist username", name, lineno);
    if (strcmp(fields[0], "*") == 0)
        return parse_wildcard(name, lineno, fields, n, user, wild, err);
    if (strcmp(fields[0], user) != 0)
        return 0;
    if (rec->username != NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: second line for user %s", name, lineno,
                            user);
    return fill_record(name, lineno, fields, n, rec, err);
}

int kt_pam_authfile_parse(const char *name, const char *text, size_t len, const char *user,
                          kt_device_record *rec, kt_error *err)
{
    char *copy, *line, *next;
    int lineno = 0, rc = 0;
    wildcard wild = {0, NULL};

    memset(rec, 0, sizeof(*rec));
    if (memchr(text, '\0', len) != NULL)
        return kt_error_set(err, KT_ERR_CONFIG, "%s: contains a NUL byte", name);
    copy = strndup(text, len);
    if (copy == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    /* Every line is checked, not only up to the user's: a broken file fails whoever logs in. */
    for (line = copy; rc == 0 && line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        lineno++;
        rc = parse_line(name, lineno, line, user, rec, &wild, err);
    }
    free(copy);
    /* A user's own line wins over the * line, wherever each stands. */
    if (rc == 0 && rec->username == NULL && wild.username != NULL) {
        rec->username = wild.username;
        wild.username = NULL;
    }
    free(wild.username);
    if (rc != 0) {
        kt_record_free(rec);
        return -1;
    }
    if (rec->username == NULL)
        return kt_error_set(err, KT_ERR_NOT_ENROLLED, "user %s has no line in %s", user, name);
    if (strcmp(rec->username, KT_PAM_NOT_PINNED) == 0) {
        kt_record_free(rec);
        return kt_error_set(err, KT_ERR_NOT_ENROLLED, "user %s is marked - in %s", user, name);
    }
    return 0;
}

int kt_pam_authfile_lookup(const char *path, bool missing_ok, const char *user,
                           kt_device_record *rec, kt_error *err)
{
    kt_file_policy policy = {.private_read = false, .max_size = 0};
    char *text = NULL;
    size_t len = 0;
    int rc, e = 0;

    memset(rec, 0, sizeof(*rec));
    kt_pam_trusted_owners(&policy.owners);
    if (kt_file_read(path, &policy, &text, &len, &e, err) != 0) {
        if (missing_ok && e == ENOENT) {
            kt_error_clear(err);
            return kt_error_set(err, KT_ERR_NOT_ENROLLED, "no pins: %s does not exist", path);
        }
        /* A missing or unsafe authfile is the administrator's problem, not the user's. */
        err->kind = err->kind == KT_ERR_INTERNAL ? KT_ERR_INTERNAL : KT_ERR_CONFIG;
        return -1;
    }
    rc = kt_pam_authfile_parse(path, text, len, user, rec, err);
    free(text);
    return rc;
}
