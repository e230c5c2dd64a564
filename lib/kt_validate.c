#include <config.h>

#include <stddef.h>

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

bool kt_key_ref_ok(const char *ref)
{
    kt_key_ref_kind kind = kt_key_ref_classify(ref);

    return kind == KT_KEY_REF_PATH || kind == KT_KEY_REF_URI;
}
