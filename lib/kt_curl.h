/* libcurl, loaded when the first request is made rather than when the program starts.
 *
 * Most runs of kontist-auth (a cached `token`, git asking for a credential, `status`) never talk to
 * the network, and linking libcurl would make each of them map, relocate and bind its whole
 * dependency tree first (over 30 libraries on Debian 12). So nothing links libcurl directly: the
 * first kt_http request dlopen()s it by its soname and resolves the few functions kt_http calls.
 *
 * The library is found exactly as the dynamic linker finds a DT_NEEDED entry (no path of ours, no
 * environment variable of ours). It is loaded with RTLD_NOW, so everything in it is bound at load
 * time as with BIND_NOW, and it is never unloaded (curl_global_init is never undone). A program
 * that does link libcurl gets the copy already loaded. */
#ifndef KT_CURL_H
#define KT_CURL_H

#include <curl/curl.h>

#include "kt_error.h"

/* The soname loaded at run time; configure sets it, a build may override it. */
#ifndef KT_CURL_SONAME
#define KT_CURL_SONAME "libcurl.so.4"
#endif

/* 7.85 for CURLOPT_PROTOCOLS_STR, 7.87 for CURLOPT_QUICK_EXIT: checked against the headers at
 * build time and against the loaded library at run time. */
#define KT_CURL_MIN_VERSION 0x075700
#define KT_CURL_MIN_VERSION_TEXT "7.87.0"

/* The libcurl functions kt_http uses. The variadic ones get exactly the argument types libcurl's
 * documentation gives for each option (long, pointer, curl_off_t, function pointer). */
typedef struct kt_curl_api {
    CURLcode (*global_init)(long flags);
    curl_version_info_data *(*version_info)(CURLversion stamp);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *handle);
    CURLcode (*easy_setopt)(CURL *handle, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *handle, CURLINFO info, ...);
    CURLcode (*easy_perform)(CURL *handle);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *string);
    void (*slist_free_all)(struct curl_slist *list);
} kt_curl_api;

/* The loaded library, initialised (curl_global_init) exactly once per process, whichever thread
 * gets here first. On failure: NULL and KT_ERR_INTERNAL, e.g. "cannot load libcurl.so.4: ...;
 * install the Debian package libcurl4" - a broken installation of this machine, never
 * "unavailable" (which would let a PAM stack fall back). The outcome is kept: every later call
 * gives the same table or the same error. */
const kt_curl_api *kt_curl_get(kt_error *err);

/* The loading itself, without keeping anything and without curl_global_init: dlopen `soname`
 * (a soname or a path), resolve every function of kt_curl_api and check the version. The library
 * stays loaded either way. For kt_curl_get and the unit tests. */
int kt_curl_load(const char *soname, kt_curl_api *api, kt_error *err);

#endif
