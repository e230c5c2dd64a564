#include <config.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "kt_curl.h"

#if LIBCURL_VERSION_NUM < KT_CURL_MIN_VERSION
#error "libcurl " KT_CURL_MIN_VERSION_TEXT " or newer is needed"
#endif

static const struct {
    const char *name;
    size_t offset;
} kt_curl_symbols[] = {
    {"curl_global_init", offsetof(kt_curl_api, global_init)},
    {"curl_version_info", offsetof(kt_curl_api, version_info)},
    {"curl_easy_init", offsetof(kt_curl_api, easy_init)},
    {"curl_easy_cleanup", offsetof(kt_curl_api, easy_cleanup)},
    {"curl_easy_setopt", offsetof(kt_curl_api, easy_setopt)},
    {"curl_easy_getinfo", offsetof(kt_curl_api, easy_getinfo)},
    {"curl_easy_perform", offsetof(kt_curl_api, easy_perform)},
    {"curl_easy_strerror", offsetof(kt_curl_api, easy_strerror)},
    {"curl_slist_append", offsetof(kt_curl_api, slist_append)},
    {"curl_slist_free_all", offsetof(kt_curl_api, slist_free_all)},
};

int kt_curl_load(const char *soname, kt_curl_api *api, kt_error *err)
{
    const curl_version_info_data *info;
    const char *why;
    void *lib, *sym;
    size_t i;

    memset(api, 0, sizeof(*api));
    /* RTLD_NOW: every relocation of the library is done here, as BIND_NOW does for what a program
     * links. RTLD_LOCAL: its symbols are not offered to anything loaded later. */
    lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        why = dlerror();
        return kt_error_set(err, KT_ERR_INTERNAL,
                            "cannot load %s: %s; install the Debian package libcurl4", soname,
                            why != NULL ? why : "unknown error");
    }
    for (i = 0; i < sizeof(kt_curl_symbols) / sizeof(kt_curl_symbols[0]); i++) {
        (void)dlerror();
        sym = dlsym(lib, kt_curl_symbols[i].name);
        if (sym == NULL) {
            kt_error_set(err, KT_ERR_INTERNAL,
                         "cannot use %s: it has no %s; install the Debian package libcurl4", soname,
                         kt_curl_symbols[i].name);
            goto fail;
        }
        /* POSIX guarantees a function's address survives the trip through void *. */
        memcpy((char *)api + kt_curl_symbols[i].offset, &sym, sizeof(sym));
    }
    info = api->version_info(CURLVERSION_NOW);
    if (info == NULL || info->version_num < KT_CURL_MIN_VERSION) {
        kt_error_set(err, KT_ERR_INTERNAL,
                     "cannot use %s: it is libcurl %s, %s or newer is needed; install the Debian "
                     "package libcurl4",
                     soname, info != NULL && info->version != NULL ? info->version : "(unknown)",
                     KT_CURL_MIN_VERSION_TEXT);
        goto fail;
    }
    return 0;

fail:
    memset(api, 0, sizeof(*api));
    dlclose(lib);
    return -1;
}

static pthread_once_t kt_curl_once = PTHREAD_ONCE_INIT;
static kt_curl_api kt_curl_fns;
static kt_error kt_curl_error;
static int kt_curl_ready;

/* curl_global_init is process-wide and not safe to race: run it exactly once, whichever thread of
 * a program gets here first. It is never undone, because other code in the process may use libcurl
 * too. */
static void kt_curl_init_once(void)
{
    kt_curl_api api;

    if (kt_curl_load(KT_CURL_SONAME, &api, &kt_curl_error) != 0)
        return;
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        kt_error_set(&kt_curl_error, KT_ERR_INTERNAL, "libcurl initialisation failed");
        return;
    }
    kt_curl_fns = api;
    kt_curl_ready = 1;
}

const kt_curl_api *kt_curl_get(kt_error *err)
{
    if (pthread_once(&kt_curl_once, kt_curl_init_once) != 0) {
        kt_error_set(err, KT_ERR_INTERNAL, "libcurl initialisation failed");
        return NULL;
    }
    if (!kt_curl_ready) {
        kt_error_set(err, KT_ERR_INTERNAL, "%s", kt_curl_error.message);
        return NULL;
    }
    return &kt_curl_fns;
}
