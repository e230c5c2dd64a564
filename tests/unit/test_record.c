/* Unit tests for the device record: strict parsing, serialisation, safe load and atomic save. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_record.h"
#include "test_util.h"

#define OTHER_UID 65534

static int parse(const char *text, kt_device_record *rec, kt_error *err)
{
    return kt_record_parse(text, strlen(text), rec, err);
}

static void expect_bad_len(const char *text, size_t len, const char *what)
{
    kt_device_record rec;
    kt_error err = {KT_OK, ""};

    if (kt_record_parse(text, len, &rec, &err) != -1)
        fail_msg("accepted: %s", text);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    if (strstr(err.message, what) == NULL)
        fail_msg("for [%s] got \"%s\", want \"%s\"", text, err.message, what);
    assert_null(rec.username);
    assert_null(rec.device_id);
    assert_null(rec.key_ref);
    assert_null(rec.name);
}

static void expect_bad(const char *text, const char *what)
{
    expect_bad_len(text, strlen(text), what);
}

static void test_parse_full(void **state)
{
    kt_device_record rec;
    kt_error err = {KT_OK, ""};

    assert_int_equal(parse("{\"username\":\"demo@example.com\",\"device_id\":\"d-1_2-3\","
                           "\"key\":\"/home/demo/.config/kontist/device-key.pem\","
                           "\"name\":\"laptop \\u00e4\"}\n",
                           &rec, &err),
                     0);
    assert_string_equal(rec.username, "demo@example.com");
    assert_string_equal(rec.device_id, "d-1_2-3");
    assert_string_equal(rec.key_ref, "/home/demo/.config/kontist/device-key.pem");
    assert_string_equal(rec.name, "laptop \xc3\xa4");
    kt_record_free(&rec);
    assert_null(rec.username);
    kt_record_free(&rec);
    kt_record_free(NULL);
}

static void test_parse_minimal_and_unknown_members(void **state)
{
    kt_device_record rec;
    kt_error err = {KT_OK, ""};

    assert_int_equal(parse("  {\"username\":\"u\"}  \n\t", &rec, &err), 0);
    assert_string_equal(rec.username, "u");
    assert_null(rec.device_id);
    assert_null(rec.key_ref);
    assert_null(rec.name);
    kt_record_free(&rec);

    /* Members a newer version may add are ignored, whatever their type. */
    assert_int_equal(parse("{\"version\":2,\"username\":\"u\",\"extra\":{\"a\":[1]},"
                           "\"key\":\"pkcs11:token=kontist;object=dev\"}",
                           &rec, &err),
                     0);
    assert_string_equal(rec.key_ref, "pkcs11:token=kontist;object=dev");
    kt_record_free(&rec);
    assert_int_equal(parse("{\"username\":\"u\",\"key\":\"handle:0x81000001\"}", &rec, &err), 0);
    assert_string_equal(rec.key_ref, "handle:0x81000001");
    kt_record_free(&rec);
    assert_int_equal(err.kind, KT_OK);
}

static void test_parse_not_an_object(void **state)
{
    expect_bad("", "not valid JSON");
    expect_bad("not json", "not valid JSON");
    expect_bad("{\"username\":\"u\"", "not valid JSON");
    expect_bad("{'username':'u'}", "not valid JSON");
    expect_bad("{\"username\":\"u\",}", "not valid JSON");
    expect_bad("[{\"username\":\"u\"}]", "not a JSON object");
    expect_bad("\"u\"", "not a JSON object");
    expect_bad("42 ", "not a JSON object");
    expect_bad("42", "not a JSON object");
    expect_bad("null", "not a JSON object");
    expect_bad("{\"username\":\"u\"} {}", "after the JSON object");
    expect_bad("{\"username\":\"u\"}x", "after the JSON object");
    expect_bad("{\"username\":\"u\",\"x\":[[[[[[1]]]]]]}", "not valid JSON"); /* too deep */
    expect_bad("{\"username\":\"\xff\xfe\"}", "not valid JSON");              /* not UTF-8 */
}

static void test_parse_nul_and_size(void **state)
{
    static const char with_nul[] = "{\"username\":\"u\"}\0";
    char *big = malloc(KT_RECORD_MAX_SIZE + 64);
    size_t n;

    expect_bad_len(with_nul, sizeof(with_nul) - 1, "NUL");
    expect_bad("{\"username\":\"a\\u0000b\"}", "malformed");

    assert_non_null(big);
    n = (size_t)snprintf(big, 64, "{\"username\":\"u\",\"pad\":\"");
    memset(big + n, 'p', KT_RECORD_MAX_SIZE);
    strcpy(big + n + KT_RECORD_MAX_SIZE, "\"}");
    expect_bad(big, "larger than");
    free(big);
}

static void test_parse_missing_or_wrong_types(void **state)
{
    expect_bad("{}", "no \"username\"");
    expect_bad("{\"device_id\":\"d\"}", "no \"username\"");
    expect_bad("{\"username\":\"\"}", "\"username\" is empty");
    expect_bad("{\"username\":7}", "\"username\" is not a string");
    expect_bad("{\"username\":null}", "\"username\" is not a string");
    expect_bad("{\"username\":[\"u\"]}", "\"username\" is not a string");
    expect_bad("{\"username\":\"u\",\"device_id\":123}", "\"device_id\" is not a string");
    expect_bad("{\"username\":\"u\",\"device_id\":\"\"}", "\"device_id\" is empty");
    expect_bad("{\"username\":\"u\",\"key\":null}", "\"key\" is not a string");
    expect_bad("{\"username\":\"u\",\"key\":true}", "\"key\" is not a string");
    expect_bad("{\"username\":\"u\",\"name\":{}}", "\"name\" is not a string");
    expect_bad("{\"username\":\"u\\nv\"}", "malformed");
}

static void test_parse_unsafe_values(void **state)
{
    /* The device id ends up in API paths: no path or query characters. */
    expect_bad("{\"username\":\"u\",\"device_id\":\"../../admin\"}", "device_id");
    expect_bad("{\"username\":\"u\",\"device_id\":\"a/b\"}", "device_id");
    expect_bad("{\"username\":\"u\",\"device_id\":\"a?b=c\"}", "device_id");
    expect_bad("{\"username\":\"u\",\"device_id\":\"a b\"}", "device_id");
    /* The same rule as for ids the server hands out (kt_device_id_ok): no '.' or '~' either. */
    expect_bad("{\"username\":\"u\",\"device_id\":\"d-1.2\"}", "device_id");
    expect_bad("{\"username\":\"u\",\"device_id\":\"d~1\"}", "device_id");
    /* A key must not depend on the working directory. */
    expect_bad("{\"username\":\"u\",\"key\":\"device-key.pem\"}", "\"key\"");
    expect_bad("{\"username\":\"u\",\"key\":\"./device-key.pem\"}", "\"key\"");
    expect_bad("{\"username\":\"u\",\"key\":\"pkcs11:\"}", "\"key\"");
    expect_bad("{\"username\":\"u\",\"key\":\"1abc:x\"}", "\"key\"");
}

static void test_serialize_round_trip(void **state)
{
    kt_device_record rec = {
        .username = (char[]){"demo@example.com"},
        .device_id = (char[]){"0b5c2d6e-1f2a-4b3c-8d9e-0a1b2c3d4e5f"},
        .key_ref = (char[]){"/home/demo/.config/kontist/device-key.pem"},
        .name = (char[]){"my \"laptop\"\\x"},
    };
    kt_device_record back, minimal = {.username = (char[]){"u"}};
    kt_error err = {KT_OK, ""};
    char *text = kt_record_serialize(&rec);

    assert_non_null(text);
    assert_non_null(strstr(text, "\"key\""));
    assert_null(strstr(text, "key_ref"));
    assert_int_equal(parse(text, &back, &err), 0);
    assert_string_equal(back.username, rec.username);
    assert_string_equal(back.device_id, rec.device_id);
    assert_string_equal(back.key_ref, rec.key_ref);
    assert_string_equal(back.name, rec.name);
    kt_record_free(&back);
    free(text);

    text = kt_record_serialize(&minimal);
    assert_non_null(text);
    assert_null(strstr(text, "device_id"));
    assert_null(strstr(text, "null"));
    assert_int_equal(parse(text, &back, &err), 0);
    assert_string_equal(back.username, "u");
    assert_null(back.device_id);
    kt_record_free(&back);
    free(text);
}

/* ---- files ------------------------------------------------------------------------------ */

typedef struct fixture {
    test_dir dir;
    char path[PATH_MAX];
    kt_owner_policy owners;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || test_dir_create(&f->dir, "test-record") != 0) {
        free(f);
        return -1;
    }
    test_path(&f->dir, "device.json", f->path, sizeof(f->path));
    f->owners = (kt_owner_policy){.allow_root = false, .allow_uid = true, .uid = geteuid()};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    test_dir_remove(&f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *data, mode_t mode)
{
    assert_int_equal(write_file_mode(path, data, strlen(data), mode), 0);
}

static void test_load_missing(void **state)
{
    fixture *f = *state;
    kt_device_record rec;
    kt_error err = {KT_OK, ""};
    int e = 0;

    assert_int_equal(kt_record_load(f->path, &f->owners, &rec, &e, &err), -1);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);
    assert_int_equal(e, ENOENT);
    assert_null(rec.username);
    kt_error_clear(&err);
    assert_int_equal(kt_record_load(f->path, &f->owners, &rec, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_NOT_ENROLLED);
}

static void test_load_good(void **state)
{
    fixture *f = *state;
    kt_device_record rec;
    kt_error err = {KT_OK, ""};
    int e = -1;

    write_file(f->path, "{\"username\":\"u\",\"device_id\":\"d1\"}", 0600);
    assert_int_equal(kt_record_load(f->path, &f->owners, &rec, &e, &err), 0);
    assert_int_equal(e, 0);
    assert_string_equal(rec.username, "u");
    assert_string_equal(rec.device_id, "d1");
    kt_record_free(&rec);
}

static void test_load_unsafe(void **state)
{
    fixture *f = *state;
    kt_owner_policy root_only = {.allow_root = true, .allow_uid = false};
    kt_device_record rec;
    kt_error err = {KT_OK, ""};
    char target[PATH_MAX];
    int e = 0;

    write_file(f->path, "{\"username\":\"u\"}", 0644);
    assert_int_equal(kt_record_load(f->path, &f->owners, &rec, &e, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "readable by group or others"));

    kt_error_clear(&err);
    assert_int_equal(chmod(f->path, 0600), 0);
    test_path(&f->dir, "real.json", target, sizeof(target));
    assert_int_equal(rename(f->path, target), 0);
    assert_int_equal(symlink(target, f->path), 0);
    assert_int_equal(kt_record_load(f->path, &f->owners, &rec, &e, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_not_equal(e, ENOENT);

    kt_error_clear(&err);
    if (geteuid() == 0) {
        assert_int_equal(chown(target, OTHER_UID, OTHER_UID), 0);
        assert_int_equal(kt_record_load(target, &root_only, &rec, &e, &err), -1);
    } else {
        assert_int_equal(kt_record_load(target, &root_only, &rec, &e, &err), -1);
    }
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_non_null(strstr(err.message, "owned by uid"));
}

static void test_load_malformed_names_file(void **state)
{
    fixture *f = *state;
    kt_device_record rec;
    kt_error err = {KT_OK, ""};

    write_file(f->path, "{\"username\":5}", 0600);
    assert_int_equal(kt_record_load(f->path, &f->owners, &rec, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, f->path));
    assert_non_null(strstr(err.message, "not a string"));
    assert_null(rec.username);
}

static void test_save_creates_private_dirs(void **state)
{
    fixture *f = *state;
    kt_device_record rec = {.username = (char[]){"u"}, .device_id = (char[]){"d-9"}};
    kt_device_record back;
    kt_error err = {KT_OK, ""};
    char path[PATH_MAX], dir[PATH_MAX];
    struct stat st;

    test_path(&f->dir, "home/.config/kontist", dir, sizeof(dir));
    test_path(&f->dir, "home/.config/kontist/device.json", path, sizeof(path));
    assert_int_equal(kt_record_save(path, &rec, &err), 0);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(kt_record_load(path, &f->owners, &back, NULL, &err), 0);
    assert_string_equal(back.username, "u");
    assert_string_equal(back.device_id, "d-9");
    assert_null(back.key_ref);
    kt_record_free(&back);

    /* Saving again replaces the record. */
    rec.device_id = (char[]){"d-10"};
    assert_int_equal(kt_record_save(path, &rec, &err), 0);
    assert_int_equal(kt_record_load(path, &f->owners, &back, NULL, &err), 0);
    assert_string_equal(back.device_id, "d-10");
    kt_record_free(&back);
}

static void test_save_refusals(void **state)
{
    fixture *f = *state;
    kt_device_record no_user = {.device_id = (char[]){"d"}};
    kt_device_record bad_id = {.username = (char[]){"u"}, .device_id = (char[]){"a/b"}};
    kt_device_record good = {.username = (char[]){"u"}};
    kt_error err = {KT_OK, ""};
    char path[PATH_MAX];

    assert_int_equal(kt_record_save(f->path, &no_user, &err), -1);
    assert_int_equal(access(f->path, F_OK), -1);
    kt_error_clear(&err);
    assert_int_equal(kt_record_save(f->path, &bad_id, &err), -1);
    assert_int_equal(access(f->path, F_OK), -1);
    kt_error_clear(&err);
    assert_int_equal(kt_record_save("device.json", &good, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);

    /* A directory others can write to is no place for it. */
    kt_error_clear(&err);
    test_path(&f->dir, "shared", path, sizeof(path));
    assert_int_equal(mkdir(path, 0777), 0);
    assert_int_equal(chmod(path, 0777), 0);
    test_path(&f->dir, "shared/device.json", path, sizeof(path));
    assert_int_equal(kt_record_save(path, &good, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    assert_int_equal(access(path, F_OK), -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_minimal_and_unknown_members),
        cmocka_unit_test(test_parse_not_an_object),
        cmocka_unit_test(test_parse_nul_and_size),
        cmocka_unit_test(test_parse_missing_or_wrong_types),
        cmocka_unit_test(test_parse_unsafe_values),
        cmocka_unit_test(test_serialize_round_trip),
        T(test_load_missing),
        T(test_load_good),
        T(test_load_unsafe),
        T(test_load_malformed_names_file),
        T(test_save_creates_private_dirs),
        T(test_save_refusals),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
