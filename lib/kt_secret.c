#include <config.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "kt_secret.h"

void kt_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

void kt_secret_free(char *s)
{
    if (s == NULL)
        return;
    kt_wipe(s, strlen(s));
    free(s);
}

void kt_secret_clear(char **s)
{
    if (s == NULL)
        return;
    kt_secret_free(*s);
    *s = NULL;
}
