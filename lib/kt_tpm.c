#include <config.h>

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "kt_file.h"
#include "kt_secret.h"
#include "kt_tpm.h"

#define TPM_PROVIDER "tpm2"
#define TPM_DEVICE "/dev/tpmrm0"
#define TPM_RAW_DEVICE "/dev/tpm0"

bool kt_tpm_is_ref(const char *ref)
{
    return ref != NULL && (strncmp(ref, KT_TPM_REF_PREFIX, strlen(KT_TPM_REF_PREFIX)) == 0 ||
                           strncasecmp(ref, "handle:", 7) == 0);
}

/* Every OpenSSL error text queued, for the one sign of a TPM in lockout. */
static bool errors_mention(const char *word)
{
    unsigned long e;
    bool found = false;

    while ((e = ERR_get_error()) != 0) {
        char buf[256];

        ERR_error_string_n(e, buf, sizeof(buf));
        for (char *p = buf; *p != '\0'; p++)
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        if (strstr(buf, word) != NULL)
            found = true;
    }
    return found;
}

/* Why the provider would not start: no TPM, or no access to it. */
static int explain_no_tpm(kt_error *err)
{
    struct stat st;

    ERR_clear_error();
    if (getenv("TPM2OPENSSL_TCTI") != NULL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "the TPM named by TPM2OPENSSL_TCTI does not answer");
    if (stat(TPM_DEVICE, &st) != 0 && stat(TPM_RAW_DEVICE, &st) != 0)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "no TPM on this machine (%s does not exist: is the TPM enabled in "
                            "the firmware setup?)",
                            TPM_DEVICE);
    if (stat(TPM_DEVICE, &st) == 0 && access(TPM_DEVICE, R_OK | W_OK) != 0) {
        struct group *g = getgrgid(st.st_gid);

        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "no access to %s: add the user to the group '%s' (usermod -aG %s "
                            "USER, then log in again)",
                            TPM_DEVICE, g != NULL ? g->gr_name : "tss",
                            g != NULL ? g->gr_name : "tss");
    }
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                        "the tpm2 OpenSSL provider does not load (install the Debian package "
                        "tpm2-openssl)");
}

int kt_tpm_ensure_provider(kt_error *err)
{
    /* retain_fallbacks: the default provider stays for everything that is not the TPM's. */
    if (OSSL_PROVIDER_available(NULL, TPM_PROVIDER) ||
        OSSL_PROVIDER_try_load(NULL, TPM_PROVIDER, 1) != NULL)
        return 0;
    return explain_no_tpm(err);
}

static int tpm_failure(const char *what, kt_error *err)
{
    if (errors_mention("lockout"))
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "the TPM is in dictionary-attack lockout: wait for it to end, or "
                            "have the TPM owner clear it (tpm2_dictionarylockout "
                            "--clear-lockout)");
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "the TPM cannot %s", what);
}

EVP_PKEY *kt_tpm_generate(kt_error *err)
{
    EVP_PKEY_CTX *ctx;
    EVP_PKEY *key = NULL;

    if (kt_tpm_ensure_provider(err) != 0)
        return NULL;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", "provider=" TPM_PROVIDER);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_group_name(ctx, "P-256") <= 0 || EVP_PKEY_generate(ctx, &key) <= 0) {
        tpm_failure("generate a P-256 key", err);
        key = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return key;
}

int kt_tpm_save_blob(EVP_PKEY *key, const char *path, kt_error *err)
{
    OSSL_ENCODER_CTX *ectx =
        OSSL_ENCODER_CTX_new_for_pkey(key, EVP_PKEY_KEYPAIR, "PEM", NULL, "provider=" TPM_PROVIDER);
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long len;
    int rc = -1;

    if (ectx == NULL || bio == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 ||
        !OSSL_ENCODER_to_bio(ectx, bio) || (len = BIO_get_mem_data(bio, &pem)) <= 0) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "cannot write the TPM key blob");
        goto out;
    }
    rc = kt_file_write_atomic(path, pem, (size_t)len, 0600, err);
out:
    OSSL_ENCODER_CTX_free(ectx);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

EVP_PKEY *kt_tpm_load_blob(const char *ref, const kt_owner_policy *owners, kt_error *err)
{
    const char *path = ref + strlen(KT_TPM_REF_PREFIX);
    kt_file_policy policy = {.owners = *owners, .private_read = true, .max_size = 0};
    kt_error ferr = {KT_OK, ""};
    OSSL_DECODER_CTX *dctx = NULL;
    EVP_PKEY *pkey = NULL;
    const unsigned char *p;
    char *data = NULL;
    size_t len = 0;
    int errno_out = 0;

    if (path[0] != '/') {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "a tpm2: key reference needs an absolute path");
        return NULL;
    }
    if (kt_file_read(path, &policy, &data, &len, &errno_out, &ferr) != 0) {
        if (errno_out == ENOENT)
            kt_error_set(err, KT_ERR_KEY_UNUSABLE, "TPM key blob %s does not exist", path);
        else
            kt_error_set(err, KT_ERR_KEY_UNUSABLE, "TPM key blob refused: %s", ferr.message);
        return NULL;
    }
    if (kt_tpm_ensure_provider(err) != 0)
        goto out;
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "EC", EVP_PKEY_KEYPAIR, NULL, NULL);
    p = (const unsigned char *)data;
    if (dctx == NULL || !OSSL_DECODER_from_data(dctx, &p, &len) || pkey == NULL) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
        tpm_failure("load the key blob (made by another TPM, or the TPM was cleared?)", err);
        goto out;
    }
    if (EVP_PKEY_get0_provider(pkey) == NULL ||
        strcmp(OSSL_PROVIDER_get0_name(EVP_PKEY_get0_provider(pkey)), TPM_PROVIDER) != 0) {
        /* A software key renamed tpm2: is not what the reference promises. */
        EVP_PKEY_free(pkey);
        pkey = NULL;
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "%s is not a TPM key blob", path);
    }
out:
    OSSL_DECODER_CTX_free(dctx);
    kt_secret_free(data);
    ERR_clear_error();
    return pkey;
}
