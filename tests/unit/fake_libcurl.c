/* A stand-in for libcurl.so.4 that has every function kt_curl resolves but says it is libcurl
 * 7.74.0, older than kontist-auth needs: tests/unit/test_curl.c loads it to see the version check
 * refuse it before anything is called. Built by `make check` only. */
/* The functions are defined under their own names: no typecheck macros in the way. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

static char fake_version[] = "7.74.0";
static curl_version_info_data fake_info = {
    .age = CURLVERSION_FIRST,
    .version = fake_version,
    .version_num = 0x074a00,
};

curl_version_info_data *curl_version_info(CURLversion stamp)
{
    (void)stamp;
    return &fake_info;
}

CURLcode curl_global_init(long flags)
{
    (void)flags;
    return CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void)
{
    return NULL;
}

void curl_easy_cleanup(CURL *handle)
{
    (void)handle;
}

CURLcode curl_easy_setopt(CURL *handle, CURLoption option, ...)
{
    (void)handle;
    (void)option;
    return CURLE_FAILED_INIT;
}

CURLcode curl_easy_getinfo(CURL *handle, CURLINFO info, ...)
{
    (void)handle;
    (void)info;
    return CURLE_FAILED_INIT;
}

CURLcode curl_easy_perform(CURL *handle)
{
    (void)handle;
    return CURLE_FAILED_INIT;
}

const char *curl_easy_strerror(CURLcode code)
{
    (void)code;
    return "fake libcurl";
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *string)
{
    (void)list;
    (void)string;
    return NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
    (void)list;
}
