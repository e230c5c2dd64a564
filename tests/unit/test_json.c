/* Unit tests for kt_json's parser with limits, its typed getters and its writer. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "kt_json.h"
#include "kt_secret.h"

/* free is wrapped (-Wl,--wrap=free): a block that held a secret must be all zero when freed. */
#include "free_watch.h"

/* Depth 3: an object in an object, no deeper. */
static const kt_json_doc doc = {"test doc", KT_ERR_CONFIG, 256, 3};

static json_object *parse(const char *text, kt_error *err)
{
    return kt_json_parse_doc(&doc, text, strlen(text), err);
}

static void expect_refused_len(const char *text, size_t len, const char *why)
{
    kt_error err = {KT_OK, ""};

    if (kt_json_parse_doc(&doc, text, len, &err) != NULL)
        fail_msg("accepted: %.*s", (int)len, text);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    if (strncmp(err.message, "test doc ", 9) != 0 || strstr(err.message, why) == NULL)
        fail_msg("for [%.*s] got \"%s\", want \"%s\"", (int)len, text, err.message, why);
}

static void expect_refused(const char *text, const char *why)
{
    expect_refused_len(text, strlen(text), why);
}

/* --- parsing --------------------------------------------------------------------------------- */

static void test_parse_accepts(void **state)
{
    kt_error err = {KT_OK, ""};
    json_object *obj;

    (void)state;
    obj = parse(" {\"a\":{\"b\":1}} \r\n\t", &err);
    assert_non_null(obj);
    assert_int_equal(err.kind, KT_OK);
    kt_json_put_wiped(obj);
}

static void test_parse_limits(void **state)
{
    static const char nul[] = "{\"a\":\"b\"}\0";
    char big[300];

    (void)state;
    expect_refused("", "is not valid JSON (empty)");
    expect_refused_len(NULL, 0, "is not valid JSON (empty)");
    expect_refused_len(nul, sizeof(nul) - 1, "NUL byte");
    memset(big, ' ', sizeof(big));
    memcpy(big, "{}", 2);
    expect_refused_len(big, 257, "larger than 256 bytes");
    /* The cap is on the text: 256 bytes are fine. */
    {
        kt_error err = {KT_OK, ""};
        json_object *obj = kt_json_parse_doc(&doc, big, 256, &err);

        assert_non_null(obj);
        kt_json_put_wiped(obj);
    }
    expect_refused("{\"a\":{\"b\":[1]}}", "nesting too deep");
    expect_refused("{\"a\":\"b\"", "(truncated)");
    expect_refused("{\"a\":\"b\"} {}", "has data after the JSON object");
    expect_refused("{\"a\":\"b\"}x", "has data after the JSON object");
    expect_refused("{'a':'b'}", "is not valid JSON");
    expect_refused("{\"a\":NaN}", "is not valid JSON");
    expect_refused("{\"a\":\"\xff\"}", "is not valid JSON");
    expect_refused("{\"a\":1,}", "is not valid JSON");
    expect_refused("[1]", "is not a JSON object");
    expect_refused("\"s\"", "is not a JSON object");
    expect_refused("42", "is not a JSON object");
    expect_refused("null", "is not a JSON object");
}

/* --- getters --------------------------------------------------------------------------------- */

static json_object *sample(void)
{
    kt_error err = {KT_OK, ""};
    json_object *obj =
        parse("{\"s\":\"v\",\"e\":\"\",\"n\":null,\"i\":7,\"neg\":-3,\"big\":99999999999999999999,"
              "\"t\":true,\"nul\":\"a\\u0000b\",\"ctl\":\"a\\nb\",\"d\":1.5,\"one\":1}",
              &err);

    assert_non_null(obj);
    return obj;
}

static void expect_err(int rc, kt_error *err, const char *want)
{
    assert_int_equal(rc, -1);
    assert_int_equal(err->kind, KT_ERR_CONFIG);
    if (strcmp(err->message, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", err->message, want);
    kt_error_clear(err);
}

static void test_get_string(void **state)
{
    json_object *obj = sample();
    kt_error err = {KT_OK, ""};
    char *out = NULL;

    (void)state;
    assert_int_equal(kt_json_string(&doc, obj, "s", KT_JSON_REQUIRED, 0, &out, &err), 0);
    assert_string_equal(out, "v");
    free(out);
    /* Absent and optional: NULL, no error. */
    assert_int_equal(kt_json_string(&doc, obj, "x", 0, 0, &out, &err), 0);
    assert_null(out);
    expect_err(kt_json_string(&doc, obj, "x", KT_JSON_REQUIRED, 0, &out, &err), &err,
               "test doc has no \"x\"");
    /* A null is a wrong type in our own files, and absent in API answers. */
    expect_err(kt_json_string(&doc, obj, "n", 0, 0, &out, &err), &err,
               "test doc: \"n\" is not a string");
    assert_int_equal(kt_json_string(&doc, obj, "n", KT_JSON_NULLABLE, 0, &out, &err), 0);
    assert_null(out);
    expect_err(kt_json_string(&doc, obj, "n", KT_JSON_NULLABLE | KT_JSON_REQUIRED, 0, &out, &err),
               &err, "test doc has no \"n\"");
    expect_err(kt_json_string(&doc, obj, "i", 0, 0, &out, &err), &err,
               "test doc: \"i\" is not a string");
    expect_err(kt_json_string(&doc, obj, "e", 0, 0, &out, &err), &err, "test doc: \"e\" is empty");
    assert_int_equal(kt_json_string(&doc, obj, "e", KT_JSON_MAY_BE_EMPTY, 0, &out, &err), 0);
    assert_string_equal(out, "");
    free(out);
    expect_err(kt_json_string(&doc, obj, "nul", 0, 0, &out, &err), &err,
               "test doc: \"nul\" is malformed (a NUL byte)");
    assert_int_equal(kt_json_string(&doc, obj, "ctl", 0, 0, &out, &err), 0);
    free(out);
    expect_err(kt_json_string(&doc, obj, "ctl", KT_JSON_PRINTABLE, 0, &out, &err), &err,
               "test doc: \"ctl\" is malformed (a control character)");
    expect_err(kt_json_string(&doc, obj, "ctl", 0, 2, &out, &err), &err,
               "test doc: \"ctl\" is too long");
    assert_int_equal(kt_json_string(&doc, obj, "ctl", 0, 3, &out, &err), 0);
    free(out);
    /* The API form: a required, non-empty string, KT_ERR_PROTOCOL. */
    assert_int_equal(kt_json_get_string(obj, "e", &out, "answer", &err), -1);
    assert_int_equal(err.kind, KT_ERR_PROTOCOL);
    assert_string_equal(err.message, "answer: \"e\" is empty");
    kt_json_put_wiped(obj);
}

static void test_get_int64_and_bool(void **state)
{
    json_object *obj = sample();
    kt_error err = {KT_OK, ""};
    int64_t n = 42;
    bool b = false;

    (void)state;
    assert_int_equal(kt_json_int64(&doc, obj, "i", KT_JSON_REQUIRED, 0, 10, &n, &err), 0);
    assert_int_equal(n, 7);
    n = 42;
    assert_int_equal(kt_json_int64(&doc, obj, "x", 0, 0, 10, &n, &err), 0);
    assert_int_equal(n, 42); /* absent: untouched */
    expect_err(kt_json_int64(&doc, obj, "x", KT_JSON_REQUIRED, 0, 10, &n, &err), &err,
               "test doc has no \"x\"");
    expect_err(kt_json_int64(&doc, obj, "i", 0, 0, 6, &n, &err), &err,
               "test doc: \"i\" is out of range");
    expect_err(kt_json_int64(&doc, obj, "neg", 0, 0, 10, &n, &err), &err,
               "test doc: \"neg\" is out of range");
    /* json-c saturates what int64 cannot hold: never a value. */
    expect_err(kt_json_int64(&doc, obj, "big", 0, INT64_MIN, INT64_MAX, &n, &err), &err,
               "test doc: \"big\" is out of range");
    expect_err(kt_json_int64(&doc, obj, "d", 0, 0, 10, &n, &err), &err,
               "test doc: \"d\" is not an integer");
    expect_err(kt_json_int64(&doc, obj, "s", 0, 0, 10, &n, &err), &err,
               "test doc: \"s\" is not an integer");
    assert_int_equal(n, 42);

    assert_int_equal(kt_json_bool(&doc, obj, "t", KT_JSON_REQUIRED, &b, &err), 0);
    assert_true(b);
    assert_int_equal(kt_json_bool(&doc, obj, "x", 0, &b, &err), 0);
    assert_true(b);
    /* 1 is not true. */
    expect_err(kt_json_bool(&doc, obj, "one", 0, &b, &err), &err,
               "test doc: \"one\" is not a boolean");
    expect_err(kt_json_bool(&doc, obj, "x", KT_JSON_REQUIRED, &b, &err), &err,
               "test doc has no \"x\"");
    kt_json_put_wiped(obj);
}

/* --- writer ---------------------------------------------------------------------------------- */

static void test_writer_compact(void **state)
{
    static const char value[] = "q\" b\\ s/ \b\f\n\r\t \x01\x1f\x7f caf\xc3\xa9";
    kt_json_writer w;
    kt_error err = {KT_OK, ""};
    json_object *back;
    size_t len = 0;
    char *text, *s = NULL;

    (void)state;
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_COMPACT);
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "s", value);
    kt_json_put_string(&w, "absent", NULL);
    kt_json_put_int64(&w, "min", INT64_MIN + 1);
    kt_json_put_bool(&w, "t", true);
    kt_json_put_bool(&w, "f", false);
    kt_json_open(&w, "o");
    kt_json_close(&w);
    kt_json_open(&w, "v");
    kt_json_put_string(&w, "k", "x");
    kt_json_close(&w);
    kt_json_close(&w);
    text = kt_json_writer_finish(&w, &len);
    assert_non_null(text);
    assert_string_equal(text, "{\"s\":\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f\\u007f "
                              "caf\xc3\xa9\",\"min\":-9223372036854775807,\"t\":true,"
                              "\"f\":false,\"o\":{},\"v\":{\"k\":\"x\"}}");
    assert_int_equal(len, strlen(text));
    /* What we write, we read back to the same values. */
    back = kt_json_parse_doc(&(kt_json_doc){"back", KT_ERR_PROTOCOL, 4096, 4}, text, len, &err);
    assert_non_null(back);
    assert_int_equal(kt_json_string(&doc, back, "s", KT_JSON_REQUIRED, 0, &s, &err), 0);
    assert_string_equal(s, value);
    free(s);
    kt_json_put_wiped(back);
    kt_secret_free(text);
}

static void test_writer_styles(void **state)
{
    kt_json_writer w;
    char *text;

    (void)state;
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_PRETTY | KT_JSON_STYLE_FILE);
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "a", "1");
    kt_json_open(&w, "o");
    kt_json_put_int64(&w, "b", 2);
    kt_json_close(&w);
    kt_json_close(&w);
    text = kt_json_writer_finish(&w, NULL);
    assert_string_equal(text, "{\n  \"a\":\"1\",\n  \"o\":{\n    \"b\":2\n  }\n}\n");
    free(text);

    kt_json_writer_init(&w, 0, KT_JSON_STYLE_FILE);
    kt_json_open(&w, NULL);
    kt_json_close(&w);
    text = kt_json_writer_finish(&w, NULL);
    assert_string_equal(text, "{}\n");
    free(text);
}

static void test_writer_failures(void **state)
{
    kt_json_writer w;

    (void)state;
    /* Past the cap. */
    kt_json_writer_init(&w, 16, KT_JSON_STYLE_COMPACT);
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "k", "0123456789");
    kt_json_close(&w);
    assert_null(kt_json_writer_finish(&w, NULL));
    /* The writer is empty again and usable. */
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "k", "01234");
    kt_json_close(&w);
    free(kt_json_writer_finish(&w, NULL) /* {"k":"01234"}: 13 bytes */);

    /* An object left open. */
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_COMPACT);
    kt_json_open(&w, NULL);
    assert_null(kt_json_writer_finish(&w, NULL));
    /* A member outside any object, a keyless nested object, a second top-level object, a close
     * too many, nothing at all. */
    kt_json_put_string(&w, "k", "v");
    assert_null(kt_json_writer_finish(&w, NULL));
    kt_json_open(&w, NULL);
    kt_json_open(&w, NULL);
    assert_null(kt_json_writer_finish(&w, NULL));
    kt_json_open(&w, NULL);
    kt_json_close(&w);
    kt_json_open(&w, NULL);
    kt_json_close(&w);
    assert_null(kt_json_writer_finish(&w, NULL));
    kt_json_close(&w);
    assert_null(kt_json_writer_finish(&w, NULL));
    assert_null(kt_json_writer_finish(&w, NULL));
}

static void test_writer_wipes(void **state)
{
    static const char secret[] = "refresh-secret-0123456789";
    kt_json_writer w;
    char padding[5000];
    char *text;

    (void)state;
    memset(padding, 'p', sizeof(padding) - 1);
    padding[sizeof(padding) - 1] = '\0';
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_COMPACT);
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "refresh_token", secret);
    assert_non_null(w.out.buf);
    /* Growing moves the text: the block left behind must be wiped. */
    watch(w.out.buf, w.out.cap);
    kt_json_put_string(&w, "padding", padding);
    assert_int_equal(watched_freed, 1);
    assert_true(watched_was_wiped);
    /* Discarding wipes what was written. */
    watch(w.out.buf, w.out.cap);
    kt_json_writer_discard(&w);
    assert_int_equal(watched_freed, 1);
    assert_true(watched_was_wiped);

    /* So does a failed finish. */
    kt_json_writer_init(&w, 0, KT_JSON_STYLE_COMPACT);
    kt_json_open(&w, NULL);
    kt_json_put_string(&w, "refresh_token", secret);
    watch(w.out.buf, w.out.cap);
    assert_null(kt_json_writer_finish(&w, NULL));
    assert_int_equal(watched_freed, 1);
    assert_true(watched_was_wiped);

    /* kt_json_build (request bodies with passwords) goes through the same writer. */
    {
        const char *pairs[] = {"password", secret, NULL};

        text = kt_json_build(pairs);
        assert_string_equal(text, "{\"password\":\"refresh-secret-0123456789\"}");
        kt_secret_free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts),   cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_get_string),      cmocka_unit_test(test_get_int64_and_bool),
        cmocka_unit_test(test_writer_compact),  cmocka_unit_test(test_writer_styles),
        cmocka_unit_test(test_writer_failures), cmocka_unit_test(test_writer_wipes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
