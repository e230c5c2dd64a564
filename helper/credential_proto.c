#include <config.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "credential_proto.h"
#include "kontist.h"

void ka_cred_free(ka_cred *c)
{
    if (c == NULL)
        return;
    free(c->protocol);
    free(c->host);
    free(c->path);
    free(c->username);
    kt_secret_free(c->password);
    memset(c, 0, sizeof(*c));
}

static int replace(char **field, const char *value, size_t len, kt_error *err)
{
    char *copy = strndup(value, len);

    if (copy == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    kt_secret_free(*field);
    *field = copy;
    return 0;
}

/* Like replace(), percent-decoding the value as git does for the parts of a URL. A %00 or a
 * decoded newline could not travel in the protocol, so it makes the request malformed. */
static int replace_decoded(char **field, const char *value, size_t len, kt_error *err)
{
    char *copy = malloc(len + 1);
    size_t n = 0;

    if (copy == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    for (size_t i = 0; i < len; i++) {
        char pair[3] = {0};
        unsigned char byte;

        if (value[i] == '%' && i + 2 < len) {
            pair[0] = value[i + 1];
            pair[1] = value[i + 2];
        }
        if (pair[0] != '\0' && kt_hex_decode(pair, &byte, 1) == 1) {
            copy[n] = (char)byte;
            i += 2;
        } else {
            copy[n] = value[i];
        }
        if (copy[n] == '\0' || copy[n] == '\n') {
            kt_wipe(copy, len + 1);
            free(copy);
            return kt_error_set(err, KT_ERR_BAD_REQUEST, "credential request: bad escape in url");
        }
        n++;
    }
    copy[n] = '\0';
    kt_secret_free(*field);
    *field = copy;
    return 0;
}

/* url=SCHEME://[USER@]HOST[:PORT][/PATH] stands for its parts, as git reads it. */
static int parse_url(ka_cred *c, const char *v, size_t len, kt_error *err)
{
    const char *end = v + len;
    const char *sep = memmem(v, len, "://", 3);
    const char *auth, *slash, *at;

    if (sep == NULL || sep == v)
        return kt_error_set(err, KT_ERR_BAD_REQUEST, "credential request: url without a protocol");
    if (replace(&c->protocol, v, (size_t)(sep - v), err) != 0)
        return -1;
    auth = sep + 3;
    slash = memchr(auth, '/', (size_t)(end - auth));
    if (slash == NULL)
        slash = end;
    at = memrchr(auth, '@', (size_t)(slash - auth));
    if (at != NULL) {
        /* Only the user part is kept; a password in a URL is not ours to read. */
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        size_t ulen = (size_t)((colon != NULL ? colon : at) - auth);

        if (replace_decoded(&c->username, auth, ulen, err) != 0)
            return -1;
        auth = at + 1;
    }
    if (replace_decoded(&c->host, auth, (size_t)(slash - auth), err) != 0)
        return -1;
    if (slash < end && replace_decoded(&c->path, slash + 1, (size_t)(end - slash - 1), err) != 0)
        return -1;
    return 0;
}

static int parse_attribute(ka_cred *c, const char *line, size_t len, kt_error *err)
{
    const char *eq = memchr(line, '=', len);
    const char *v;
    size_t klen, vlen;

    if (eq == NULL || eq == line)
        return kt_error_set(err, KT_ERR_BAD_REQUEST,
                            "credential request: malformed line (no key=value)");
    klen = (size_t)(eq - line);
    v = eq + 1;
    vlen = len - klen - 1;
#define KEY_IS(name) (klen == sizeof(name) - 1 && memcmp(line, name, klen) == 0)
    if (KEY_IS("protocol"))
        return replace(&c->protocol, v, vlen, err);
    if (KEY_IS("host"))
        return replace(&c->host, v, vlen, err);
    if (KEY_IS("path"))
        return replace(&c->path, v, vlen, err);
    if (KEY_IS("username"))
        return replace(&c->username, v, vlen, err);
    if (KEY_IS("password"))
        return replace(&c->password, v, vlen, err);
    if (KEY_IS("url"))
        return parse_url(c, v, vlen, err);
    if (KEY_IS("capability[]")) {
        if (vlen == 8 && memcmp(v, "authtype", 8) == 0)
            c->cap_authtype = true;
        return 0;
    }
#undef KEY_IS
    return 0; /* unknown attributes are ignored, as git-credential(1) asks */
}

int ka_cred_parse(const char *buf, size_t len, ka_cred *c, kt_error *err)
{
    size_t pos = 0;

    memset(c, 0, sizeof(*c));
    if (memchr(buf, '\0', len) != NULL) {
        kt_error_set(err, KT_ERR_BAD_REQUEST, "credential request: contains a NUL byte");
        goto fail;
    }
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;

        pos += llen + (nl != NULL ? 1 : 0);
        if (llen > KA_CRED_LINE_MAX) {
            kt_error_set(err, KT_ERR_BAD_REQUEST, "credential request: line longer than %d bytes",
                         KA_CRED_LINE_MAX);
            goto fail;
        }
        if (llen == 0)
            break;
        if (parse_attribute(c, line, llen, err) != 0)
            goto fail;
    }
    return 0;
fail:
    ka_cred_free(c);
    return -1;
}

/* True once buf holds the blank line that ends a request. */
static bool request_complete(const char *buf, size_t len)
{
    if (len >= 1 && buf[0] == '\n')
        return true;
    return memmem(buf, len, "\n\n", 2) != NULL;
}

int ka_cred_read(int fd, ka_cred *c, kt_error *err)
{
    char *buf = malloc(KA_CRED_INPUT_MAX + 1);
    uint64_t deadline = kt_now_ms() + KA_CRED_READ_TIMEOUT_MS;
    size_t len = 0;
    int rc = -1;

    memset(c, 0, sizeof(*c));
    if (buf == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    while (!request_complete(buf, len)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t now = kt_now_ms();
        ssize_t n;
        int p;

        if (len > KA_CRED_INPUT_MAX) {
            kt_error_set(err, KT_ERR_BAD_REQUEST, "credential request: longer than %d bytes",
                         KA_CRED_INPUT_MAX);
            goto out;
        }
        p = now >= deadline ? 0 : poll(&pfd, 1, (int)(deadline - now));
        if (p < 0 && errno == EINTR)
            continue;
        if (p == 0) {
            kt_error_set(err, KT_ERR_BAD_REQUEST, "credential request: no end of input after %d s",
                         KA_CRED_READ_TIMEOUT_MS / 1000);
            goto out;
        }
        n = p < 0 ? -1 : read(fd, buf + len, KA_CRED_INPUT_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            kt_error_set(err, KT_ERR_IO, "cannot read the credential request: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    rc = ka_cred_parse(buf, len, c, err);
out:
    /* The request may carry a password (store, erase). */
    kt_wipe(buf, KA_CRED_INPUT_MAX + 1);
    free(buf);
    return rc;
}

bool ka_cred_value_ok(const char *v)
{
    return v != NULL && strchr(v, '\n') == NULL && strlen(v) <= KA_CRED_LINE_MAX;
}

int ka_cred_write(FILE *out, const char *key, const char *value)
{
    if (!ka_cred_value_ok(value))
        return -1;
    return fprintf(out, "%s=%s\n", key, value) < 0 ? -1 : 0;
}
