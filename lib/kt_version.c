#include <config.h>

#include <stdio.h>

#include <json-c/json_c_version.h>
#include <openssl/crypto.h>

#include "kt_curl.h"
#include "kontist.h"

void kt_runtime_versions_get(kt_runtime_versions *v)
{
    kt_error err = {KT_OK, ""};
    const kt_curl_api *api = kt_curl_get(&err);
    const curl_version_info_data *info = api != NULL ? api->version_info(CURLVERSION_NOW) : NULL;

    if (info != NULL)
        snprintf(v->curl, sizeof(v->curl), "%s (%s)", info->version,
                 info->ssl_version != NULL ? info->ssl_version : "no TLS");
    else
        snprintf(v->curl, sizeof(v->curl), "not loadable: %.140s", err.message);
    snprintf(v->openssl, sizeof(v->openssl), "%s", OpenSSL_version(OPENSSL_VERSION));
    snprintf(v->json_c, sizeof(v->json_c), "%s", json_c_version());
}
