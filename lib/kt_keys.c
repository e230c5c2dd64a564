#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "kt_file.h"
#include "kt_hex.h"
#include "kt_keys.h"
#include "kt_pkcs11.h"
#include "kt_secret.h"
#include "kt_tpm.h"
#include "kt_util.h"

#define KT_EC_POINT_LEN 65 /* 04 || X || Y for a 256-bit curve */
#define KT_EC_COORD_LEN 32
#define KT_KEY_MAX_STORE_OBJECTS 16 /* a key file or token holds a handful of objects, not more */

/* The reason of the most recent OpenSSL error, for messages. The queue is cleared so that a
 * failure here does not linger in the thread's error queue of a host process (sshd, sudo). */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return reason != NULL ? reason : "no detail from OpenSSL";
}

EVP_PKEY *kt_key_generate(kt_error *err)
{
    /* A key file's key, made by OpenSSL's default provider whatever openssl.cnf prefers (a key
     * made in the TPM could not be written as a PEM file). */
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, "provider=default", "EC", "P-256");

    if (key == NULL)
        kt_error_set(err, KT_ERR_INTERNAL, "cannot generate a P-256 key: %s", ossl_reason());
    return key;
}

int kt_key_save_pem(EVP_PKEY *key, const char *path, kt_error *err)
{
    OSSL_ENCODER_CTX *ectx = NULL;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len = 0;
    int ret = -1;

    if (key == NULL || path == NULL || path[0] != '/') {
        kt_error_set(err, KT_ERR_INTERNAL, "a device key is saved to an absolute path");
        goto out;
    }
    /* Secure memory BIO: its buffer is cleansed when freed; we wipe it ourselves as well. */
    bio = BIO_new(BIO_s_secmem());
    ectx = OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_KEYPAIR, "PEM", "PrivateKeyInfo", NULL);
    if (bio == NULL || ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "cannot encode the device key as PKCS#8: %s",
                     ossl_reason());
        goto out;
    }
    if (!OSSL_ENCODER_to_bio(ectx, bio)) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "cannot encode the device key as PKCS#8: %s",
                     ossl_reason());
        goto out;
    }
    pem_len = BIO_get_mem_data(bio, &pem);
    if (pem_len <= 0 || pem == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "encoding the device key gave no data");
        goto out;
    }
    if (kt_file_write_atomic(path, pem, (size_t)pem_len, 0600, err) != 0)
        goto out;
    ret = 0;
out:
    if (pem != NULL && pem_len > 0)
        kt_wipe(pem, (size_t)pem_len);
    BIO_free(bio);
    OSSL_ENCODER_CTX_free(ectx);
    return ret;
}

/* Turns file:/p, file:///p and file://localhost/p into an absolute path, undoing %XX escapes.
 * Remote hosts and NUL bytes are refused. Returns a malloc'd path or NULL with err set. */
static char *file_uri_to_path(const char *uri, kt_error *err)
{
    const char *p = uri + strlen("file:");
    char *path;
    size_t n = 0;

    if (strncmp(p, "//", 2) == 0) {
        const char *slash = strchr(p + 2, '/');
        size_t host_len = slash != NULL ? (size_t)(slash - (p + 2)) : strlen(p + 2);

        if (slash == NULL ||
            (host_len != 0 && !(host_len == 9 && strncasecmp(p + 2, "localhost", 9) == 0))) {
            kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                         "device key URI %s: only local file: URIs with an absolute path work",
                         uri);
            return NULL;
        }
        p = slash;
    }
    if (p[0] != '/') {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key URI %s: the path must be absolute", uri);
        return NULL;
    }
    path = malloc(strlen(p) + 1);
    if (path == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    while (*p != '\0') {
        if (*p == '%') {
            int hi = kt_hex_value(p[1]);
            int lo = hi < 0 ? -1 : kt_hex_value(p[2]);

            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(path);
                kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key URI %s: bad %% escape", uri);
                return NULL;
            }
            path[n++] = (char)(hi << 4 | lo);
            p += 3;
        } else {
            path[n++] = *p++;
        }
    }
    path[n] = '\0';
    return path;
}

/* Takes the first private key out of an open store. */
static EVP_PKEY *store_first_pkey(OSSL_STORE_CTX *sctx)
{
    EVP_PKEY *pkey = NULL;

    for (int i = 0; i < KT_KEY_MAX_STORE_OBJECTS && pkey == NULL && !OSSL_STORE_eof(sctx); i++) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(sctx);

        if (info == NULL) {
            if (OSSL_STORE_error(sctx))
                break;
            continue;
        }
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    return pkey;
}

/* The key in data, decoded in a library context of its own that has OpenSSL's default provider
 * and nothing else (no openssl.cnf), then carried over into the process's: a key file is a
 * software key. A provider openssl.cnf loads would otherwise take part in decoding (OpenSSL 3.0
 * collects decoders from every provider whatever the property query): the tpm2 provider's takes
 * a TSS2 blob and loads it into the TPM, a PKCS#11 provider's takes a URI in PEM, and so a file
 * would reach a device before the password is checked, as hardware references never do. */
static EVP_PKEY *decode_software_key(const char *data, size_t len)
{
    OSSL_LIB_CTX *plain = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *provider = plain != NULL ? OSSL_PROVIDER_load(plain, "default") : NULL;
    BIO *bio = provider != NULL ? BIO_new_mem_buf(data, (int)len) : NULL;
    OSSL_STORE_CTX *sctx = NULL;
    EVP_PKEY_CTX *import = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY *decoded = NULL, *pkey = NULL;

    /* The store, not one decoder call: a file may hold other blocks before its key ("EC
     * PARAMETERS" from `openssl ecparam -genkey`, a certificate), and the store passes them
     * (not told to expect a key, which would make it stop at the parameters). */
    if (bio != NULL)
        sctx = OSSL_STORE_attach(bio, "file", plain, NULL, NULL, NULL, NULL, NULL, NULL);
    if (sctx != NULL)
        decoded = store_first_pkey(sctx);
    if (decoded != NULL && EVP_PKEY_todata(decoded, EVP_PKEY_KEYPAIR, &params) &&
        (import = EVP_PKEY_CTX_new_from_name(NULL, EVP_PKEY_get0_type_name(decoded),
                                             "provider=default")) != NULL &&
        EVP_PKEY_fromdata_init(import) > 0 &&
        EVP_PKEY_fromdata(import, &pkey, EVP_PKEY_KEYPAIR, params) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    /* The private scalar was in params: wiped before it goes back to the heap. */
    for (OSSL_PARAM *p = params; p != NULL && p->key != NULL; p++)
        if (p->data != NULL)
            OPENSSL_cleanse(p->data, p->data_size);
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(import);
    EVP_PKEY_free(decoded);
    OSSL_STORE_close(sctx);
    BIO_free(bio);
    OSSL_PROVIDER_unload(provider);
    OSSL_LIB_CTX_free(plain);
    return pkey;
}

/* Decodes a key file already read through the safe opener: the file that was checked is the
 * file that is decoded. */
static EVP_PKEY *decode_key_buffer(const char *path, const char *data, size_t len, kt_error *err)
{
    EVP_PKEY *pkey = decode_software_key(data, len);

    if (pkey == NULL)
        kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                     "device key %s holds no usable private key (unencrypted PEM or DER expected)",
                     path);
    ERR_clear_error();
    return pkey;
}

static EVP_PKEY *load_key_file(const char *path, const kt_owner_policy *owners, kt_error *err)
{
    kt_file_policy policy = {.owners = *owners, .private_read = true, .max_size = 0};
    kt_error ferr = {KT_OK, ""};
    char *data = NULL;
    size_t len = 0;
    int errno_out = 0;
    EVP_PKEY *pkey;

    if (kt_file_read(path, &policy, &data, &len, &errno_out, &ferr) != 0) {
        if (errno_out == ENOENT)
            kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key %s does not exist", path);
        else
            kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key refused: %s", ferr.message);
        return NULL;
    }
    pkey = decode_key_buffer(path, data, len, err);
    kt_wipe(data, len);
    free(data);
    return pkey;
}

/* Provider URIs (pkcs11:, handle:, ...). OSSL_STORE_open tries every URI as a file name first,
 * relative to the working directory, before the scheme's own loader, and an unknown scheme only
 * that way: a file planted under the URI's name would be read without any of the checks above. So
 * the scheme must have a provider loader, and no file of that name may exist. (Someone who can
 * write to the working directory between the check and the open could still race it; the PAM
 * module runs with a working directory the user does not control.) */
static EVP_PKEY *load_key_uri(const char *ref, size_t scheme_len, kt_error *err)
{
    char scheme[64];
    struct stat st;
    OSSL_STORE_LOADER *loader;
    OSSL_STORE_CTX *sctx = NULL;
    EVP_PKEY *pkey = NULL;

    /* Messages name only the scheme: a pkcs11: URI may carry a PIN. */
    if (scheme_len >= sizeof(scheme)) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key URI: scheme too long");
        return NULL;
    }
    memcpy(scheme, ref, scheme_len);
    scheme[scheme_len] = '\0';
    loader = OSSL_STORE_LOADER_fetch(NULL, scheme, NULL);
    if (loader == NULL) {
        ERR_clear_error();
        kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                     "device key URI scheme '%s:' is not supported (no OpenSSL provider for it "
                     "is loaded)",
                     scheme);
        return NULL;
    }
    OSSL_STORE_LOADER_free(loader);
    if (lstat(ref, &st) == 0) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                     "device key (%s: URI) refused: a file of the same name exists in the working "
                     "directory",
                     scheme);
        return NULL;
    }
    sctx = OSSL_STORE_open(ref, NULL, NULL, NULL, NULL);
    if (sctx == NULL || !OSSL_STORE_expect(sctx, OSSL_STORE_INFO_PKEY)) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key (%s: URI) cannot be opened: %s", scheme,
                     ossl_reason());
        goto out;
    }
    pkey = store_first_pkey(sctx);
    if (pkey == NULL)
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key (%s: URI) yields no private key: %s",
                     scheme, ossl_reason());
out:
    OSSL_STORE_close(sctx);
    ERR_clear_error();
    return pkey;
}

static int check_p256(EVP_PKEY *pkey, const char *what, kt_error *err)
{
    char group[64];
    size_t group_len = 0;

    if (!EVP_PKEY_is_a(pkey, "EC"))
        return kt_error_set(
            err, KT_ERR_KEY_UNUSABLE, "device key %s is a %s key, not EC P-256", what,
            EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "non-EC");
    if (!EVP_PKEY_get_group_name(pkey, group, sizeof(group), &group_len)) {
        ERR_clear_error();
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key %s: unknown EC curve", what);
    }
    if (strcasecmp(group, "prime256v1") != 0 && strcasecmp(group, "P-256") != 0 &&
        strcasecmp(group, "secp256r1") != 0)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device key %s is on curve %s, not P-256",
                            what, group);
    return 0;
}

EVP_PKEY *kt_key_load(const char *ref, const kt_owner_policy *owners, kt_error *err)
{
    size_t scheme_len;
    char *path = NULL;
    EVP_PKEY *pkey = NULL;
    const char *what;

    if (ref == NULL || ref[0] == '\0') {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no device key configured");
        return NULL;
    }
    scheme_len = ref[0] == '/' ? 0 : kt_uri_scheme_len(ref);
    if (strcmp(kt_key_kind(ref), "pkcs11") == 0) {
        what = "on the token";
        pkey = kt_pkcs11_load(ref, owners, err);
    } else if (strncmp(ref, KT_TPM_REF_PREFIX, strlen(KT_TPM_REF_PREFIX)) == 0) {
        what = "in the TPM";
        pkey = kt_tpm_load_blob(ref, owners, err);
    } else if (ref[0] == '/') {
        what = ref;
        pkey = load_key_file(ref, owners, err);
    } else if (scheme_len == 4 && strncasecmp(ref, "file", 4) == 0) {
        path = file_uri_to_path(ref, err);
        what = path;
        if (path != NULL)
            pkey = load_key_file(path, owners, err);
    } else if (scheme_len > 0) {
        what = "from the URI";
        /* handle: is the tpm2 provider's: loaded here when openssl.cnf does not load it. */
        if (!kt_key_ref_in_tpm(ref) || kt_tpm_ensure_provider(err) == 0)
            pkey = load_key_uri(ref, scheme_len, err);
    } else {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                     "device key reference %s is neither an absolute path nor a URI", ref);
        return NULL;
    }
    if (pkey != NULL && check_p256(pkey, what, err) != 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    free(path);
    return pkey;
}

/* Builds 04 || X || Y from the coordinates, for keys whose encoded form is compressed. */
static int point_from_coordinates(EVP_PKEY *key, unsigned char *point, kt_error *err)
{
    BIGNUM *x = NULL;
    BIGNUM *y = NULL;
    int ret = -1;

    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y)) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "cannot read the device public key: %s",
                     ossl_reason());
        goto out;
    }
    point[0] = 0x04;
    if (BN_bn2binpad(x, point + 1, KT_EC_COORD_LEN) != KT_EC_COORD_LEN ||
        BN_bn2binpad(y, point + 1 + KT_EC_COORD_LEN, KT_EC_COORD_LEN) != KT_EC_COORD_LEN) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "device public key is not a P-256 point");
        goto out;
    }
    ret = 0;
out:
    BN_free(x);
    BN_free(y);
    ERR_clear_error();
    return ret;
}

int kt_key_public_hex(EVP_PKEY *key, char *out, kt_error *err)
{
    unsigned char point[128];
    size_t len = 0;

    if (key == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no device key");
    if (!EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                         sizeof(point), &len) ||
        len != KT_EC_POINT_LEN || point[0] != 0x04) {
        ERR_clear_error();
        if (point_from_coordinates(key, point, err) != 0)
            return -1;
    }
    kt_hex_encode(point, KT_EC_POINT_LEN, out);
    return 0;
}

/* "?provider=NAME" for the provider holding the key, or NULL. OpenSSL 3.0 takes the first ECDSA
 * implementation it finds and hands it an exported copy of the key: for a key in a TPM or token
 * (tpm2, pkcs11 providers) that copy has no private half and signing fails. Preferring, not
 * requiring, the key's own provider keeps every other key on the implementation it gets now. */
static const char *key_provider_props(EVP_PKEY *key, char *buf, size_t size)
{
    const OSSL_PROVIDER *prov = EVP_PKEY_get0_provider(key);
    const char *name = prov != NULL ? OSSL_PROVIDER_get0_name(prov) : NULL;
    int n;

    if (name == NULL)
        return NULL;
    n = snprintf(buf, size, "?provider=%s", name);
    return n > 0 && (size_t)n < size ? buf : NULL;
}

/* Why signing failed: a TPM that refused for its dictionary-attack lockout says so (the tpm2
 * provider's own reason is only "cannot sign"); for anything else, OpenSSL's reason. */
static int sign_failure(const char *what, kt_error *err)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (kt_tpm_lockout_queued())
        return kt_tpm_lockout_error(err);
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "%s: %s", what,
                        reason != NULL ? reason : "no detail from OpenSSL");
}

int kt_key_sign_hex(EVP_PKEY *key, const char *msg, size_t len, char **sig_hex, kt_error *err)
{
    EVP_MD_CTX *md = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    char props[128];
    int ret = -1;

    *sig_hex = NULL;
    if (key == NULL || msg == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "nothing to sign with or sign");
    /* Only what this signature queues may explain its failure (a TPM's lockout). */
    ERR_clear_error();
    /* A token key is only the public half here: the token signs. */
    if (kt_pkcs11_is_token_key(key)) {
        if (kt_pkcs11_sign(key, (const unsigned char *)msg, len, &sig, &sig_len, err) != 0)
            goto out;
        goto encode;
    }
    md = EVP_MD_CTX_new();
    if (md == NULL ||
        !EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL,
                               key_provider_props(key, props, sizeof(props)), key, NULL) ||
        !EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)msg, len)) {
        sign_failure("cannot sign with the device key", err);
        goto out;
    }
    sig = malloc(sig_len);
    if (sig == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        goto out;
    }
    if (!EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)msg, len)) {
        sign_failure("signing with the device key failed", err);
        goto out;
    }
encode:
    *sig_hex = malloc(2 * sig_len + 1);
    if (*sig_hex == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        goto out;
    }
    kt_hex_encode(sig, sig_len, *sig_hex);
    ret = 0;
out:
    free(sig);
    EVP_MD_CTX_free(md);
    return ret;
}

const char *kt_key_kind(const char *ref)
{
    if (ref == NULL)
        return "none";
    if (strncasecmp(ref, "pkcs11:", 7) == 0)
        return "pkcs11";
    if (kt_key_ref_in_tpm(ref))
        return "tpm";
    if (ref[0] == '/' || strncasecmp(ref, "file:", 5) == 0)
        return "file";
    return "uri";
}

void kt_key_set_pin_prompt(kt_key_pin_fn fn, void *data)
{
    kt_pkcs11_set_pin_prompt(fn, data);
}

int kt_key_set_tpm_tcti(const char *tcti, bool environment_wins, kt_error *err)
{
    if (kt_tpm_set_tcti(tcti, environment_wins) != 0)
        return kt_error_set(err, KT_ERR_CONFIG, "cannot use the TPM TCTI setting");
    return 0;
}

int kt_key_set_pkcs11_modules(const char *allowed, bool any_module, kt_error *err)
{
    return kt_pkcs11_set_modules(allowed, any_module, err);
}

EVP_PKEY *kt_key_generate_on(const char *where, const kt_owner_policy *owners, char **ref_out,
                             kt_error *err)
{
    *ref_out = NULL;
    if (where != NULL && strncasecmp(where, "pkcs11:", 7) == 0)
        return kt_pkcs11_generate(where, owners, ref_out, err);
    if (where != NULL && strncmp(where, KT_TPM_REF_PREFIX, strlen(KT_TPM_REF_PREFIX)) == 0) {
        EVP_PKEY *key = kt_tpm_generate(err);

        *ref_out = key != NULL ? strdup(where) : NULL;
        if (key != NULL && *ref_out == NULL) {
            EVP_PKEY_free(key);
            kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
            return NULL;
        }
        return key;
    }
    if (where != NULL && strncasecmp(where, "handle:", 7) == 0) {
        char *end = NULL;
        unsigned long handle;

        errno = 0;
        handle = strtoul(where + 7, &end, 16);
        if (errno != 0 || end == where + 7 || *end != '\0') {
            kt_error_set(err, KT_ERR_KEY_UNUSABLE, "not a TPM handle: %s", where + 7);
            return NULL;
        }
        if (kt_tpm_create_persistent(handle, err) != 0)
            return NULL;
        *ref_out = strdup(where);
        if (*ref_out != NULL) {
            EVP_PKEY *key = kt_key_load(where, owners, err);

            if (key != NULL)
                return key;
            free(*ref_out);
            *ref_out = NULL;
        } else {
            kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        }
        kt_tpm_evict(handle);
        return NULL;
    }
    kt_error_set(err, KT_ERR_INTERNAL, "keys are generated on a token or in the TPM only");
    return NULL;
}

int kt_key_save(EVP_PKEY *key, const char *ref, kt_error *err)
{
    if (strncasecmp(ref, "pkcs11:", 7) == 0 || strncasecmp(ref, "handle:", 7) == 0)
        return 0; /* the token or the TPM keeps it */
    if (strncmp(ref, KT_TPM_REF_PREFIX, strlen(KT_TPM_REF_PREFIX)) == 0)
        return kt_tpm_save_blob(key, ref + strlen(KT_TPM_REF_PREFIX), err);
    return kt_key_save_pem(key, ref, err);
}

void kt_key_discard(EVP_PKEY *key, const char *ref)
{
    kt_pkcs11_discard(key);
    if (ref != NULL && strncasecmp(ref, "handle:", 7) == 0)
        kt_tpm_evict(strtoul(ref + 7, NULL, 16));
}
