/* kt_curl: libcurl loaded on the first request, with clear errors when it cannot be, and kt_http
 * creating no libcurl state until it sends. The program links no libcurl (as kontist-auth), so
 * whether the library is in the process tells whether something loaded it. */
#include <config.h>

#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_curl.h"
#include "kt_http.h"
#include "kt_mock.h"

#ifndef KT_TEST_FAKE_CURL
#error "KT_TEST_FAKE_CURL must name the fake libcurl built for this test"
#endif

/* Whether KT_CURL_SONAME is mapped into this process, without loading it. */
static bool curl_in_process(void)
{
    void *lib = dlopen(KT_CURL_SONAME, RTLD_NOW | RTLD_NOLOAD);

    if (lib == NULL)
        return false;
    dlclose(lib);
    return true;
}

static void assert_message_has(const kt_error *err, const char *part)
{
    if (strstr(err->message, part) == NULL)
        fail_msg("\"%s\" lacks \"%s\"", err->message, part);
}

/* Runs first, before anything in this program could have loaded libcurl. */
static void test_handle_without_request_loads_nothing(void **state)
{
    kt_config cfg;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;
    kt_http_request req = {.method = "GET", .path = "/api/user", .auth = KT_AUTH_NONE};

    (void)state;
    assert_false(curl_in_process());
    kt_test_config(&cfg, NULL); /* https://127.0.0.1:1: nothing listens there */
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);
    kt_http_set_deadline(http, kt_now_ms() + 5000);
    assert_int_equal(kt_http_connections(http), 0);
    kt_http_free(http);
    assert_false(curl_in_process());

    /* The first request loads it; the failure is the network's, not the loader's. */
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);
    assert_int_equal(kt_http_send(http, &req, &resp, &err), -1);
    assert_int_equal(err.kind, KT_ERR_UNAVAILABLE);
    assert_true(curl_in_process());
    kt_http_free(http);
    kt_test_config_free(&cfg);
}

static void test_load_the_real_library(void **state)
{
    kt_curl_api api;
    kt_error err = {0};
    const curl_version_info_data *info;

    (void)state;
    assert_int_equal(kt_curl_load(KT_CURL_SONAME, &api, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_non_null(api.global_init);
    assert_non_null(api.version_info);
    assert_non_null(api.easy_init);
    assert_non_null(api.easy_cleanup);
    assert_non_null(api.easy_setopt);
    assert_non_null(api.easy_getinfo);
    assert_non_null(api.easy_perform);
    assert_non_null(api.easy_strerror);
    assert_non_null(api.slist_append);
    assert_non_null(api.slist_free_all);
    info = api.version_info(CURLVERSION_NOW);
    assert_non_null(info);
    assert_true(info->version_num >= KT_CURL_MIN_VERSION);
    assert_string_equal(api.easy_strerror(CURLE_OK), "No error");
}

static void test_missing_library(void **state)
{
    kt_curl_api api;
    kt_error err = {0};

    (void)state;
    memset(&api, 0xa5, sizeof(api));
    assert_int_equal(kt_curl_load("libkontist-no-such-curl.so.4", &api, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    assert_message_has(&err, "cannot load libkontist-no-such-curl.so.4: ");
    assert_message_has(&err, "install the Debian package libcurl4");
    /* Nothing half-filled is left for a careless caller. */
    assert_null(api.easy_init);
    assert_null(api.global_init);
}

static void test_library_without_the_functions(void **state)
{
    kt_curl_api api;
    kt_error err = {0};

    (void)state;
    /* Loads fine, but it is not libcurl. */
    assert_int_equal(kt_curl_load("libjson-c.so.5", &api, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    assert_message_has(&err, "cannot use libjson-c.so.5: it has no curl_global_init");
    assert_message_has(&err, "libcurl4");
    assert_null(api.easy_setopt);
}

static void test_library_too_old(void **state)
{
    kt_curl_api api;
    kt_error err = {0};

    (void)state;
    assert_int_equal(kt_curl_load(KT_TEST_FAKE_CURL, &api, &err), -1);
    assert_int_equal(err.kind, KT_ERR_INTERNAL);
    assert_message_has(&err, "it is libcurl 7.74.0, " KT_CURL_MIN_VERSION_TEXT " or newer");
    assert_null(api.global_init);
}

static void test_error_is_never_unavailable(void **state)
{
    kt_curl_api api;
    kt_error err = {0};

    (void)state;
    /* Whatever the reason, a broken installation must not open a PAM stack's fallback. */
    kt_curl_load("libkontist-no-such-curl.so.4", &api, &err);
    assert_int_not_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_error_clear(&err);
    kt_curl_load("libjson-c.so.5", &api, &err);
    assert_int_not_equal(err.kind, KT_ERR_UNAVAILABLE);
    kt_error_clear(&err);
    kt_curl_load(KT_TEST_FAKE_CURL, &api, &err);
    assert_int_not_equal(err.kind, KT_ERR_UNAVAILABLE);
}

#define THREADS 8

static void *get_api(void *arg)
{
    kt_error err = {0};

    *(const kt_curl_api **)arg = kt_curl_get(&err);
    return NULL;
}

static void test_get_is_once_per_process(void **state)
{
    pthread_t threads[THREADS];
    const kt_curl_api *got[THREADS];
    const kt_curl_api *api;
    kt_error err = {0};
    int i;

    (void)state;
    for (i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, get_api, &got[i]), 0);
    for (i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    api = kt_curl_get(&err);
    assert_non_null(api);
    assert_int_equal(err.kind, KT_OK);
    for (i = 0; i < THREADS; i++)
        assert_ptr_equal(got[i], api);
    /* Initialised: a handle can be made and used. */
    {
        CURL *h = api->easy_init();
        assert_non_null(h);
        assert_int_equal(api->easy_setopt(h, CURLOPT_NOSIGNAL, 1L), CURLE_OK);
        api->easy_cleanup(h);
    }
}

static void test_request_against_the_mock(void **state)
{
    kt_mock mock;
    kt_config cfg;
    kt_error err = {0};
    kt_http *http;
    kt_http_response resp;
    kt_http_request req = {.method = "GET", .path = "/api/user", .auth = KT_AUTH_NONE};

    (void)state;
    assert_int_equal(kt_mock_start(&mock, NULL), 0);
    kt_test_config(&cfg, &mock);
    http = kt_http_new(&cfg, &err);
    assert_non_null(http);
    /* Two requests over the one handle the first one made: one connection. */
    assert_int_equal(kt_http_send(http, &req, &resp, &err), 0);
    assert_int_equal(resp.status, 401);
    kt_http_response_free(&resp);
    assert_int_equal(kt_http_send(http, &req, &resp, &err), 0);
    assert_int_equal(resp.status, 401);
    kt_http_response_free(&resp);
    assert_int_equal(kt_http_connections(http), 1);
    kt_http_free(http);
    kt_test_config_free(&cfg);
    kt_mock_stop(&mock);
    kt_mock_cleanup_shared();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handle_without_request_loads_nothing),
        cmocka_unit_test(test_load_the_real_library),
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_library_without_the_functions),
        cmocka_unit_test(test_library_too_old),
        cmocka_unit_test(test_error_is_never_unavailable),
        cmocka_unit_test(test_get_is_once_per_process),
        cmocka_unit_test(test_request_against_the_mock),
    };

    return cmocka_run_group_tests_name("kt_curl", tests, NULL, NULL);
}
