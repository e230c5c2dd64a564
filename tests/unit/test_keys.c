/* Device keys: generation, public point encoding, signatures checked by OpenSSL itself and by
 * the openssl command line, PEM round trip, and every way kt_key_load must refuse a key. */
#include <config.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "kt_all.h"
#include "test_util.h"

/* DER SubjectPublicKeyInfo header of an uncompressed P-256 point (id-ecPublicKey, prime256v1,
 * BIT STRING of 66 bytes): the "header" the API wants removed. */
static const char spki_prefix_hex[] = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

typedef struct keys_fixture {
    test_dir dir;
    kt_owner_policy owners;
} keys_fixture;

static int setup(void **state)
{
    keys_fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || test_dir_create(&f->dir, "keys") != 0) {
        free(f);
        return -1;
    }
    f->owners.allow_root = false;
    f->owners.allow_uid = true;
    f->owners.uid = geteuid();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    keys_fixture *f = *state;

    test_dir_remove(&f->dir);
    free(f);
    return 0;
}

static int is_lower_hex(const char *s)
{
    for (; *s != '\0'; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* Runs a shell command and returns its exit status and its combined output in out. */
static int run_capture(const char *cmd, char *out, size_t size)
{
    FILE *p = popen(cmd, "r");
    size_t n;
    int status;

    assert_non_null(p);
    n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Verifies a hex DER signature with the public half of key through EVP_DigestVerify. */
static int evp_verify(EVP_PKEY *key, const char *msg, size_t len, const char *sig_hex)
{
    unsigned char sig[256];
    long sig_len = kt_hex_decode(sig_hex, sig, sizeof(sig));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    assert_true(sig_len > 0);
    assert_non_null(md);
    assert_int_equal(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL), 1);
    ok = EVP_DigestVerify(md, sig, (size_t)sig_len, (const unsigned char *)msg, len);
    EVP_MD_CTX_free(md);
    return ok;
}

/* Writes a key as an unencrypted PKCS#8 PEM file with the given mode, independently of
 * kt_key_save_pem (for keys the module must refuse). */
static void write_pem(EVP_PKEY *key, const char *path, mode_t mode, const char *cipher)
{
    OSSL_ENCODER_CTX *ectx =
        OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_KEYPAIR, "PEM", "PrivateKeyInfo", NULL);
    unsigned char *data = NULL;
    size_t len = 0;

    assert_non_null(ectx);
    if (cipher != NULL) {
        assert_int_equal(OSSL_ENCODER_CTX_set_cipher(ectx, cipher, NULL), 1);
        assert_int_equal(
            OSSL_ENCODER_CTX_set_passphrase(ectx, (const unsigned char *)"secret-pass", 11), 1);
    }
    assert_int_equal(OSSL_ENCODER_to_data(ectx, &data, &len), 1);
    assert_int_equal(write_file_mode(path, data, len, mode), 0);
    OPENSSL_free(data);
    OSSL_ENCODER_CTX_free(ectx);
}

static void assert_load_refused(const char *ref, const kt_owner_policy *owners,
                                const char *expect_in_message)
{
    kt_error err = {KT_OK, ""};
    EVP_PKEY *key = kt_key_load(ref, owners, &err);

    if (key != NULL)
        fail_msg("key %s was loaded but must be refused", ref);
    assert_int_equal(err.kind, KT_ERR_KEY_UNUSABLE);
    if (strstr(err.message, expect_in_message) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, expect_in_message);
}

static EVP_PKEY *save_new_key(keys_fixture *f, const char *name, char *path, size_t size)
{
    kt_error err = {KT_OK, ""};
    EVP_PKEY *key = kt_key_generate(&err);

    assert_non_null(key);
    test_path(&f->dir, name, path, size);
    assert_int_equal(kt_key_save_pem(key, path, &err), 0);
    return key;
}

static void test_generate_public_hex(void **state)
{
    kt_error err = {KT_OK, ""};
    EVP_PKEY *key = kt_key_generate(&err);
    EVP_PKEY *other = kt_key_generate(&err);
    char hex[KT_PUBKEY_HEX_LEN + 1];
    char hex2[KT_PUBKEY_HEX_LEN + 1];
    unsigned char *der = NULL;
    char *der_hex;
    int der_len;

    (void)state;
    assert_non_null(key);
    assert_non_null(other);
    assert_true(EVP_PKEY_is_a(key, "EC"));
    assert_int_equal(EVP_PKEY_get_bits(key), 256);
    assert_int_equal(kt_key_public_hex(key, hex, &err), 0);
    assert_int_equal(strlen(hex), KT_PUBKEY_HEX_LEN);
    assert_memory_equal(hex, "04", 2);
    assert_true(is_lower_hex(hex));
    assert_int_equal(kt_key_public_hex(other, hex2, &err), 0);
    assert_string_not_equal(hex, hex2);

    /* The point is exactly the SubjectPublicKeyInfo DER without its 26-byte prefix. */
    der_len = i2d_PUBKEY(key, &der);
    assert_int_equal(der_len, 91);
    der_hex = malloc(2 * (size_t)der_len + 1);
    assert_non_null(der_hex);
    kt_hex_encode(der, (size_t)der_len, der_hex);
    assert_memory_equal(der_hex, spki_prefix_hex, strlen(spki_prefix_hex));
    assert_string_equal(der_hex + strlen(spki_prefix_hex), hex);
    assert_int_equal(err.kind, KT_OK);
    free(der_hex);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

/* A key file that stores its public point compressed (as `openssl ec -conv_form compressed`
 * writes it, in the traditional "EC PRIVATE KEY" format) still gives the uncompressed point. */
static void test_public_hex_of_compressed_key(void **state)
{
    keys_fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char path[PATH_MAX], comp[PATH_MAX], cmd[3 * PATH_MAX], out[4096];
    char before[KT_PUBKEY_HEX_LEN + 1], after[KT_PUBKEY_HEX_LEN + 1];
    EVP_PKEY *key = save_new_key(f, "key.pem", path, sizeof(path));
    EVP_PKEY *loaded;
    char *pem;

    test_path(&f->dir, "compressed.pem", comp, sizeof(comp));
    snprintf(cmd, sizeof(cmd),
             "umask 077 && openssl ec -in '%s' -conv_form compressed -out '%s' 2>&1", path, comp);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    pem = read_file_all(comp, NULL);
    assert_non_null(pem);
    assert_non_null(strstr(pem, "BEGIN EC PRIVATE KEY"));
    free(pem);
    snprintf(cmd, sizeof(cmd), "openssl pkey -in '%s' -text -noout 2>&1", comp);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "pub:\n    0")); /* 02 or 03: compressed */
    assert_null(strstr(out, "pub:\n    04"));

    loaded = kt_key_load(comp, &f->owners, &err);
    if (loaded == NULL)
        fail_msg("load failed: %s", err.message);
    assert_int_equal(kt_key_public_hex(key, before, &err), 0);
    assert_int_equal(kt_key_public_hex(loaded, after, &err), 0);
    assert_string_equal(before, after);
    EVP_PKEY_free(loaded);
    EVP_PKEY_free(key);
}

static void test_sign_verify_evp(void **state)
{
    static const char msg[] = "stringToSign-0f3c9a";
    kt_error err = {KT_OK, ""};
    EVP_PKEY *key = kt_key_generate(&err);
    EVP_PKEY *other = kt_key_generate(&err);
    char *sig = NULL;
    char *sig2 = NULL;

    (void)state;
    assert_non_null(key);
    assert_int_equal(kt_key_sign_hex(key, msg, strlen(msg), &sig, &err), 0);
    assert_non_null(sig);
    assert_true(is_lower_hex(sig));
    /* DER SEQUENCE of two INTEGERs: 0x30, 8..72 bytes in all. */
    assert_memory_equal(sig, "30", 2);
    assert_in_range(strlen(sig), 2 * 8, 2 * 72);
    assert_int_equal(evp_verify(key, msg, strlen(msg), sig), 1);
    assert_int_not_equal(evp_verify(key, "stringToSign-0f3c9b", strlen(msg), sig), 1);
    assert_int_not_equal(evp_verify(other, msg, strlen(msg), sig), 1);
    /* ECDSA is randomised: a second signature differs and verifies too. */
    assert_int_equal(kt_key_sign_hex(key, msg, strlen(msg), &sig2, &err), 0);
    assert_string_not_equal(sig, sig2);
    assert_int_equal(evp_verify(key, msg, strlen(msg), sig2), 1);
    /* Only the given length is signed. */
    free(sig2);
    assert_int_equal(kt_key_sign_hex(key, msg, 5, &sig2, &err), 0);
    assert_int_equal(evp_verify(key, msg, 5, sig2), 1);
    assert_int_not_equal(evp_verify(key, msg, strlen(msg), sig2), 1);
    assert_int_equal(err.kind, KT_OK);
    free(sig);
    free(sig2);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

static void test_sign_verify_openssl_cli(void **state)
{
    static const char msg[] = "123456"; /* an OTP, as at device verification */
    keys_fixture *f = *state;
    kt_error err = {KT_OK, ""};
    EVP_PKEY *key = kt_key_generate(&err);
    char hex[KT_PUBKEY_HEX_LEN + 1];
    char spki_hex[sizeof(spki_prefix_hex) + KT_PUBKEY_HEX_LEN];
    unsigned char spki[128], sig[128];
    char p_msg[PATH_MAX], p_bad[PATH_MAX], p_sig[PATH_MAX], p_der[PATH_MAX], p_pem[PATH_MAX];
    char cmd[6 * PATH_MAX], out[4096];
    char *sig_hex = NULL;
    long spki_len, sig_len;

    assert_non_null(key);
    assert_int_equal(kt_key_public_hex(key, hex, &err), 0);
    assert_int_equal(kt_key_sign_hex(key, msg, strlen(msg), &sig_hex, &err), 0);

    /* Rebuild the public key from nothing but the 130 hex characters the server receives. */
    snprintf(spki_hex, sizeof(spki_hex), "%s%s", spki_prefix_hex, hex);
    spki_len = kt_hex_decode(spki_hex, spki, sizeof(spki));
    assert_int_equal(spki_len, 91);
    sig_len = kt_hex_decode(sig_hex, sig, sizeof(sig));
    assert_true(sig_len > 0);

    test_path(&f->dir, "msg", p_msg, sizeof(p_msg));
    test_path(&f->dir, "msg-tampered", p_bad, sizeof(p_bad));
    test_path(&f->dir, "sig.der", p_sig, sizeof(p_sig));
    test_path(&f->dir, "pub.der", p_der, sizeof(p_der));
    test_path(&f->dir, "pub.pem", p_pem, sizeof(p_pem));
    assert_int_equal(write_file_mode(p_msg, msg, strlen(msg), 0600), 0);
    assert_int_equal(write_file_mode(p_bad, "123457", 6, 0600), 0);
    assert_int_equal(write_file_mode(p_sig, sig, (size_t)sig_len, 0600), 0);
    assert_int_equal(write_file_mode(p_der, spki, (size_t)spki_len, 0600), 0);

    snprintf(cmd, sizeof(cmd), "openssl pkey -pubin -inform DER -in '%s' -out '%s' 2>&1", p_der,
             p_pem);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);

    snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -verify '%s' -signature '%s' '%s' 2>&1", p_pem,
             p_sig, p_msg);
    assert_int_equal(run_capture(cmd, out, sizeof(out)), 0);
    if (strstr(out, "Verified OK") == NULL)
        fail_msg("openssl did not verify the signature: %s", out);

    snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -verify '%s' -signature '%s' '%s' 2>&1", p_pem,
             p_sig, p_bad);
    assert_int_not_equal(run_capture(cmd, out, sizeof(out)), 0);
    assert_null(strstr(out, "Verified OK"));
    assert_non_null(strstr(out, "Verification failure"));
    free(sig_hex);
    EVP_PKEY_free(key);
}

static void test_save_load_round_trip(void **state)
{
    keys_fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char path[PATH_MAX], uri[PATH_MAX + 32];
    char hex[KT_PUBKEY_HEX_LEN + 1], hex2[KT_PUBKEY_HEX_LEN + 1];
    EVP_PKEY *key = save_new_key(f, "device-key.pem", path, sizeof(path));
    EVP_PKEY *loaded;
    char *pem, *sig = NULL;
    const char *const uri_prefixes[] = {"file://", "file:", "file://localhost", "FILE://"};

    assert_int_equal(file_mode(path), 0600);
    pem = read_file_all(path, NULL);
    assert_non_null(pem);
    assert_memory_equal(pem, "-----BEGIN PRIVATE KEY-----\n", 28);
    free(pem);

    loaded = kt_key_load(path, &f->owners, &err);
    if (loaded == NULL)
        fail_msg("load failed: %s", err.message);
    assert_int_equal(EVP_PKEY_eq(key, loaded), 1);
    assert_int_equal(kt_key_public_hex(key, hex, &err), 0);
    assert_int_equal(kt_key_public_hex(loaded, hex2, &err), 0);
    assert_string_equal(hex, hex2);
    /* The loaded private half signs what the original public half accepts. */
    assert_int_equal(kt_key_sign_hex(loaded, "challenge", 9, &sig, &err), 0);
    assert_int_equal(evp_verify(key, "challenge", 9, sig), 1);
    free(sig);
    EVP_PKEY_free(loaded);

    for (size_t i = 0; i < sizeof(uri_prefixes) / sizeof(uri_prefixes[0]); i++) {
        snprintf(uri, sizeof(uri), "%s%s", uri_prefixes[i], path);
        loaded = kt_key_load(uri, &f->owners, &err);
        if (loaded == NULL)
            fail_msg("load of %s failed: %s", uri, err.message);
        assert_int_equal(EVP_PKEY_eq(key, loaded), 1);
        EVP_PKEY_free(loaded);
    }
    /* Stricter than 0600 is fine. */
    assert_int_equal(chmod(path, 0400), 0);
    loaded = kt_key_load(path, &f->owners, &err);
    assert_non_null(loaded);
    EVP_PKEY_free(loaded);
    assert_int_equal(err.kind, KT_OK);

    /* Saving again replaces the file atomically, still 0600. */
    assert_int_equal(kt_key_save_pem(key, path, &err), 0);
    assert_int_equal(file_mode(path), 0600);
    EVP_PKEY_free(key);
}

static void test_load_percent_encoded_uri(void **state)
{
    keys_fixture *f = *state;
    kt_error err = {KT_OK, ""};
    char path[PATH_MAX], uri[PATH_MAX + 32];
    EVP_PKEY *key = save_new_key(f, "my key.pem", path, sizeof(path));
    EVP_PKEY *loaded;

    snprintf(uri, sizeof(uri), "file://%s/my%%20key.pem", f->dir.path);
    loaded = kt_key_load(uri, &f->owners, &err);
    if (loaded == NULL)
        fail_msg("load of %s failed: %s", uri, err.message);
    assert_int_equal(EVP_PKEY_eq(key, loaded), 1);
    EVP_PKEY_free(loaded);
    snprintf(uri, sizeof(uri), "file://%s/my%%00key.pem", f->dir.path);
    assert_load_refused(uri, &f->owners, "bad % escape");
    snprintf(uri, sizeof(uri), "file://%s/my%%2key.pem", f->dir.path);
    assert_load_refused(uri, &f->owners, "bad % escape");
    EVP_PKEY_free(key);
}

static void test_load_missing(void **state)
{
    keys_fixture *f = *state;
    char path[PATH_MAX], uri[PATH_MAX + 16];

    test_path(&f->dir, "nope.pem", path, sizeof(path));
    assert_load_refused(path, &f->owners, "does not exist");
    snprintf(uri, sizeof(uri), "file://%s", path);
    assert_load_refused(uri, &f->owners, "does not exist");
    assert_load_refused(NULL, &f->owners, "no device key");
    assert_load_refused("", &f->owners, "no device key");
}

static void test_load_refuses_loose_modes(void **state)
{
    keys_fixture *f = *state;
    char path[PATH_MAX];
    EVP_PKEY *key = save_new_key(f, "key.pem", path, sizeof(path));

    assert_int_equal(chmod(path, 0640), 0);
    assert_load_refused(path, &f->owners, "readable by group or others");
    assert_int_equal(chmod(path, 0644), 0);
    assert_load_refused(path, &f->owners, "readable by group or others");
    assert_int_equal(chmod(path, 0604), 0);
    assert_load_refused(path, &f->owners, "readable by group or others");
    assert_int_equal(chmod(path, 0620), 0);
    assert_load_refused(path, &f->owners, "writable by group or others");
    EVP_PKEY_free(key);
}

static void test_load_refuses_symlink(void **state)
{
    keys_fixture *f = *state;
    char path[PATH_MAX], link_path[PATH_MAX], uri[PATH_MAX + 16];
    EVP_PKEY *key = save_new_key(f, "real.pem", path, sizeof(path));

    test_path(&f->dir, "link.pem", link_path, sizeof(link_path));
    assert_int_equal(symlink(path, link_path), 0);
    assert_load_refused(link_path, &f->owners, "symbolic link");
    snprintf(uri, sizeof(uri), "file://%s", link_path);
    assert_load_refused(uri, &f->owners, "symbolic link");
    EVP_PKEY_free(key);
}

static void test_load_refuses_directory(void **state)
{
    keys_fixture *f = *state;

    assert_load_refused(f->dir.path, &f->owners, "not a regular file");
}

static void test_load_refuses_foreign_owner(void **state)
{
    keys_fixture *f = *state;
    char path[PATH_MAX];
    EVP_PKEY *key = save_new_key(f, "key.pem", path, sizeof(path));
    kt_owner_policy other = {.allow_root = false, .allow_uid = true, .uid = geteuid() + 1};
    kt_owner_policy root_and_me = {.allow_root = true, .allow_uid = true, .uid = geteuid()};

    /* The file is ours, but the policy names someone else. */
    assert_load_refused(path, &other, "not allowed");
    if (geteuid() == 0) {
        /* A file that really belongs to another user (nobody). */
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_load_refused(path, &root_and_me, "owned by uid 65534");
    }
    EVP_PKEY_free(key);
}

static void test_load_refuses_other_key_types(void **state)
{
    keys_fixture *f = *state;
    char p384[PATH_MAX], rsa[PATH_MAX], ed[PATH_MAX];
    EVP_PKEY *k384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *krsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ked = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

    assert_non_null(k384);
    assert_non_null(krsa);
    assert_non_null(ked);
    write_pem(k384, test_path(&f->dir, "p384.pem", p384, sizeof(p384)), 0600, NULL);
    write_pem(krsa, test_path(&f->dir, "rsa.pem", rsa, sizeof(rsa)), 0600, NULL);
    write_pem(ked, test_path(&f->dir, "ed.pem", ed, sizeof(ed)), 0600, NULL);
    assert_load_refused(p384, &f->owners, "not P-256");
    assert_load_refused(rsa, &f->owners, "RSA key, not EC P-256");
    assert_load_refused(ed, &f->owners, "not EC P-256");
    EVP_PKEY_free(k384);
    EVP_PKEY_free(krsa);
    EVP_PKEY_free(ked);
}

static void test_load_refuses_garbage(void **state)
{
    keys_fixture *f = *state;
    char path[PATH_MAX], good[PATH_MAX], cut[PATH_MAX], pub[PATH_MAX];
    EVP_PKEY *key = save_new_key(f, "good.pem", good, sizeof(good));
    size_t len = 0;
    char *pem = read_file_all(good, &len);
    unsigned char *der = NULL;
    int der_len;

    assert_non_null(pem);
    test_path(&f->dir, "garbage.pem", path, sizeof(path));
    assert_int_equal(write_file_mode(path, "this is not a key\n", 18, 0600), 0);
    assert_load_refused(path, &f->owners, "no usable private key");
    assert_int_equal(write_file_mode(path, "", 0, 0600), 0);
    assert_load_refused(path, &f->owners, "no usable private key");
    /* A PEM cut in half. */
    test_path(&f->dir, "cut.pem", cut, sizeof(cut));
    assert_int_equal(write_file_mode(cut, pem, len / 2, 0600), 0);
    assert_load_refused(cut, &f->owners, "no usable private key");
    /* A public key alone cannot sign. */
    der_len = i2d_PUBKEY(key, &der);
    assert_true(der_len > 0);
    test_path(&f->dir, "pub.der", pub, sizeof(pub));
    assert_int_equal(write_file_mode(pub, der, (size_t)der_len, 0600), 0);
    assert_load_refused(pub, &f->owners, "no usable private key");
    OPENSSL_free(der);
    free(pem);
    EVP_PKEY_free(key);
}

static void test_load_refuses_encrypted_key_without_prompting(void **state)
{
    keys_fixture *f = *state;
    char path[PATH_MAX];
    kt_error err = {KT_OK, ""};
    EVP_PKEY *key = kt_key_generate(&err);

    assert_non_null(key);
    write_pem(key, test_path(&f->dir, "enc.pem", path, sizeof(path)), 0600, "AES-256-CBC");
    assert_load_refused(path, &f->owners, "no usable private key");
    EVP_PKEY_free(key);
}

static void test_load_refuses_bad_references(void **state)
{
    keys_fixture *f = *state;
    char cwd[PATH_MAX], path[PATH_MAX];
    EVP_PKEY *key;

    assert_load_refused("nosuchscheme:whatever", &f->owners, "'nosuchscheme:' is not supported");
    assert_load_refused("relative/key.pem", &f->owners, "neither an absolute path nor a URI");
    assert_load_refused("file://example.com/etc/key.pem", &f->owners, "only local file:");
    assert_load_refused("file:relative.pem", &f->owners, "must be absolute");
    assert_load_refused("file://", &f->owners, "only local file:");

    /* OSSL_STORE retries an unknown scheme as a relative file name: a valid key planted under
     * that name in the working directory must not be picked up unchecked. */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir.path), 0);
    key = save_new_key(f, "nosuchscheme:key", path, sizeof(path));
    assert_load_refused("nosuchscheme:key", &f->owners, "is not supported");
    assert_load_refused("key.pem", &f->owners, "neither an absolute path nor a URI");
    assert_int_equal(chdir(cwd), 0);
    EVP_PKEY_free(key);
}

/* --- a store provider for the "kttest:" scheme ----------------------------------------------- */

/* Stands in for the tpm2 or pkcs11 providers, which these machines do not have: it serves the
 * keys below by URI and lets the tests drive kt_key_load's provider path end to end. */
static struct {
    unsigned char *p256_der; /* PrivateKeyInfo DER */
    size_t p256_len;
    unsigned char *p384_der;
    size_t p384_len;
} kttest_keys;

typedef struct kttest_loader {
    unsigned char *der;
    size_t len;
    int done;
} kttest_loader;

static void *kttest_open(void *provctx, const char *uri)
{
    kttest_loader *l;

    (void)provctx;
    if (strncmp(uri, "kttest:", 7) != 0 || strstr(uri, "fail") != NULL)
        return NULL;
    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    if (strncmp(uri + 7, "p256", 4) == 0) {
        l->der = kttest_keys.p256_der;
        l->len = kttest_keys.p256_len;
    } else if (strncmp(uri + 7, "p384", 4) == 0) {
        l->der = kttest_keys.p384_der;
        l->len = kttest_keys.p384_len;
    }
    return l;
}

static int kttest_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    (void)ctx;
    (void)params;
    return 1;
}

static int kttest_load(void *ctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
                       OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    static char data_type[] = "EC";
    static char structure[] = "PrivateKeyInfo";
    kttest_loader *l = ctx;
    int type = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[5];

    (void)pw_cb;
    (void)pw_cbarg;
    l->done = 1;
    if (l->der == NULL)
        return 0;
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, data_type, 0);
    params[2] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE, structure, 0);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, l->der, l->len);
    params[4] = OSSL_PARAM_construct_end();
    return object_cb(params, object_cbarg);
}

static int kttest_eof(void *ctx)
{
    return ((kttest_loader *)ctx)->done;
}

static int kttest_close(void *ctx)
{
    free(ctx);
    return 1;
}

static const OSSL_DISPATCH kttest_store_functions[] = {
    {OSSL_FUNC_STORE_OPEN, (void (*)(void))kttest_open},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))kttest_set_ctx_params},
    {OSSL_FUNC_STORE_LOAD, (void (*)(void))kttest_load},
    {OSSL_FUNC_STORE_EOF, (void (*)(void))kttest_eof},
    {OSSL_FUNC_STORE_CLOSE, (void (*)(void))kttest_close},
    {0, NULL},
};

static const OSSL_ALGORITHM kttest_stores[] = {
    {"kttest", "provider=kttest", kttest_store_functions, "test key store"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *kttest_query(void *provctx, int operation_id, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    return operation_id == OSSL_OP_STORE ? kttest_stores : NULL;
}

static const OSSL_DISPATCH kttest_provider_functions[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))kttest_query},
    {0, NULL},
};

static int kttest_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle;
    (void)in;
    *out = kttest_provider_functions;
    *provctx = NULL;
    return 1;
}

static void der_of(EVP_PKEY *key, unsigned char **der, size_t *len)
{
    OSSL_ENCODER_CTX *ectx =
        OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", NULL);

    assert_non_null(ectx);
    assert_int_equal(OSSL_ENCODER_to_data(ectx, der, len), 1);
    OSSL_ENCODER_CTX_free(ectx);
}

static void test_load_provider_uris(void **state)
{
    keys_fixture *f = *state;
    kt_error err = {KT_OK, ""};
    EVP_PKEY *p256 = kt_key_generate(&err);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *loaded, *planted;
    OSSL_PROVIDER *dflt, *prov;
    char cwd[PATH_MAX], path[PATH_MAX];

    assert_non_null(p256);
    assert_non_null(p384);
    der_of(p256, &kttest_keys.p256_der, &kttest_keys.p256_len);
    der_of(p384, &kttest_keys.p384_der, &kttest_keys.p384_len);
    /* Loading a provider explicitly stops the default one loading by itself: load both. */
    dflt = OSSL_PROVIDER_load(NULL, "default");
    assert_non_null(dflt);
    assert_int_equal(OSSL_PROVIDER_add_builtin(NULL, "kttest", kttest_init), 1);
    prov = OSSL_PROVIDER_load(NULL, "kttest");
    assert_non_null(prov);

    loaded = kt_key_load("kttest:p256", &f->owners, &err);
    if (loaded == NULL)
        fail_msg("provider load failed: %s", err.message);
    assert_int_equal(EVP_PKEY_eq(p256, loaded), 1);
    EVP_PKEY_free(loaded);

    assert_load_refused("kttest:p384", &f->owners, "not P-256");
    assert_load_refused("kttest:nothing", &f->owners, "yields no private key");
    /* A secret in the URI (a PIN) never reaches the message. */
    assert_load_refused("kttest:fail;pin-value=918273", &f->owners,
                        "(kttest: URI) cannot be opened");
    kt_error_clear(&err);
    assert_null(kt_key_load("kttest:fail;pin-value=918273", &f->owners, &err));
    assert_null(strstr(err.message, "918273"));

    /* A key file planted in the working directory under the URI's name is not read instead. */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir.path), 0);
    planted = save_new_key(f, "kttest:p256", path, sizeof(path));
    assert_load_refused("kttest:p256", &f->owners, "exists in the working directory");
    assert_int_equal(unlink(path), 0);
    loaded = kt_key_load("kttest:p256", &f->owners, &err);
    assert_non_null(loaded);
    assert_int_equal(EVP_PKEY_eq(p256, loaded), 1);
    assert_int_equal(chdir(cwd), 0);

    EVP_PKEY_free(loaded);
    EVP_PKEY_free(planted);
    assert_int_equal(OSSL_PROVIDER_unload(prov), 1);
    assert_int_equal(OSSL_PROVIDER_unload(dflt), 1);
    OPENSSL_free(kttest_keys.p256_der);
    OPENSSL_free(kttest_keys.p384_der);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
}

static void test_save_refuses_bad_paths(void **state)
{
    keys_fixture *f = *state;
    kt_error err = {KT_OK, ""};
    EVP_PKEY *key = kt_key_generate(&err);
    char path[PATH_MAX];

    assert_non_null(key);
    assert_int_equal(kt_key_save_pem(key, "relative.pem", &err), -1);
    assert_int_not_equal(err.kind, KT_OK);
    kt_error_clear(&err);
    test_path(&f->dir, "missing-dir/key.pem", path, sizeof(path));
    assert_int_equal(kt_key_save_pem(key, path, &err), -1);
    assert_int_equal(err.kind, KT_ERR_IO);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_public_hex),
        cmocka_unit_test_setup_teardown(test_public_hex_of_compressed_key, setup, teardown),
        cmocka_unit_test(test_sign_verify_evp),
        cmocka_unit_test_setup_teardown(test_sign_verify_openssl_cli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_percent_encoded_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_loose_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_foreign_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_other_key_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_encrypted_key_without_prompting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_bad_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_provider_uris, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_refuses_bad_paths, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
