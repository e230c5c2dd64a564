#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "kt_file.h"
#include "kt_pkcs11.h"
#include "kt_secret.h"

#define P256_COORD_LEN 32
#define P256_POINT_LEN 65 /* 04 || X || Y */
#define MAX_SLOTS 64      /* readers on one machine: a handful */
#define KEY_ID_LEN 16
#define DEFAULT_LABEL "kontist-auth"

/* DER of the named curve prime256v1 (1.2.840.10045.3.1.7), as CKA_EC_PARAMS holds it. */
static const unsigned char p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x03, 0x01, 0x07};

static kt_pkcs11_pin_fn pin_prompt;
static void *pin_prompt_data;

void kt_pkcs11_set_pin_prompt(kt_pkcs11_pin_fn fn, void *data)
{
    pin_prompt = fn;
    pin_prompt_data = data;
}

/* What an EVP_PKEY of a token key carries: the module, the open (logged-in) session, the key. */
typedef struct token_key {
    CK_FUNCTION_LIST *module;
    CK_FUNCTION_LIST **registry; /* the registry's modules, when the URI named none */
    CK_SESSION_HANDLE session;
    bool session_open;
    CK_OBJECT_HANDLE priv;
    CK_OBJECT_HANDLE pub;
    bool generated; /* made by kt_pkcs11_generate: kt_pkcs11_discard removes it */
    char *pin;      /* kept only for keys that ask for it at every signature */
    char label[33]; /* the token's label, for messages */
} token_key;

static int ex_index = -1;

static void token_key_free(token_key *tk)
{
    if (tk == NULL)
        return;
    if (tk->session_open)
        tk->module->C_CloseSession(tk->session);
    if (tk->registry != NULL)
        p11_kit_modules_finalize_and_release(tk->registry);
    else if (tk->module != NULL) {
        p11_kit_module_finalize(tk->module);
        p11_kit_module_release(tk->module);
    }
    kt_secret_free(tk->pin);
    free(tk);
}

static void ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    token_key_free(ptr);
}

static int ensure_ex_index(void)
{
    if (ex_index < 0)
        ex_index = EVP_PKEY_get_ex_new_index(0, NULL, NULL, NULL, ex_free);
    return ex_index;
}

static token_key *token_key_of(const EVP_PKEY *key)
{
    return key != NULL && ex_index >= 0 ? EVP_PKEY_get_ex_data(key, ex_index) : NULL;
}

bool kt_pkcs11_is_token_key(const EVP_PKEY *key)
{
    return token_key_of(key) != NULL;
}

/* A token label is 32 blank-padded bytes. */
static void copy_label(char *out, const unsigned char *label)
{
    size_t n = 32;

    while (n > 0 && label[n - 1] == ' ')
        n--;
    memcpy(out, label, n);
    out[n] = '\0';
}

/* A module runs inside the process that loads it: in kontist-pam-helper that is a root process
 * (its effective identity switched to the user's only while loading, with root still in its
 * saved set), so a module the user could write or swap would be the user's code running as root.
 * The file the URI names, links resolved, and every directory above it must belong to root (or
 * to the process's own real user, who can do nothing through it that the user could not do
 * anyway) and be writable by nobody else. On success *resolved is that path without links
 * (malloc'd): the module is loaded by it, never by the name that was checked, so a link the user
 * owns cannot be switched between the check and the load. */
static int check_module_trusted(const char *path, char **resolved, kt_error *err)
{
    char *real = realpath(path, NULL);
    uid_t self = getuid();
    int rc = 0;

    *resolved = NULL;

    if (real == NULL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "PKCS#11 module %s cannot be loaded (token software not installed "
                            "or removed?): %s",
                            path, strerror(errno));
    *resolved = strdup(real);
    if (*resolved == NULL) {
        free(real);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    /* realpath gives an absolute path without links, "." or "..": walk it up to "/". */
    while (rc == 0) {
        struct stat st;
        char *slash;

        if (stat(real, &st) != 0)
            rc = kt_error_set(err, KT_ERR_KEY_UNUSABLE, "PKCS#11 module %s: %s", path,
                              strerror(errno));
        else if (st.st_uid != 0 && st.st_uid != self)
            rc = kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                              "PKCS#11 module %s refused: %s belongs to uid %u, not root", path,
                              real, (unsigned)st.st_uid);
        /* A sticky directory of root's (/tmp) lets nobody replace another's entries. */
        else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
                 !(S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) != 0 && st.st_uid == 0))
            rc = kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                              "PKCS#11 module %s refused: %s is writable by group or others", path,
                              real);
        if (strcmp(real, "/") == 0 || (slash = strrchr(real, '/')) == NULL)
            break;
        slash[slash == real ? 1 : 0] = '\0';
    }
    free(real);
    if (rc != 0) {
        free(*resolved);
        *resolved = NULL;
    }
    return rc;
}

/* Which modules module-path may name here: any (NULL restricted), or only those listed. */
static struct {
    bool restricted;
    char *allowed; /* comma-separated absolute paths, or NULL */
} module_policy;

int kt_pkcs11_set_modules(const char *allowed, bool any_module, kt_error *err)
{
    char *copy = NULL;

    if (!any_module && allowed != NULL && (copy = strdup(allowed)) == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    free(module_policy.allowed);
    module_policy.allowed = copy;
    module_policy.restricted = !any_module;
    return 0;
}

/* Whether resolved (a path without links) is one of the allowed modules, compared by what each
 * entry resolves to now. */
static bool module_allowed(const char *resolved)
{
    const char *p = module_policy.allowed;

    if (!module_policy.restricted)
        return true;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char entry[PATH_MAX], *real;
        bool same = false;

        if (n > 0 && n < sizeof(entry)) {
            memcpy(entry, p, n);
            entry[n] = '\0';
            real = realpath(entry, NULL);
            same = real != NULL && strcmp(real, resolved) == 0;
            free(real);
        }
        if (same)
            return true;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return false;
}

/* Loads the module the URI names, or every module of p11-kit's registry. */
static int load_modules(P11KitUri *uri, token_key *tk, CK_FUNCTION_LIST ***list, kt_error *err)
{
    const char *path = p11_kit_uri_get_module_path(uri);
    const char *name = p11_kit_uri_get_module_name(uri);
    CK_RV rv;

    if (path != NULL) {
        if (path[0] != '/')
            return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                                "module-path in a key URI must be an absolute path");
        char *resolved = NULL;

        if (check_module_trusted(path, &resolved, err) != 0)
            return -1;
        /* The PAM helper's real uid is root's: a module from wherever the user could put one
         * (a file system the user mounted keeps its own owners) would run as root. */
        if (!module_allowed(resolved)) {
            kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                         "PKCS#11 module %s is not one root allows here: name the module with "
                         "module-name= (p11-kit's registry), or have root list it in "
                         "pkcs11_modules",
                         path);
            free(resolved);
            return -1;
        }
        tk->module = p11_kit_module_load(resolved, 0);
        free(resolved);
        if (tk->module == NULL)
            return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                                "PKCS#11 module %s cannot be loaded (token software not "
                                "installed or removed?): %s",
                                path, p11_kit_message() ? p11_kit_message() : "no detail");
        rv = p11_kit_module_initialize(tk->module);
        if (rv != CKR_OK) {
            p11_kit_module_release(tk->module);
            tk->module = NULL;
            return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                                "PKCS#11 module %s does not start (CKR 0x%lx)", path,
                                (unsigned long)rv);
        }
        *list = calloc(2, sizeof(**list));
        if (*list == NULL)
            return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        (*list)[0] = tk->module;
        return 0;
    }
    tk->registry = p11_kit_modules_load_and_initialize(0);
    if (tk->registry == NULL || tk->registry[0] == NULL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "no PKCS#11 module is registered with p11-kit (install the token's "
                            "module, or name one with module-path= in the URI)");
    if (name != NULL) {
        CK_FUNCTION_LIST *m = p11_kit_module_for_name(tk->registry, name);

        if (m == NULL)
            return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                                "no PKCS#11 module named %s is registered with p11-kit", name);
        *list = calloc(2, sizeof(**list));
        if (*list == NULL)
            return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        (*list)[0] = m;
        return 0;
    }
    {
        size_t n = 0;

        while (tk->registry[n] != NULL)
            n++;
        *list = calloc(n + 1, sizeof(**list));
        if (*list == NULL)
            return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        memcpy(*list, tk->registry, n * sizeof(**list));
    }
    return 0;
}

/* The first token, among the modules, that the URI's token attributes match. */
static int find_token(P11KitUri *uri, CK_FUNCTION_LIST **list, token_key *tk, CK_SLOT_ID *slot,
                      CK_TOKEN_INFO *info, kt_error *err)
{
    if (list == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "no PKCS#11 modules");
    for (size_t m = 0; list[m] != NULL; m++) {
        CK_SLOT_ID slots[MAX_SLOTS];
        CK_ULONG count = MAX_SLOTS;
        CK_INFO minfo;

        if (list[m]->C_GetInfo(&minfo) != CKR_OK || !p11_kit_uri_match_module_info(uri, &minfo))
            continue;
        if (list[m]->C_GetSlotList(CK_TRUE, slots, &count) != CKR_OK)
            continue;
        for (CK_ULONG i = 0; i < count && i < MAX_SLOTS; i++) {
            CK_SLOT_INFO sinfo;
            CK_SLOT_ID want = p11_kit_uri_get_slot_id(uri);

            if (want != (CK_SLOT_ID)-1 && want != slots[i])
                continue;
            if (list[m]->C_GetSlotInfo(slots[i], &sinfo) != CKR_OK ||
                !p11_kit_uri_match_slot_info(uri, &sinfo))
                continue;
            if (list[m]->C_GetTokenInfo(slots[i], info) != CKR_OK ||
                !p11_kit_uri_match_token_info(uri, info))
                continue;
            tk->module = list[m];
            *slot = slots[i];
            copy_label(tk->label, info->label);
            return 0;
        }
    }
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                        "no PKCS#11 token matches the key URI (token not inserted?)");
}

/* The PIN from pin-source=file:/path (the first line), read with the owner checks of a key. */
static int pin_from_source(const char *source, const kt_owner_policy *owners, char *pin,
                           size_t size, kt_error *err)
{
    kt_file_policy policy = {.owners = *owners, .private_read = true, .max_size = 4096};
    kt_error ferr = {KT_OK, ""};
    const char *path;
    char *data = NULL;
    size_t len = 0, n;

    if (strncmp(source, "file:", 5) == 0)
        path = source + 5;
    else
        path = source;
    if (strncmp(path, "//", 2) == 0)
        path += 2;
    if (path[0] != '/')
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "pin-source must be file: with an absolute path");
    if (kt_file_read(path, &policy, &data, &len, NULL, &ferr) != 0)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "PIN file refused: %s", ferr.message);
    n = strcspn(data, "\r\n");
    if (n == 0 || n >= size) {
        kt_secret_free(data);
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "PIN file %s holds no usable PIN", path);
    }
    memcpy(pin, data, n);
    pin[n] = '\0';
    kt_secret_free(data);
    return 0;
}

static int login_error(const token_key *tk, CK_RV rv, kt_error *err)
{
    if (rv == CKR_PIN_INCORRECT)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "wrong PIN for token \"%s\" (not tried again: the token counts "
                            "failed attempts)",
                            tk->label);
    if (rv == CKR_PIN_LOCKED)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "the PIN of token \"%s\" is locked: unblock it with the PUK or the "
                            "token's administration tool",
                            tk->label);
    if (rv == CKR_PIN_LEN_RANGE)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "the PIN for token \"%s\" has a length the token does not accept",
                            tk->label);
    return kt_error_set(err, KT_ERR_KEY_UNUSABLE, "cannot log in to token \"%s\" (CKR 0x%lx)",
                        tk->label, (unsigned long)rv);
}

/* Logs in when the token needs it: once, with the PIN from pin-source or the prompt. */
static int token_login(P11KitUri *uri, token_key *tk, const CK_TOKEN_INFO *info,
                       const kt_owner_policy *owners, kt_error *err)
{
    char pin[KT_PKCS11_PIN_MAX + 1];
    const char *source = p11_kit_uri_get_pin_source(uri);
    CK_RV rv;
    int rc = -1;

    if ((info->flags & CKF_LOGIN_REQUIRED) == 0)
        return 0;
    if ((info->flags & CKF_USER_PIN_LOCKED) != 0)
        return login_error(tk, CKR_PIN_LOCKED, err);
    /* A login through PAM can be retried by whoever has the password, a few times a connection:
     * the last try is left to the person, at their own terminal. */
    if (module_policy.restricted && (info->flags & CKF_USER_PIN_FINAL_TRY) != 0)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "token \"%s\": one PIN try is left, which a login through PAM does "
                            "not use: log in with kontist-auth at a terminal, or unblock the PIN",
                            tk->label);
    if ((info->flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0) {
        rv = tk->module->C_Login(tk->session, CKU_USER, NULL, 0);
        return rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN ? 0 : login_error(tk, rv, err);
    }
    memset(pin, 0, sizeof(pin));
    if (source != NULL)
        rc = pin_from_source(source, owners, pin, sizeof(pin), err);
    else if (pin_prompt != NULL)
        rc = pin_prompt(pin_prompt_data, tk->label, pin, sizeof(pin), err);
    else
        rc = kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                          "token \"%s\" needs a PIN and none can be asked for here (add "
                          "pin-source=file:... to the key URI)",
                          tk->label);
    if (rc == 0) {
        rv = tk->module->C_Login(tk->session, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
            rc = login_error(tk, rv, err);
    }
    if (rc == 0) {
        /* Kept until the key is known: one that wants the PIN at every signature (PIV's
         * signature slot) gets it then; for any other it is wiped at once. */
        tk->pin = strdup(pin);
        if (tk->pin == NULL)
            rc = kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    kt_wipe(pin, sizeof(pin));
    return rc;
}

/* The URI's object attributes (id, object label) plus class and, optionally, key type. */
static CK_ULONG key_template(P11KitUri *uri, CK_OBJECT_CLASS *cls, CK_ATTRIBUTE *tmpl)
{
    CK_ULONG n = 0;
    CK_ATTRIBUTE *a;

    tmpl[n++] = (CK_ATTRIBUTE){CKA_CLASS, cls, sizeof(*cls)};
    if ((a = p11_kit_uri_get_attribute(uri, CKA_ID)) != NULL)
        tmpl[n++] = *a;
    if ((a = p11_kit_uri_get_attribute(uri, CKA_LABEL)) != NULL)
        tmpl[n++] = *a;
    return n;
}

static int find_objects(token_key *tk, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *out,
                        CK_ULONG max, CK_ULONG *found)
{
    *found = 0;
    if (tk->module->C_FindObjectsInit(tk->session, tmpl, n) != CKR_OK)
        return -1;
    if (tk->module->C_FindObjects(tk->session, out, max, found) != CKR_OK)
        *found = 0;
    tk->module->C_FindObjectsFinal(tk->session);
    return 0;
}

/* The public point from CKA_EC_POINT: DER OCTET STRING around 04||X||Y, or (some modules) bare. */
static int point_from_attr(const unsigned char *v, CK_ULONG len, unsigned char *point)
{
    if (len == P256_POINT_LEN + 2 && v[0] == 0x04 && v[1] == P256_POINT_LEN)
        v += 2, len -= 2;
    if (len != P256_POINT_LEN || v[0] != 0x04)
        return -1;
    memcpy(point, v, P256_POINT_LEN);
    return 0;
}

static EVP_PKEY *public_key_from_point(const unsigned char *point, kt_error *err)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    /* OpenSSL's own: a configuration that prefers another provider (tpm2) must not take it. */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", "provider=default");
    EVP_PKEY *pkey = NULL;

    if (bld == NULL || ctx == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, P256_POINT_LEN) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "the token's public key is not a P-256 point");
        pkey = NULL;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return pkey;
}

/* Checks the private key is EC P-256 and reads its public half from the matching public key
 * object (same CKA_ID), or from the private key object when the module puts it there. */
static EVP_PKEY *token_public_key(token_key *tk, kt_error *err)
{
    CK_KEY_TYPE type = 0;
    unsigned char id[256], params[64], ecpoint[128], point[P256_POINT_LEN];
    CK_ATTRIBUTE attrs[] = {
        {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_ID, id, sizeof(id)},
        {CKA_EC_PARAMS, params, sizeof(params)},
    };
    CK_ATTRIBUTE pt = {CKA_EC_POINT, ecpoint, sizeof(ecpoint)};
    CK_RV rv = tk->module->C_GetAttributeValue(tk->session, tk->priv, attrs, 3);

    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_BUFFER_TOO_SMALL)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "cannot read the key on token \"%s\" (CKR 0x%lx)", tk->label,
                            (unsigned long)rv),
               NULL;
    if (attrs[0].ulValueLen != sizeof(type) || type != CKK_EC)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "the key on token \"%s\" is not an EC key (P-256 needed)", tk->label),
               NULL;
    if (attrs[2].ulValueLen != sizeof(p256_oid) || memcmp(params, p256_oid, sizeof(p256_oid)) != 0)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "the key on token \"%s\" is on another curve than P-256", tk->label),
               NULL;
    if (tk->module->C_GetAttributeValue(tk->session, tk->priv, &pt, 1) != CKR_OK ||
        point_from_attr(ecpoint, pt.ulValueLen, point) != 0) {
        CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
        CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, id, attrs[1].ulValueLen}};
        CK_OBJECT_HANDLE pubs[2];
        CK_ULONG found = 0;

        pt.ulValueLen = sizeof(ecpoint);
        if (attrs[1].ulValueLen == CK_UNAVAILABLE_INFORMATION || attrs[1].ulValueLen > sizeof(id) ||
            find_objects(tk, tmpl, 2, pubs, 2, &found) != 0 || found != 1 ||
            tk->module->C_GetAttributeValue(tk->session, pubs[0], &pt, 1) != CKR_OK ||
            point_from_attr(ecpoint, pt.ulValueLen, point) != 0)
            return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                                "no public key on token \"%s\" goes with the private key (a "
                                "public key object with the same id is needed)",
                                tk->label),
                   NULL;
        tk->pub = pubs[0];
    }
    return public_key_from_point(point, err);
}

static EVP_PKEY *attach(EVP_PKEY *pkey, token_key *tk, kt_error *err)
{
    if (pkey == NULL)
        return NULL;
    if (ensure_ex_index() < 0 || !EVP_PKEY_set_ex_data(pkey, ex_index, tk)) {
        EVP_PKEY_free(pkey);
        kt_error_set(err, KT_ERR_INTERNAL, "cannot attach the token to the key");
        return NULL;
    }
    return pkey;
}

/* Parses the URI, finds the token, opens a session and logs in. */
static token_key *open_token(const char *uri_text, bool rw, const kt_owner_policy *owners,
                             P11KitUri **uri_out, kt_error *err)
{
    P11KitUri *uri = p11_kit_uri_new();
    token_key *tk = calloc(1, sizeof(*tk));
    CK_FUNCTION_LIST **list = NULL;
    CK_TOKEN_INFO info;
    CK_SLOT_ID slot = 0;
    CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
    int rc;
    CK_RV rv;

    if (uri == NULL || tk == NULL) {
        kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
        goto fail;
    }
    rc = p11_kit_uri_parse(uri_text, P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE, uri);
    if (rc != P11_KIT_URI_OK) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "not a usable pkcs11: URI: %s",
                     p11_kit_uri_message(rc));
        goto fail;
    }
    /* A PIN in the reference would sit in the device record and in status: pin-source only. */
    if (p11_kit_uri_get_pin_value(uri) != NULL) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                     "pin-value in a key URI is refused: use pin-source=file:/path");
        goto fail;
    }
    if (load_modules(uri, tk, &list, err) != 0 || find_token(uri, list, tk, &slot, &info, err) != 0)
        goto fail;
    rv = tk->module->C_OpenSession(slot, flags, NULL, NULL, &tk->session);
    if (rv != CKR_OK) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "cannot open a session on token \"%s\" (CKR 0x%lx)",
                     tk->label, (unsigned long)rv);
        goto fail;
    }
    tk->session_open = true;
    if (token_login(uri, tk, &info, owners, err) != 0)
        goto fail;
    free(list);
    *uri_out = uri;
    return tk;
fail:
    free(list);
    token_key_free(tk);
    p11_kit_uri_free(uri);
    return NULL;
}

EVP_PKEY *kt_pkcs11_load(const char *uri_text, const kt_owner_policy *owners, kt_error *err)
{
    P11KitUri *uri = NULL;
    token_key *tk = open_token(uri_text, false, owners, &uri, err);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[3];
    CK_OBJECT_HANDLE keys[2];
    CK_ULONG n, found = 0;
    EVP_PKEY *pkey;

    if (tk == NULL)
        return NULL;
    n = key_template(uri, &cls, tmpl);
    if (find_objects(tk, tmpl, n, keys, 2, &found) != 0)
        found = 0;
    p11_kit_uri_free(uri); /* tmpl pointed into it */
    if (found == 0) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE, "no private key on token \"%s\" matches the key URI",
                     tk->label);
        token_key_free(tk);
        return NULL;
    }
    if (found > 1) {
        kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                     "several private keys on token \"%s\" match the key URI: name one with id= "
                     "or object=",
                     tk->label);
        token_key_free(tk);
        return NULL;
    }
    tk->priv = keys[0];
    pkey = token_public_key(tk, err);
    if (pkey == NULL) {
        token_key_free(tk);
        return NULL;
    }
    {
        /* The PIN is kept only for keys that want it again at every signature. */
        CK_BBOOL always = CK_FALSE;
        CK_ATTRIBUTE a = {CKA_ALWAYS_AUTHENTICATE, &always, sizeof(always)};

        if (tk->module->C_GetAttributeValue(tk->session, tk->priv, &a, 1) != CKR_OK ||
            always != CK_TRUE)
            kt_secret_clear(&tk->pin);
    }
    return attach(pkey, tk, err);
}

EVP_PKEY *kt_pkcs11_generate(const char *uri_text, const kt_owner_policy *owners, char **ref_out,
                             kt_error *err)
{
    P11KitUri *uri = NULL;
    token_key *tk = open_token(uri_text, true, owners, &uri, err);
    CK_ATTRIBUTE *label_attr;
    unsigned char id[KEY_ID_LEN];
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    char default_label[] = DEFAULT_LABEL;
    char label_buf[128];
    unsigned char oid[sizeof(p256_oid)];
    CK_ATTRIBUTE label = {CKA_LABEL, default_label, strlen(default_label)};
    CK_ATTRIBUTE idattr = {CKA_ID, id, sizeof(id)};
    CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
    EVP_PKEY *pkey = NULL;
    char *ref = NULL;
    CK_RV rv;

    *ref_out = NULL;
    if (tk == NULL)
        return NULL;
    /* Copied: setting attributes on the URI below replaces the storage it points into. */
    if ((label_attr = p11_kit_uri_get_attribute(uri, CKA_LABEL)) != NULL) {
        if (label_attr->ulValueLen >= sizeof(label_buf)) {
            kt_error_set(err, KT_ERR_KEY_UNUSABLE, "the object= label is too long");
            goto out;
        }
        memcpy(label_buf, label_attr->pValue, label_attr->ulValueLen);
        label.pValue = label_buf;
        label.ulValueLen = label_attr->ulValueLen;
    }
    memcpy(oid, p256_oid, sizeof(oid));
    if (RAND_bytes(id, sizeof(id)) != 1) {
        kt_error_set(err, KT_ERR_INTERNAL, "no random bytes for the key id");
        goto out;
    }
    {
        CK_ATTRIBUTE pub_tmpl[] = {
            {CKA_EC_PARAMS, oid, sizeof(oid)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_VERIFY, &yes, sizeof(yes)},
            label,
            idattr,
        };
        CK_ATTRIBUTE priv_tmpl[] = {
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &yes, sizeof(yes)},
            {CKA_SENSITIVE, &yes, sizeof(yes)},
            {CKA_EXTRACTABLE, &no, sizeof(no)},
            {CKA_SIGN, &yes, sizeof(yes)},
            label,
            idattr,
        };

        rv = tk->module->C_GenerateKeyPair(tk->session, &mech, pub_tmpl, 5, priv_tmpl, 7, &tk->pub,
                                           &tk->priv);
        if (rv != CKR_OK) {
            kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                         "token \"%s\" cannot generate a P-256 key (CKR 0x%lx)", tk->label,
                         (unsigned long)rv);
            goto out;
        }
    }
    tk->generated = true;
    /* The reference names exactly the new key: its id and label, the token, the module and the
     * pin-source of the URI given. */
    p11_kit_uri_set_attribute(uri, &idattr);
    p11_kit_uri_set_attribute(uri, &label);
    {
        CK_ATTRIBUTE cls = {CKA_CLASS, &priv_class, sizeof(priv_class)};

        p11_kit_uri_set_attribute(uri, &cls);
    }
    if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE, &ref) !=
        P11_KIT_URI_OK) {
        kt_error_set(err, KT_ERR_INTERNAL, "cannot write the URI of the new key");
        goto out;
    }
    pkey = token_public_key(tk, err);
    if (pkey != NULL) {
        kt_secret_clear(&tk->pin);
        pkey = attach(pkey, tk, err);
        tk = NULL; /* owned by pkey, or freed with it */
    }
out:
    p11_kit_uri_free(uri);
    if (tk != NULL && tk->generated) {
        tk->module->C_DestroyObject(tk->session, tk->priv);
        tk->module->C_DestroyObject(tk->session, tk->pub);
    }
    token_key_free(tk);
    if (pkey == NULL)
        free(ref);
    else
        *ref_out = ref;
    return pkey;
}

void kt_pkcs11_discard(EVP_PKEY *key)
{
    token_key *tk = token_key_of(key);

    if (tk == NULL || !tk->generated)
        return;
    tk->module->C_DestroyObject(tk->session, tk->priv);
    if (tk->pub != 0)
        tk->module->C_DestroyObject(tk->session, tk->pub);
    tk->generated = false;
}

int kt_pkcs11_sign(const EVP_PKEY *key, const unsigned char *msg, size_t len, unsigned char **sig,
                   size_t *sig_len, kt_error *err)
{
    token_key *tk = token_key_of(key);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned char raw[2 * 66]; /* room for larger curves: a wrong length is refused below */
    CK_ULONG raw_len = sizeof(raw);
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_RV rv;

    *sig = NULL;
    if (tk == NULL)
        return kt_error_set(err, KT_ERR_INTERNAL, "not a token key");
    SHA256(msg, len, digest);
    rv = tk->module->C_SignInit(tk->session, &mech, tk->priv);
    if (rv == CKR_OK && tk->pin != NULL) {
        rv = tk->module->C_Login(tk->session, CKU_CONTEXT_SPECIFIC, (CK_UTF8CHAR *)tk->pin,
                                 strlen(tk->pin));
        if (rv != CKR_OK)
            return login_error(tk, rv, err);
    }
    if (rv == CKR_OK)
        rv = tk->module->C_Sign(tk->session, digest, sizeof(digest), raw, &raw_len);
    if (rv != CKR_OK)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "token \"%s\" did not sign (CKR 0x%lx; removed?)", tk->label,
                            (unsigned long)rv);
    return kt_ecdsa_raw_to_der(raw, raw_len, sig, sig_len, err);
}

int kt_ecdsa_raw_to_der(const unsigned char *raw, size_t raw_len, unsigned char **der,
                        size_t *der_len, kt_error *err)
{
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *out = NULL;
    int n;

    *der = NULL;
    *der_len = 0;
    /* Only P-256 keys are used: r and s are exactly 32 bytes each. Any other length is a token
     * answering for another key or curve, never something to re-encode. */
    if (raw == NULL || raw_len != 2 * P256_COORD_LEN)
        return kt_error_set(err, KT_ERR_KEY_UNUSABLE,
                            "the token gave a signature of %zu bytes, not the %d of a P-256 "
                            "r || s",
                            raw_len, 2 * P256_COORD_LEN);
    es = ECDSA_SIG_new();
    r = BN_bin2bn(raw, (int)(raw_len / 2), NULL);
    s = BN_bin2bn(raw + raw_len / 2, (int)(raw_len / 2), NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        ERR_clear_error();
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    /* es owns r and s now. */
    n = i2d_ECDSA_SIG(es, &out);
    ECDSA_SIG_free(es);
    if (n <= 0) {
        ERR_clear_error();
        return kt_error_set(err, KT_ERR_INTERNAL, "cannot encode the signature");
    }
    /* The caller frees with free(): copy out of OpenSSL's allocator. */
    *der = malloc((size_t)n);
    if (*der == NULL) {
        OPENSSL_free(out);
        return kt_error_set(err, KT_ERR_INTERNAL, "out of memory");
    }
    memcpy(*der, out, (size_t)n);
    OPENSSL_free(out);
    *der_len = (size_t)n;
    return 0;
}
