/* The versions of the libraries this process runs with, as they report themselves (not the
 * headers it was built with): what a bug report needs. */
#ifndef KT_VERSION_H
#define KT_VERSION_H

#include <stddef.h>

typedef struct kt_runtime_versions {
    char curl[160];   /* "8.11.1 (OpenSSL/3.0.15)", or why libcurl cannot be loaded */
    char openssl[96]; /* "OpenSSL 3.0.15 3 Sep 2024" */
    char json_c[32];  /* "0.16" */
} kt_runtime_versions;

/* Loads libcurl the way the first request does (kt_curl_get) and asks each library. */
void kt_runtime_versions_get(kt_runtime_versions *v);

#endif
