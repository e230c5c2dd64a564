#include <config.h>

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "kt_util.h"
#include "kt_validate.h"

bool kt_device_id_ok(const char *id)
{
    size_t n = 0;

    if (id == NULL || *id == '\0')
        return false;
    for (; *id != '\0'; id++, n++) {
        char c = *id;
        if (n >= KT_DEVICE_ID_MAX)
            return false;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

kt_key_ref_kind kt_key_ref_classify(const char *ref)
{
    size_t scheme;

    if (ref == NULL || ref[0] == '\0')
        return KT_KEY_REF_INVALID;
    if (ref[0] == '/')
        return KT_KEY_REF_PATH;
    scheme = kt_uri_scheme_len(ref);
    if (scheme == 0)
        return KT_KEY_REF_RELATIVE;
    return ref[scheme + 1] != '\0' ? KT_KEY_REF_URI : KT_KEY_REF_INVALID;
}

/* Whether a pkcs11: URI has an attribute called name, in its path part (separated by ';') or
 * its query part (after '?', separated by '&'). Attribute names are compared without case: a
 * module that read "PIN-VALUE" as the PIN must not get it past this check. */
bool kt_key_ref_has_attr(const char *ref, const char *name)
{
    size_t name_len = strlen(name);
    const char *p;

    if (ref == NULL || strncasecmp(ref, "pkcs11:", 7) != 0)
        return false;
    p = ref + 7;
    while (*p != '\0') {
        size_t len = strcspn(p, ";?&");
        size_t key_len = strcspn(p, "=;?&");

        if (key_len <= len && key_len == name_len && strncasecmp(p, name, name_len) == 0)
            return true;
        p += len;
        if (*p != '\0')
            p++;
    }
    return false;
}

bool kt_key_ref_is_token(const char *ref)
{
    return ref != NULL && strncasecmp(ref, "pkcs11:", 7) == 0;
}

bool kt_key_ref_in_tpm(const char *ref)
{
    return ref != NULL && (strncmp(ref, KT_TPM_REF_PREFIX, strlen(KT_TPM_REF_PREFIX)) == 0 ||
                           strncasecmp(ref, "handle:", 7) == 0);
}

bool kt_key_ref_is_hardware(const char *ref)
{
    size_t scheme = ref != NULL && ref[0] != '/' ? kt_uri_scheme_len(ref) : 0;

    /* Only a file is a software key. Every other scheme reaches a device through a provider or
     * p11-kit: pkcs11:, tpm2:, handle:, or a provider's own store (the tpm2 provider's object:). */
    return scheme > 0 && !(scheme == 4 && strncasecmp(ref, "file:", 5) == 0);
}

int kt_key_ref_check(const char *ref, kt_error *err)
{
    kt_key_ref_kind kind = kt_key_ref_classify(ref);

    if (kind != KT_KEY_REF_PATH && kind != KT_KEY_REF_URI)
        return kt_error_set(err, KT_ERR_CONFIG,
                            "a key reference must be an absolute path or a URI");
    /* A PIN in the reference would sit in the device record, the authfile, status output and
     * possibly a command line: PINs come from pin-source files or the person, never from here. */
    if (kt_key_ref_has_attr(ref, "pin-value"))
        return kt_error_set(err, KT_ERR_CONFIG,
                            "pin-value in a pkcs11: key URI is refused (a PIN never goes into a "
                            "URI or on a command line): use pin-source=file:/path, or let the "
                            "PIN be asked for");
    return 0;
}

bool kt_key_ref_ok(const char *ref)
{
    kt_error ignored = {KT_OK, ""};

    return kt_key_ref_check(ref, &ignored) == 0;
}
