#include <config.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

bool kt_wire_add(char *buf, size_t size, size_t *len, const char *key, const char *value)
{
    size_t klen = strlen(key);
    size_t vlen = value != NULL ? strcspn(value, "\n") : 0;

    /* key, '=', value, '\n' and room for a terminating NUL. */
    if (*len > size || size - *len < klen + vlen + 3)
        return false;
    memcpy(buf + *len, key, klen);
    buf[*len + klen] = '=';
    if (vlen > 0)
        memcpy(buf + *len + klen + 1, value, vlen);
    buf[*len + klen + 1 + vlen] = '\n';
    *len += klen + vlen + 2;
    buf[*len] = '\0';
    return true;
}

bool kt_wire_get(const char *text, size_t len, const char *key, char *out, size_t size)
{
    size_t klen = strlen(key);
    const char *p = text, *end = text + len;

    if (size == 0)
        return false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl != NULL ? nl : end;
        size_t line_len = (size_t)(line_end - p);

        if (line_len > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = line_len - klen - 1;

            if (vlen >= size)
                vlen = size - 1;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            /* A value is text: a NUL inside would silently shorten it. */
            return memchr(out, '\0', vlen) == NULL;
        }
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    out[0] = '\0';
    return false;
}

int kt_wire_send_all(int fd, const char *data, size_t len)
{
    bool socket = true;

    while (len > 0) {
        ssize_t n = socket ? send(fd, data, len, MSG_NOSIGNAL) : write(fd, data, len);

        if (n < 0 && errno == ENOTSOCK && socket) {
            socket = false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}
