/* Unit tests for the configuration parser and the safe loading of configuration and secret. */
#include <config.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt_config.h"
#include "kt_file.h"
#include "kt_secret.h"
#include "test_util.h"

#define OTHER_UID 65534
#define PIN_A "sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE="
#define PIN_B "sha256//t62CeU2tQiqkexU74Gxa2eg7fRbEgoChTociMee9wno="

/* ---- parsing ---------------------------------------------------------------------------- */

static int parse(kt_config *cfg, const char *text, kt_error *err)
{
    return kt_config_parse(cfg, "test.conf", text, strlen(text), err);
}

/* Parses text on top of the defaults and expects a KT_ERR_CONFIG that starts with
 * "test.conf:LINE: " and mentions `what`. */
static void expect_error_len(const char *text, size_t len, unsigned line, const char *what)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};
    char prefix[64];

    kt_config_init(&cfg);
    snprintf(prefix, sizeof(prefix), "test.conf:%u: ", line);
    if (kt_config_parse(&cfg, "test.conf", text, len, &err) != -1)
        fail_msg("accepted: %s", text);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    if (strncmp(err.message, prefix, strlen(prefix)) != 0 || strstr(err.message, what) == NULL)
        fail_msg("for [%s] got \"%s\", want \"%s...%s\"", text, err.message, prefix, what);
    kt_config_free(&cfg);
}

static void expect_error(const char *text, unsigned line, const char *what)
{
    expect_error_len(text, strlen(text), line, what);
}

/* Sets one key through a config line and returns the config for inspection. */
static void parse_one(kt_config *cfg, const char *line)
{
    kt_error err = {KT_OK, ""};

    kt_config_init(cfg);
    if (parse(cfg, line, &err) != 0)
        fail_msg("refused [%s]: %s", line, err.message);
}

static void test_defaults(void **state)
{
    kt_config cfg;

    kt_config_init(&cfg);
    assert_string_equal(cfg.base_url, "https://api.kontist.com");
    assert_string_equal(cfg.scopes, "offline users accounts");
    assert_int_equal(cfg.connect_timeout, 5);
    assert_int_equal(cfg.timeout, 10);
    assert_int_equal(cfg.login_timeout, 30);
    assert_null(cfg.client_id);
    assert_null(cfg.client_secret);
    assert_null(cfg.client_secret_file);
    assert_null(cfg.ca_file);
    assert_null(cfg.pinned_pubkey);
    assert_null(cfg.proxy);
    assert_null(cfg.username);
    kt_config_free(&cfg);
    assert_null(cfg.base_url);
    kt_config_free(&cfg); /* twice is harmless */
}

static void test_parse_every_key(void **state)
{
    const char *text = "# comment\n"
                       "\n"
                       "   \t\n"
                       "  base_url   =   https://Staging-API.konto.io/  \n"
                       "client_id=my-client\r\n"
                       "client_secret_file = /etc/kontist/secret\n"
                       "scopes = offline\t users  accounts\n"
                       "  # indented comment = not a key\n"
                       "ca_file = /etc/ssl/my ca.pem\n"
                       "pinned_pubkey = " PIN_A ";" PIN_B "\n"
                       "proxy = socks5h://127.0.0.1:1080\n"
                       "username = demo@example.com\n"
                       "connect_timeout = 1\n"
                       "timeout = 300\n"
                       "login_timeout = 45"; /* no final newline */
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    kt_config_init(&cfg);
    assert_int_equal(parse(&cfg, text, &err), 0);
    assert_int_equal(err.kind, KT_OK);
    assert_string_equal(cfg.base_url, "https://staging-api.konto.io");
    assert_string_equal(cfg.client_id, "my-client");
    assert_string_equal(cfg.client_secret_file, "/etc/kontist/secret");
    assert_null(cfg.client_secret); /* parsing alone never reads the secret */
    assert_string_equal(cfg.scopes, "offline users accounts");
    assert_string_equal(cfg.ca_file, "/etc/ssl/my ca.pem");
    assert_string_equal(cfg.pinned_pubkey, PIN_A ";" PIN_B);
    assert_string_equal(cfg.proxy, "socks5h://127.0.0.1:1080");
    assert_string_equal(cfg.username, "demo@example.com");
    assert_int_equal(cfg.connect_timeout, 1);
    assert_int_equal(cfg.timeout, 300);
    assert_int_equal(cfg.login_timeout, 45);
    assert_int_equal(kt_config_validate(&cfg, &err), 0);
    kt_config_free(&cfg);
}

static void test_parse_empty_and_comments_only(void **state)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    kt_config_init(&cfg);
    assert_int_equal(kt_config_parse(&cfg, "empty", "", 0, &err), 0);
    assert_int_equal(parse(&cfg, "# only\n#comments\n\n", &err), 0);
    assert_string_equal(cfg.base_url, KT_DEFAULT_BASE_URL);
    kt_config_free(&cfg);
}

static void test_parse_data_file(void **state)
{
    const char *srcdir = getenv("KT_TEST_SRCDIR");
    char path[PATH_MAX], text[4096];
    kt_config cfg;
    kt_error err = {KT_OK, ""};
    size_t len;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/unit/data/config/good.conf", srcdir ? srcdir : "tests");
    fp = fopen(path, "r");
    assert_non_null(fp);
    len = fread(text, 1, sizeof(text), fp);
    fclose(fp);
    kt_config_init(&cfg);
    assert_int_equal(kt_config_parse(&cfg, "good.conf", text, len, &err), 0);
    assert_string_equal(cfg.base_url, "https://api.example.com:8443/kontist");
    assert_string_equal(cfg.scopes, "offline users accounts transactions");
    assert_int_equal(cfg.timeout, 15);
    assert_int_equal(cfg.login_timeout, 60);
    kt_config_free(&cfg);
}

static void test_syntax_errors(void **state)
{
    expect_error("bogus = 1\n", 1, "unknown key 'bogus'");
    expect_error("# c\n\nBase_URL = https://a.example\n", 3, "unknown key");
    expect_error("client_id = a\n\nclient_id = b\n", 3, "duplicate key 'client_id'");
    expect_error("client_id = a\ntimeout = 5\ntimeout=6\n", 3, "duplicate key 'timeout'");
    expect_error("# ok\nclient_id\n", 2, "expected 'key = value'");
    expect_error("\n\n\n= value\n", 4, "missing key");
    expect_error("client_id = a\n  \t = b\n", 2, "missing key");
    expect_error("client_id a b\n", 1, "expected");
}

/* What an administrator writes after a value is a comment, never part of the value. */
static void test_trailing_comments(void **state)
{
    kt_config cfg;

    parse_one(&cfg, "client_secret_file = /etc/kontist/client-secret   # root:root 0600; omit "
                    "for a public client\n"
                    "scopes = offline users\t# and nothing else\n"
                    "client_id = my-client #\n"
                    "login_timeout = 20 # seconds\n"
                    "proxy = # none at all\n");
    assert_string_equal(cfg.client_secret_file, "/etc/kontist/client-secret");
    assert_string_equal(cfg.scopes, "offline users");
    assert_string_equal(cfg.client_id, "my-client");
    assert_int_equal(cfg.login_timeout, 20);
    assert_string_equal(cfg.proxy, "");
    kt_config_free(&cfg);
}

/* A literal '#' (and '"', '\') is escaped or quoted. */
static void test_quoted_and_escaped_values(void **state)
{
    kt_config cfg;

    parse_one(&cfg, "ca_file = \"/etc/ssl/ca #1/ca.pem\"   # quoted\n"
                    "client_id = a\\#b\n"
                    "client_secret_file = /etc/kontist/back\\\\slash\n"
                    "pinned_pubkey = \"/etc/kontist/a \\\"quoted\\\" \\\\ name\"\n"
                    "username = \"demo@example.com\"\n"
                    "proxy = \"\"\n");
    assert_string_equal(cfg.ca_file, "/etc/ssl/ca #1/ca.pem");
    assert_string_equal(cfg.client_id, "a#b");
    assert_string_equal(cfg.client_secret_file, "/etc/kontist/back\\slash");
    assert_string_equal(cfg.pinned_pubkey, "/etc/kontist/a \"quoted\" \\ name");
    assert_string_equal(cfg.username, "demo@example.com");
    assert_string_equal(cfg.proxy, "");
    kt_config_free(&cfg);
    /* Quotes keep blanks that would otherwise be trimmed; the checks still apply. */
    expect_error("username = \" demo\"\n", 1, "spaces");
    expect_error("client_id = \"\"\n", 1, "empty value");
}

static void test_hash_and_quote_errors(void **state)
{
    expect_error("# c\nclient_id = abc#def\n", 2, "'#' inside a value");
    expect_error("ca_file = /etc/ssl/ca#1.pem\n", 1, "\\#");
    expect_error("ca_file = \"/etc/ssl/ca.pem\n", 1, "no closing '\"'");
    expect_error("ca_file = \"/etc/ssl/ca.pem\" extra\n", 1, "after the closing");
    expect_error("ca_file = /etc/ssl/a\"b\n", 1, "quote the whole value");
    expect_error("ca_file = /etc/ssl/a\\b\n", 1, "unknown escape '\\b'");
    expect_error("ca_file = \"/etc/ssl/a\\b\"\n", 1, "unknown escape");
    expect_error("ca_file = /etc/ssl/ca\\\n", 1, "ends in a backslash");
    /* The message names the key as well as the file and line. */
    expect_error("\n\nclient_id = a#b\n", 3, "client_id");
}

static void test_origin(void **state)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    kt_config_init(&cfg);
    assert_null(kt_config_origin(&cfg, "ca_file"));
    assert_int_equal(parse(&cfg, "# c\nclient_id = x\n\nca_file = /x.pem # c\n", &err), 0);
    assert_string_equal(kt_config_origin(&cfg, "ca_file"), "test.conf:4");
    assert_string_equal(kt_config_origin(&cfg, "client_id"), "test.conf:2");
    assert_null(kt_config_origin(&cfg, "timeout"));
    assert_null(kt_config_origin(&cfg, "no_such_key"));
    assert_int_equal(kt_config_parse(&cfg, "user.conf", "ca_file = /y.pem\n", 16, &err), 0);
    assert_string_equal(kt_config_origin(&cfg, "ca_file"), "user.conf:1");
    assert_int_equal(kt_config_set(&cfg, "ca_file", "/z.pem", &err), 0);
    assert_null(kt_config_origin(&cfg, "ca_file"));
    kt_config_free(&cfg);
}

/* tpm_tcti names the TPM explicitly: a device node by absolute path, or a simulator or resource
 * manager with its settings; a bare name (the TSS would choose) or anything else is refused. */
static void test_tpm_tcti(void **state)
{
    static const char *const good[] = {"device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321",
                                       "mssim:host=localhost,port=2321", "tabrmd:bus_type=system"};
    static const char *const bad[] = {
        "device:tpmrm0",      "device", "swtpm:", "swtpm", "libtpms", "default:x",
        "device:/dev/tpm rm0"};
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    (void)state;
    kt_config_init(&cfg);
    assert_null(cfg.tpm_tcti);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        kt_error_clear(&err);
        assert_int_equal(kt_config_set(&cfg, "tpm_tcti", good[i], &err), 0);
        assert_string_equal(cfg.tpm_tcti, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_error_clear(&err);
        assert_int_equal(kt_config_set(&cfg, "tpm_tcti", bad[i], &err), -1);
        assert_int_equal(err.kind, KT_ERR_CONFIG);
        assert_non_null(strstr(err.message, "tpm_tcti"));
    }
    kt_config_free(&cfg);
}

static void test_empty_values(void **state)
{
    static const char *const keys[] = {
        "base_url", "client_id",     "client_secret_file", "scopes",
        "ca_file",  "pinned_pubkey", "username",           "connect_timeout",
        "timeout",  "login_timeout", "tpm_tcti",
    };
    char line[64];
    kt_config cfg;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(line, sizeof(line), "# x\n%s =   \n", keys[i]);
        expect_error(line, 2, "empty value");
    }
    /* proxy is the one key where empty means something: no proxy at all. */
    parse_one(&cfg, "proxy =");
    assert_string_equal(cfg.proxy, "");
    kt_config_free(&cfg);
}

static void test_nul_and_long_lines(void **state)
{
    static const char with_nul[] = "client_id = a\nusername = x\0y\n";
    char *big = malloc(5000 + 32);

    expect_error_len(with_nul, sizeof(with_nul) - 1, 2, "NUL byte");
    assert_non_null(big);
    strcpy(big, "# one\n# two\nusername = ");
    memset(big + strlen(big), 'a', 5000);
    big[strlen("# one\n# two\nusername = ") + 5000] = '\0';
    expect_error(big, 3, "line longer than");
    free(big);
    expect_error("username = a\x01"
                 "b\n",
                 1, "control character");
    expect_error("client_id = a\x7f\n", 1, "control character");
}

static void test_bad_base_url(void **state)
{
    expect_error("base_url = http://api.kontist.com\n", 1, "https://");
    expect_error("base_url = ftp://api.kontist.com\n", 1, "https://");
    expect_error("base_url = api.kontist.com\n", 1, "https://");
    expect_error("base_url = https://user@api.kontist.com\n", 1, "user information");
    expect_error("base_url = https://user:pw@api.kontist.com/\n", 1, "user information");
    expect_error("base_url = https://api.kontist.com/?x=1\n", 1, "query or fragment");
    expect_error("base_url = \"https://api.kontist.com#frag\"\n", 1, "query or fragment");
    expect_error("base_url = https://api.kontist.com\\#frag\n", 1, "query or fragment");
    expect_error("base_url = https://\n", 1, "no host");
    expect_error("base_url = https:///path\n", 1, "no host");
    expect_error("base_url = https://api.kontist.com:0\n", 1, "port");
    expect_error("base_url = https://api.kontist.com:65536\n", 1, "port");
    expect_error("base_url = https://api.kontist.com:44x\n", 1, "port");
    expect_error("base_url = https://api.kontist.com:\n", 1, "port");
    expect_error("base_url = https://api kontist.com\n", 1, "invalid character");
    expect_error("base_url = https://api.kontist.com\\\\x\n", 1, "invalid character");
    expect_error("base_url = https://[::1\n", 1, "IPv6");
    expect_error("base_url = https://[::1]x\n", 1, "host");
    expect_error("base_url = https://api!.kontist.com\n", 1, "invalid character");
    expect_error("base_url = https://api.kontist.com\xc3\xa4\n", 1, "invalid character");
}

static void test_good_base_urls(void **state)
{
    kt_config cfg;
    char *host;

    parse_one(&cfg, "base_url = HTTPS://API.Kontist.COM///");
    assert_string_equal(cfg.base_url, "https://api.kontist.com");
    host = kt_config_host(&cfg);
    assert_string_equal(host, "api.kontist.com");
    free(host);
    kt_config_free(&cfg);

    parse_one(&cfg, "base_url = https://127.0.0.1:8443");
    host = kt_config_host(&cfg);
    assert_string_equal(host, "127.0.0.1:8443");
    free(host);
    kt_config_free(&cfg);

    parse_one(&cfg, "base_url = https://[::1]:65535/Prefix/Path/");
    assert_string_equal(cfg.base_url, "https://[::1]:65535/Prefix/Path");
    host = kt_config_host(&cfg);
    assert_string_equal(host, "[::1]:65535");
    free(host);
    kt_config_free(&cfg);
}

static void test_config_host_default(void **state)
{
    kt_config cfg;
    char *host;

    kt_config_init(&cfg);
    host = kt_config_host(&cfg);
    assert_string_equal(host, "api.kontist.com");
    free(host);
    free(cfg.base_url);
    cfg.base_url = NULL;
    assert_null(kt_config_host(&cfg));
    kt_config_free(&cfg);
}

static void test_bad_timeouts(void **state)
{
    static const char *const keys[] = {"connect_timeout", "timeout", "login_timeout"};
    static const char *const values[] = {"abc", "-5", "0",   "301",  "10s",
                                         "1e3", "+5", "5.0", "0x10", "99999999999999999999"};
    char line[96];

    for (size_t k = 0; k < 3; k++) {
        for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
            snprintf(line, sizeof(line), "client_id = c\n%s = %s\n", keys[k], values[v]);
            expect_error(line, 2, keys[k]);
        }
    }
}

static void test_good_timeouts(void **state)
{
    kt_config cfg;

    parse_one(&cfg, "connect_timeout = 300\ntimeout = 1\nlogin_timeout = 007");
    assert_int_equal(cfg.connect_timeout, 300);
    assert_int_equal(cfg.timeout, 1);
    assert_int_equal(cfg.login_timeout, 7);
    kt_config_free(&cfg);
}

static void test_bad_paths(void **state)
{
    expect_error("ca_file = ca.pem\n", 1, "absolute");
    expect_error("ca_file = ./ca.pem\n", 1, "absolute");
    expect_error("client_secret_file = ~/secret\n", 1, "absolute");
    expect_error("client_secret_file = secret\n", 1, "absolute");
}

static void test_scopes(void **state)
{
    static const char *const all =
        "accounts clients offline statements subscriptions transactions transfers users";
    char line[160];
    kt_config cfg;

    snprintf(line, sizeof(line), "scopes = %s", all);
    parse_one(&cfg, line);
    assert_string_equal(cfg.scopes, all);
    kt_config_free(&cfg);
    parse_one(&cfg, "scopes = users");
    assert_string_equal(cfg.scopes, "users");
    kt_config_free(&cfg);

    expect_error("scopes = offline admin\n", 1, "unknown scope 'admin'");
    expect_error("scopes = offline,users\n", 1, "unknown scope");
    expect_error("scopes = Users\n", 1, "unknown scope");
    expect_error("scopes = users offline users\n", 1, "given twice");
}

static void test_pinned_pubkey(void **state)
{
    kt_config cfg;

    parse_one(&cfg, "pinned_pubkey = " PIN_A);
    assert_string_equal(cfg.pinned_pubkey, PIN_A);
    kt_config_free(&cfg);
    parse_one(&cfg, "pinned_pubkey = /etc/kontist/server.pub");
    assert_string_equal(cfg.pinned_pubkey, "/etc/kontist/server.pub");
    kt_config_free(&cfg);

    expect_error("pinned_pubkey = server.pub\n", 1, "pinned_pubkey");
    expect_error("pinned_pubkey = sha256//short=\n", 1, "pinned_pubkey");
    expect_error("pinned_pubkey = sha1//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMwE=\n", 1,
                 "pinned_pubkey");
    expect_error("pinned_pubkey = " PIN_A ";\n", 1, "pinned_pubkey");
    expect_error("pinned_pubkey = " PIN_A ";;" PIN_B "\n", 1, "pinned_pubkey");
    expect_error("pinned_pubkey = sha256//YhKJKSzoTt2b5FP18fvpHo7fJYqQCjAa3HWY3tvRMw!=\n", 1,
                 "pinned_pubkey");
}

static void test_proxy(void **state)
{
    kt_config cfg;

    parse_one(&cfg, "proxy = http://user:pw@proxy.example:3128");
    assert_string_equal(cfg.proxy, "http://user:pw@proxy.example:3128");
    kt_config_free(&cfg);
    parse_one(&cfg, "proxy = https://proxy.example");
    kt_config_free(&cfg);

    expect_error("proxy = proxy.example:3128\n", 1, "proxy must be a URL");
    expect_error("proxy = ftp://proxy.example\n", 1, "proxy must be a URL");
    expect_error("proxy = http://\n", 1, "no host");
    expect_error("proxy = http://a b\n", 1, "invalid character");
}

static void test_identifiers(void **state)
{
    kt_config cfg;

    parse_one(&cfg, "client_id = abc-123_x.y");
    assert_string_equal(cfg.client_id, "abc-123_x.y");
    kt_config_free(&cfg);

    expect_error("client_id = a:b\n", 1, "':'");
    expect_error("client_id = a b\n", 1, "spaces");
    expect_error("username = demo user\n", 1, "spaces");
}

static void test_later_file_overrides(void **state)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    kt_config_init(&cfg);
    assert_int_equal(parse(&cfg, "client_id = first\ntimeout = 20\n", &err), 0);
    /* The same key again in another file is an override, not a duplicate. */
    assert_int_equal(kt_config_parse(&cfg, "user.conf", "client_id = second\n", 19, &err), 0);
    assert_string_equal(cfg.client_id, "second");
    assert_int_equal(cfg.timeout, 20);
    kt_config_free(&cfg);
}

static void test_config_set(void **state)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    kt_config_init(&cfg);
    assert_int_equal(kt_config_set(&cfg, "base_url", "https://127.0.0.1:9999/", &err), 0);
    assert_string_equal(cfg.base_url, "https://127.0.0.1:9999");
    assert_int_equal(kt_config_set(&cfg, "timeout", "42", &err), 0);
    assert_int_equal(cfg.timeout, 42);
    /* Overriding a key twice is what overrides do. */
    assert_int_equal(kt_config_set(&cfg, "timeout", "43", &err), 0);
    assert_int_equal(cfg.timeout, 43);
    assert_int_equal(err.kind, KT_OK);

    assert_int_equal(kt_config_set(&cfg, "nope", "1", &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, "unknown option 'nope'"));
    kt_error_clear(&err);
    assert_int_equal(kt_config_set(&cfg, "timeout", "0", &err), -1);
    assert_non_null(strstr(err.message, "option 'timeout'"));
    assert_int_equal(cfg.timeout, 43);
    kt_error_clear(&err);
    assert_int_equal(kt_config_set(&cfg, "base_url", "http://evil.example", &err), -1);
    assert_string_equal(cfg.base_url, "https://127.0.0.1:9999");
    kt_error_clear(&err);
    assert_int_equal(kt_config_set(&cfg, "client_id", NULL, &err), -1);
    kt_error_clear(&err);
    assert_int_equal(kt_config_set(&cfg, NULL, "x", &err), -1);
    kt_config_free(&cfg);
}

static void test_validate(void **state)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    kt_config_init(&cfg);
    assert_int_equal(kt_config_validate(&cfg, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, "client_id"));
    kt_error_clear(&err);
    assert_int_equal(kt_config_set(&cfg, "client_id", "c", &err), 0);
    assert_int_equal(kt_config_validate(&cfg, &err), 0);
    free(cfg.base_url);
    cfg.base_url = NULL;
    assert_int_equal(kt_config_validate(&cfg, &err), -1);
    assert_non_null(strstr(err.message, "base_url"));
    kt_config_free(&cfg);
}

/* ---- loading files ---------------------------------------------------------------------- */

typedef struct fixture {
    test_dir dir;
    char conf[PATH_MAX];
    char secret[PATH_MAX];
    kt_owner_policy owners;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || test_dir_create(&f->dir, "test-config") != 0) {
        free(f);
        return -1;
    }
    test_path(&f->dir, "kontist.conf", f->conf, sizeof(f->conf));
    test_path(&f->dir, "secret", f->secret, sizeof(f->secret));
    f->owners = (kt_owner_policy){.allow_root = true, .allow_uid = true, .uid = geteuid()};
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

static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    assert_int_equal(write_file_mode(path, data, len, mode), 0);
}

static void write_conf(fixture *f, const char *extra, mode_t mode)
{
    char text[PATH_MAX + 256];

    snprintf(text, sizeof(text), "client_id = cid\nclient_secret_file = %s\n%s", f->secret, extra);
    write_file(f->conf, text, strlen(text), mode);
}

static void test_load_with_secret(void **state)
{
    fixture *f = *state;
    kt_config cfg;
    kt_error err = {KT_OK, ""};
    bool found = false;

    write_conf(f, "timeout = 7\n", 0644);
    write_file(f->secret, "s3cr3t\n", 7, 0600);
    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_file(&cfg, f->conf, &f->owners, false, &found, &err), 0);
    assert_true(found);
    assert_string_equal(cfg.client_id, "cid");
    assert_string_equal(cfg.client_secret, "s3cr3t");
    assert_int_equal(cfg.timeout, 7);
    kt_config_free(&cfg);

    /* 0400 works too; CRLF is stripped; the secret may not be empty of meaning but may be "". */
    write_file(f->secret, "abc\r\n", 5, 0400);
    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_file(&cfg, f->conf, &f->owners, false, NULL, &err), 0);
    assert_string_equal(cfg.client_secret, "abc");
    kt_config_free(&cfg);
    assert_int_equal(chmod(f->secret, 0600), 0);
    write_file(f->secret, "no-newline", 10, 0600);
    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_file(&cfg, f->conf, &f->owners, false, NULL, &err), 0);
    assert_string_equal(cfg.client_secret, "no-newline");
    kt_config_free(&cfg);
}

static void expect_load_error(fixture *f, const kt_owner_policy *owners, const char *what)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_file(&cfg, f->conf, owners, false, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    if (strstr(err.message, what) == NULL)
        fail_msg("got \"%s\", want \"%s\"", err.message, what);
    assert_null(cfg.client_secret);
    kt_config_free(&cfg);
}

static void test_load_secret_refusals(void **state)
{
    fixture *f = *state;
    char target[PATH_MAX], want[2 * PATH_MAX + 64];

    write_conf(f, "", 0644);
    snprintf(want, sizeof(want), "%s:2: client_secret_file %s does not exist", f->conf, f->secret);
    expect_load_error(f, &f->owners, want); /* missing: named with the line that set it */
    write_file(f->secret, "s\n", 2, 0644);
    expect_load_error(f, &f->owners, "readable by group or others");
    assert_int_equal(chmod(f->secret, 0640), 0);
    expect_load_error(f, &f->owners, "readable by group or others");
    assert_int_equal(chmod(f->secret, 0620), 0);
    expect_load_error(f, &f->owners, "writable by group or others");
    write_file(f->secret, "one\ntwo\n", 8, 0600);
    snprintf(want, sizeof(want), "%s:2: client_secret_file %s: ", f->conf, f->secret);
    expect_load_error(f, &f->owners, want);
    expect_load_error(f, &f->owners, "single line");
    write_file(f->secret, "a\0b\n", 4, 0600);
    expect_load_error(f, &f->owners, "NUL");

    /* A link to a good secret file is still a link. */
    test_path(&f->dir, "real-secret", target, sizeof(target));
    write_file(target, "s\n", 2, 0600);
    assert_int_equal(unlink(f->secret), 0);
    assert_int_equal(symlink(target, f->secret), 0);
    expect_load_error(f, &f->owners, "symbolic link");
}

static void test_load_secret_owner(void **state)
{
    fixture *f = *state;
    kt_owner_policy root_only = {.allow_root = true, .allow_uid = false};
    kt_owner_policy other = {.allow_root = false, .allow_uid = true, .uid = OTHER_UID};
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    write_conf(f, "", 0644);
    write_file(f->secret, "s\n", 2, 0600);
    if (geteuid() == 0) {
        /* The PAM module: a secret file owned by a user is refused even if the config is fine. */
        assert_int_equal(chown(f->secret, OTHER_UID, OTHER_UID), 0);
        expect_load_error(f, &root_only, "owned by uid 65534");
        /* The helper run by that user accepts its own secret file (and root's config). */
        other.allow_root = true;
        kt_config_init(&cfg);
        assert_int_equal(kt_config_load_file(&cfg, f->conf, &other, false, NULL, &err), 0);
        assert_string_equal(cfg.client_secret, "s");
        kt_config_free(&cfg);
    } else {
        /* Not root: the caller's own file is refused by a root-only policy. */
        expect_load_error(f, &root_only, "owned by uid");
    }
}

static void test_load_missing(void **state)
{
    fixture *f = *state;
    kt_config cfg;
    kt_error err = {KT_OK, ""};
    bool found = true;

    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_file(&cfg, f->conf, &f->owners, true, &found, &err), 0);
    assert_false(found);
    assert_int_equal(err.kind, KT_OK);
    assert_string_equal(cfg.base_url, KT_DEFAULT_BASE_URL);
    assert_int_equal(kt_config_load_file(&cfg, f->conf, &f->owners, true, NULL, &err), 0);

    assert_int_equal(kt_config_load_file(&cfg, f->conf, &f->owners, false, &found, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, f->conf));
    kt_config_free(&cfg);
}

static void test_load_unsafe_config(void **state)
{
    fixture *f = *state;
    kt_owner_policy root_only = {.allow_root = true, .allow_uid = false};
    char target[PATH_MAX];
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    write_file(f->conf, "timeout = 9\n", 12, 0664);
    expect_load_error(f, &f->owners, "writable by group or others");
    assert_int_equal(chmod(f->conf, 0646), 0);
    expect_load_error(f, &f->owners, "writable by group or others");

    /* A link is refused even when missing_ok: it exists, and it is unsafe. */
    assert_int_equal(chmod(f->conf, 0644), 0);
    test_path(&f->dir, "real.conf", target, sizeof(target));
    assert_int_equal(rename(f->conf, target), 0);
    assert_int_equal(symlink(target, f->conf), 0);
    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_file(&cfg, f->conf, &f->owners, true, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    assert_non_null(strstr(err.message, "symbolic link"));
    assert_int_equal(cfg.timeout, 10);
    kt_config_free(&cfg);

    /* Relative paths are refused. */
    kt_error_clear(&err);
    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_file(&cfg, "kontist.conf", &f->owners, true, NULL, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    kt_config_free(&cfg);

    assert_int_equal(unlink(f->conf), 0);
    write_file(f->conf, "timeout = 9\n", 12, 0644);
    if (geteuid() == 0) {
        assert_int_equal(chown(f->conf, OTHER_UID, OTHER_UID), 0);
        expect_load_error(f, &root_only, "owned by uid 65534");
    } else {
        expect_load_error(f, &root_only, "owned by uid");
    }
}

static void test_load_names_file_and_line(void **state)
{
    fixture *f = *state;
    char want[PATH_MAX + 32];

    write_file(f->conf, "# header\nclient_id = x\n\ntimeout = soon\n", 39, 0644);
    snprintf(want, sizeof(want), "%s:4: ", f->conf);
    expect_load_error(f, &f->owners, want);
}

static void test_load_secret_explicit(void **state)
{
    fixture *f = *state;
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    write_file(f->secret, "from-override\n", 14, 0600);
    kt_config_init(&cfg);
    assert_int_equal(kt_config_load_secret(&cfg, &f->owners, &err), 0); /* nothing set */
    assert_null(cfg.client_secret);
    assert_int_equal(kt_config_set(&cfg, "client_secret_file", f->secret, &err), 0);
    assert_int_equal(kt_config_load_secret(&cfg, &f->owners, &err), 0);
    assert_string_equal(cfg.client_secret, "from-override");
    /* Reloading replaces the old secret. */
    write_file(f->secret, "rotated\n", 8, 0600);
    assert_int_equal(kt_config_load_secret(&cfg, &f->owners, &err), 0);
    assert_string_equal(cfg.client_secret, "rotated");
    kt_config_free(&cfg);
}

static void expect_check_error(const kt_config *cfg, const char *what)
{
    kt_error err = {KT_OK, ""};

    assert_int_equal(kt_config_check_files(cfg, &err), -1);
    assert_int_equal(err.kind, KT_ERR_CONFIG);
    if (strstr(err.message, what) == NULL)
        fail_msg("got \"%s\", want \"%s\"", err.message, what);
}

/* The files the configuration names are checked before anyone is asked for a password. */
static void test_check_files(void **state)
{
    fixture *f = *state;
    char text[3 * PATH_MAX], want[2 * PATH_MAX], ca[PATH_MAX], pin[PATH_MAX];
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    test_path(&f->dir, "ca.pem", ca, sizeof(ca));
    test_path(&f->dir, "server.pub", pin, sizeof(pin));
    snprintf(text, sizeof(text), "client_id = x\nca_file = %s\npinned_pubkey = %s\n", ca, pin);
    kt_config_init(&cfg);
    assert_int_equal(parse(&cfg, text, &err), 0);
    snprintf(want, sizeof(want), "test.conf:2: ca_file %s does not exist", ca);
    expect_check_error(&cfg, want);
    write_file(ca, "x\n", 2, 0644);
    snprintf(want, sizeof(want), "test.conf:3: pinned_pubkey %s does not exist", pin);
    expect_check_error(&cfg, want);
    write_file(pin, "x\n", 2, 0644);
    assert_int_equal(kt_config_check_files(&cfg, &err), 0);
    kt_config_free(&cfg);

    /* A directory is no CA file. */
    snprintf(text, sizeof(text), "ca_file = %s\n", f->dir.path);
    kt_config_init(&cfg);
    assert_int_equal(parse(&cfg, text, &err), 0);
    expect_check_error(&cfg, "not a regular file");
    kt_config_free(&cfg);

    /* Hashes name no file; no ca_file is the system's trust store. */
    parse_one(&cfg, "pinned_pubkey = " PIN_A);
    assert_int_equal(kt_config_check_files(&cfg, &err), 0);
    kt_config_free(&cfg);
}

/* The message another user gets for a CA file they cannot read, run in a child as that user. */
static void check_as_other_user(const kt_config *cfg, char *msg, size_t size)
{
    int fds[2];
    pid_t pid;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        kt_error err = {KT_OK, ""};

        close(fds[0]);
        if (setgid(OTHER_UID) != 0 || setuid(OTHER_UID) != 0)
            _exit(3);
        if (kt_config_check_files(cfg, &err) == 0)
            _exit(4);
        if (write(fds[1], err.message, strlen(err.message)) < 0)
            _exit(5);
        _exit(err.kind == KT_ERR_CONFIG ? 0 : 6);
    }
    close(fds[1]);
    n = read(fds[0], msg, size - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    {
        int status = 0;

        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("child status %d: %s", status, msg);
    }
}

/* Unreadable for the user: the message names the file or the directory in the way, its owner and
 * mode, and who cannot read it. */
static void test_check_files_unreadable(void **state)
{
    fixture *f = *state;
    char text[3 * PATH_MAX], sub[PATH_MAX], ca[PATH_MAX + 16], want[2 * PATH_MAX], msg[1024];
    kt_config cfg;
    kt_error err = {KT_OK, ""};

    if (geteuid() != 0)
        skip();
    /* The fixture's directory must let the other user in for the first case. */
    assert_int_equal(chmod(f->dir.path, 0755), 0);
    test_path(&f->dir, "private", sub, sizeof(sub));
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(ca, sizeof(ca), "%s/ca.pem", sub);
    write_file(ca, "x\n", 2, 0644);
    snprintf(text, sizeof(text), "# c\nca_file = %s\n", ca);
    kt_config_init(&cfg);
    assert_int_equal(parse(&cfg, text, &err), 0);
    check_as_other_user(&cfg, msg, sizeof(msg));
    snprintf(want, sizeof(want), "test.conf:2: ca_file %s cannot be read by ", ca);
    if (strstr(msg, want) == NULL || strstr(msg, "uid 65534") == NULL || strstr(msg, sub) == NULL ||
        strstr(msg, "mode 0700") == NULL ||
        strstr(msg, "everyone who uses this configuration") == NULL)
        fail_msg("got \"%s\"", msg);

    /* The directory is open, the file is not. */
    assert_int_equal(chmod(sub, 0755), 0);
    assert_int_equal(chmod(ca, 0600), 0);
    check_as_other_user(&cfg, msg, sizeof(msg));
    if (strstr(msg, "(root:root, mode 0600) cannot be read by") == NULL ||
        strstr(msg, "uid 65534") == NULL)
        fail_msg("got \"%s\"", msg);
    kt_config_free(&cfg);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse_every_key),
        cmocka_unit_test(test_parse_empty_and_comments_only),
        cmocka_unit_test(test_parse_data_file),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_trailing_comments),
        cmocka_unit_test(test_quoted_and_escaped_values),
        cmocka_unit_test(test_hash_and_quote_errors),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_tpm_tcti),
        cmocka_unit_test(test_empty_values),
        cmocka_unit_test(test_nul_and_long_lines),
        cmocka_unit_test(test_bad_base_url),
        cmocka_unit_test(test_good_base_urls),
        cmocka_unit_test(test_config_host_default),
        cmocka_unit_test(test_bad_timeouts),
        cmocka_unit_test(test_good_timeouts),
        cmocka_unit_test(test_bad_paths),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_pinned_pubkey),
        cmocka_unit_test(test_proxy),
        cmocka_unit_test(test_identifiers),
        cmocka_unit_test(test_later_file_overrides),
        cmocka_unit_test(test_config_set),
        cmocka_unit_test(test_validate),
        T(test_load_with_secret),
        T(test_load_secret_refusals),
        T(test_load_secret_owner),
        T(test_load_missing),
        T(test_load_unsafe_config),
        T(test_load_names_file_and_line),
        T(test_load_secret_explicit),
        T(test_check_files),
        T(test_check_files_unreadable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
