#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pam_kontist.h"

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

static int fill_record(const char *name, int lineno, char **fields, int n, kt_device_record *rec,
                       kt_error *err)
{
    if (n == 3)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: a device id needs a key reference", name,
                            lineno);
    if (n == 4 && !kt_device_id_ok(fields[2]))
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: malformed device id", name, lineno);
    if (n == 4 && fields[3][0] != '/' && strchr(fields[3], ':') == NULL)
        return kt_error_set(err, KT_ERR_CONFIG,
                            "%s:%d: the key reference must be an absolute path or a URI", name,
                            lineno);
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

/* Checks one line and, when it names `user`, fills rec (a second line for the same user is an
 * error: the file would be ambiguous). */
static int parse_line(const char *name, int lineno, char *line, const char *user,
                      kt_device_record *rec, kt_error *err)
{
    char *fields[AUTHFILE_FIELDS] = {NULL};
    int n = split_fields(line, fields);

    if (n == 0)
        return 0;
    if (n < 0)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: too many fields", name, lineno);
    if (n == 1)
        return kt_error_set(err, KT_ERR_CONFIG, "%s:%d: missing Kontist username", name, lineno);
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
        rc = parse_line(name, lineno, line, user, rec, err);
    }
    free(copy);
    if (rc != 0) {
        kt_record_free(rec);
        return -1;
    }
    if (rec->username == NULL)
        return kt_error_set(err, KT_ERR_NOT_ENROLLED, "user %s has no line in %s", user, name);
    return 0;
}

int kt_pam_authfile_lookup(const char *path, const char *user, kt_device_record *rec, kt_error *err)
{
    kt_file_policy policy = {.private_read = false, .max_size = 0};
    char *text = NULL;
    size_t len = 0;
    int rc;

    memset(rec, 0, sizeof(*rec));
    kt_pam_trusted_owners(&policy.owners);
    if (kt_file_read(path, &policy, &text, &len, NULL, err) != 0) {
        /* A missing or unsafe authfile is the administrator's problem, not the user's. */
        err->kind = err->kind == KT_ERR_INTERNAL ? KT_ERR_INTERNAL : KT_ERR_CONFIG;
        return -1;
    }
    rc = kt_pam_authfile_parse(path, text, len, user, rec, err);
    free(text);
    return rc;
}
