#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
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

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "kt_file.h"
#include "kt_secret.h"
#include "kt_tpm.h"

#define TPM_PROVIDER "tpm2"

/* TPM_RC_LOCKOUT, whichever layer of the TSS passed it on (a resource manager sets its own layer
 * bits; the TPM's code is the low bits). A format-zero warning: no other code aliases it. */
static bool rc_is_lockout(unsigned long rc)
{
    return (rc & ~(unsigned long)TSS2_RC_LAYER_MASK) == TPM2_RC_LOCKOUT;
}

/* Whether one queued error of the tpm2 provider says the TPM is in lockout. The provider's reason
 * is only what failed ("cannot sign"); the TPM's answer is in the error's data, as the TSS return
 * code in decimal and its decoded text ("2337 tpm:warn(2.0): ... in DA lockout mode"). The code
 * decides; the word "lockout" in the data or reason is the fallback for a provider that words it
 * otherwise. */
static bool error_is_lockout(unsigned long e, const char *data, int flags)
{
    const char *reason = ERR_reason_error_string(e);

    if (data != NULL && (flags & ERR_TXT_STRING) != 0) {
        char *end = NULL;
        unsigned long rc;

        errno = 0;
        rc = strtoul(data, &end, 10);
        if (isdigit((unsigned char)data[0]) && errno == 0 && (*end == ' ' || *end == '\0') &&
            rc_is_lockout(rc))
            return true;
        if (strcasestr(data, "lockout") != NULL)
            return true;
    }
    return reason != NULL && strcasestr(reason, "lockout") != NULL;
}

bool kt_tpm_lockout_queued(void)
{
    const char *data = NULL;
    int flags = 0;
    unsigned long e;
    bool found = false;

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0)
        if (error_is_lockout(e, data, flags))
            found = true;
    return found;
}

int kt_tpm_lockout_error(kt_error *err)
{
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                        "the TPM is in dictionary-attack lockout: wait for it to end, or have the "
                        "TPM owner clear it (tpm2_dictionarylockout --clear-lockout)");
}

/* The TCTI every TPM access of this process uses, handed to the tpm2 provider (which reads
 * TPM2OPENSSL_TCTI as it loads) and to ESYS. Always an explicit one: without it the TSS tries its
 * defaults in turn, and the last of them is a simulator on 127.0.0.1:2321, a port any local user
 * could be listening on. */
static char tcti_conf[512];
static const char *tcti_origin; /* "TPM2OPENSSL_TCTI" or "tpm_tcti": for messages */

/* Variables through which the TSS or its tools could pick another TPM. */
static const char *const tss_environment[] = {
    "TPM2TOOLS_TCTI", "TPM2TOOLS_TCTI_NAME", "TPM2TOOLS_DEVICE_FILE",
    "TCTI",           "TSS2_TCTI",           "TSS2_FAPICONF",
};

int kt_tpm_set_tcti(const char *tcti, bool environment_wins)
{
    const char *env = environment_wins ? getenv("TPM2OPENSSL_TCTI") : NULL;
    const char *use;

    if (env != NULL && env[0] != '\0') {
        use = env;
        tcti_origin = "TPM2OPENSSL_TCTI";
    } else {
        use = tcti != NULL ? tcti : KT_TPM_DEFAULT_TCTI;
        tcti_origin = "tpm_tcti";
    }
    if (strlen(use) >= sizeof(tcti_conf))
        return -1;
    memcpy(tcti_conf, use, strlen(use) + 1);
    if (!environment_wins)
        for (size_t i = 0; i < sizeof(tss_environment) / sizeof(tss_environment[0]); i++)
            unsetenv(tss_environment[i]);
    return setenv("TPM2OPENSSL_TCTI", tcti_conf, 1);
}

/* The TCTI in use: set once, by the front end or (when it did not) here, before any TPM access. */
static const char *current_tcti(void)
{
    if (tcti_conf[0] == '\0')
        kt_tpm_set_tcti(NULL, true);
    return tcti_conf;
}

/* Why the device node of a device: TCTI cannot be used by this process's effective identity (the
 * PAM helper reads keys as the user, with the user's groups). */
static int explain_device(const char *path, kt_error *err)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "no TPM on this machine (%s does not exist: is the TPM enabled in "
                            "the firmware setup?)",
                            path);
    if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0) {
        struct group *g = getgrgid(st.st_gid);
        char gname[64];

        if (g != NULL && g->gr_name != NULL)
            snprintf(gname, sizeof(gname), "%s", g->gr_name);
        else
            snprintf(gname, sizeof(gname), "%lu", (unsigned long)st.st_gid);
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "no access to %s for uid %lu: it is open to the group '%s' (mode "
                            "%03o); add the user to that group (usermod -aG %s USER, then log in "
                            "again)",
                            path, (unsigned long)geteuid(), gname, (unsigned)(st.st_mode & 0777),
                            gname);
    }
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                        "the TPM at %s does not answer, or the tpm2 OpenSSL provider does not "
                        "load (install the Debian package tpm2-openssl)",
                        path);
}

/* Why the provider would not start: no TPM, or no access to it. */
static int explain_no_tpm(kt_error *err)
{
    const char *tcti = current_tcti();

    ERR_clear_error();
    if (strncmp(tcti, "device:", 7) == 0)
        return explain_device(tcti + 7, err);
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "the TPM named by %s does not answer",
                        tcti_origin);
}

/* The provider as loaded here, unloaded at exit: its TPM context (ESYS, the TCTI's connection)
 * is freed and the TPM's session closed, not left for the process's end to drop. */
static OSSL_PROVIDER *loaded_provider;

static void unload_provider(void)
{
    OSSL_PROVIDER_unload(loaded_provider);
    loaded_provider = NULL;
}

int kt_tpm_ensure_provider(kt_error *err)
{
    current_tcti();
    if (OSSL_PROVIDER_available(NULL, TPM_PROVIDER))
        return 0;
    /* retain_fallbacks: the default provider stays for everything that is not the TPM's. */
    loaded_provider = OSSL_PROVIDER_try_load(NULL, TPM_PROVIDER, 1);
    if (loaded_provider == NULL)
        return explain_no_tpm(err);
    /* Should registering fail, the provider only stays until the process ends. */
    (void)atexit(unload_provider);
    return 0;
}

static int tpm_failure(const char *what, kt_error *err)
{
    if (kt_tpm_lockout_queued())
        return kt_tpm_lockout_error(err);
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

/* An ESYS context on the TPM the tpm2 provider uses (current_tcti). */
static int esys_open(ESYS_CONTEXT **ectx, TSS2_TCTI_CONTEXT **tcti, kt_error *err)
{
    *ectx = NULL;
    *tcti = NULL;
    if (Tss2_TctiLdr_Initialize(current_tcti(), tcti) != TSS2_RC_SUCCESS)
        return explain_no_tpm(err);
    if (Esys_Initialize(ectx, *tcti, NULL) != TSS2_RC_SUCCESS) {
        Tss2_TctiLdr_Finalize(tcti);
        return explain_no_tpm(err);
    }
    return 0;
}

static void esys_close(ESYS_CONTEXT **ectx, TSS2_TCTI_CONTEXT **tcti)
{
    if (*ectx != NULL)
        Esys_Finalize(ectx);
    if (*tcti != NULL)
        Tss2_TctiLdr_Finalize(tcti);
}

static int esys_failure(const char *what, TSS2_RC rc, kt_error *err)
{
    if (rc_is_lockout(rc))
        return kt_tpm_lockout_error(err);
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "the TPM cannot %s (TPM error 0x%x)", what,
                        (unsigned)rc);
}

/* A P-256 object of this TPM, made inside it and bound to it and its parent: what the object is
 * for (usage), how it encrypts (children's keys) and how it signs. */
static TPM2B_PUBLIC p256_template(TPMA_OBJECT usage, TPMT_SYM_DEF_OBJECT symmetric,
                                  TPMT_ECC_SCHEME scheme)
{
    TPM2B_PUBLIC t;

    memset(&t, 0, sizeof(t));
    t.publicArea.type = TPM2_ALG_ECC;
    t.publicArea.nameAlg = TPM2_ALG_SHA256;
    t.publicArea.objectAttributes = usage | TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH;
    t.publicArea.parameters.eccDetail.symmetric = symmetric;
    t.publicArea.parameters.eccDetail.scheme = scheme;
    t.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    t.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    return t;
}

int kt_tpm_create_persistent(unsigned long handle, kt_error *err)
{
    /* The usual storage primary: an ECC P-256 decryption key, restricted, AES-128-CFB. */
    TPM2B_PUBLIC primary_template =
        p256_template(TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                      (TPMT_SYM_DEF_OBJECT){
                          .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB},
                      (TPMT_ECC_SCHEME){.scheme = TPM2_ALG_NULL});
    /* The device key: ECDSA with SHA-256 only, never leaves this TPM. */
    TPM2B_PUBLIC key_template = p256_template(
        TPMA_OBJECT_SIGN_ENCRYPT, (TPMT_SYM_DEF_OBJECT){.algorithm = TPM2_ALG_NULL},
        (TPMT_ECC_SCHEME){.scheme = TPM2_ALG_ECDSA, .details.ecdsa.hashAlg = TPM2_ALG_SHA256});
    TPM2B_SENSITIVE_CREATE sensitive;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcrs;
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;
    ESYS_CONTEXT *ectx;
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_TR primary = ESYS_TR_NONE, key = ESYS_TR_NONE, existing = ESYS_TR_NONE;
    ESYS_TR persistent = ESYS_TR_NONE;
    TSS2_RC rc;
    int ret = -1;

    if (handle < 0x81000000ul || handle > 0x81fffffful)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "a persistent TPM handle is 0x81000000 to 0x81ffffff");
    if (esys_open(&ectx, &tcti, err) != 0)
        return -1;
    memset(&sensitive, 0, sizeof(sensitive));
    memset(&outside, 0, sizeof(outside));
    memset(&pcrs, 0, sizeof(pcrs));
    if (Esys_TR_FromTPMPublic(ectx, (TPM2_HANDLE)handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &existing) == TSS2_RC_SUCCESS) {
        Esys_TR_Close(ectx, &existing);
        kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                     "TPM handle 0x%lx already holds a key: choose another handle, or remove "
                     "it (tpm2_evictcontrol -C o -c 0x%lx)",
                     handle, handle);
        goto out;
    }
    rc = Esys_CreatePrimary(ectx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                            &sensitive, &primary_template, &outside, &pcrs, &primary, NULL, NULL,
                            NULL, NULL);
    if (rc == TSS2_RC_SUCCESS)
        rc = Esys_Create(ectx, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                         &key_template, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
    if (rc == TSS2_RC_SUCCESS)
        rc =
            Esys_Load(ectx, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &key);
    if (rc != TSS2_RC_SUCCESS) {
        esys_failure("generate a P-256 key", rc, err);
        goto out;
    }
    rc = Esys_EvictControl(ectx, ESYS_TR_RH_OWNER, key, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                           ESYS_TR_NONE, (TPMI_DH_PERSISTENT)handle, &persistent);
    if (rc != TSS2_RC_SUCCESS) {
        esys_failure("make the key persistent", rc, err);
        goto out;
    }
    Esys_TR_Close(ectx, &persistent);
    ret = 0;
out:
    if (key != ESYS_TR_NONE)
        Esys_FlushContext(ectx, key);
    if (primary != ESYS_TR_NONE)
        Esys_FlushContext(ectx, primary);
    Esys_Free(priv);
    Esys_Free(pub);
    esys_close(&ectx, &tcti);
    return ret;
}

void kt_tpm_evict(unsigned long handle)
{
    ESYS_CONTEXT *ectx;
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_TR obj = ESYS_TR_NONE, out = ESYS_TR_NONE;
    kt_error ignored = {KT_OK, ""};

    if (esys_open(&ectx, &tcti, &ignored) != 0)
        return;
    if (Esys_TR_FromTPMPublic(ectx, (TPM2_HANDLE)handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &obj) == TSS2_RC_SUCCESS)
        Esys_EvictControl(ectx, ESYS_TR_RH_OWNER, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                          (TPMI_DH_PERSISTENT)handle, &out);
    esys_close(&ectx, &tcti);
}
