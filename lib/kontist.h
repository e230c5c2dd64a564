/* The kontist-auth core: everything the PAM module and the helper need. */
#ifndef KONTIST_H
#define KONTIST_H

#include "kt_binding.h"
#include "kt_cache.h"
#include "kt_config.h"
#include "kt_conv.h"
#include "kt_ctx.h"
#include "kt_device.h"
#include "kt_doctor.h"
#include "kt_error.h"
#include "kt_file.h"
#include "kt_flow.h"
#include "kt_graphql.h"
#include "kt_hex.h"
#include "kt_http.h"
#include "kt_json.h"
#include "kt_keys.h"
#include "kt_oauth.h"
#include "kt_paths.h"
#include "kt_privs.h"
#include "kt_record.h"
#include "kt_secret.h"
#include "kt_token.h"
#include "kt_version.h"

#define KT_USER_AGENT "kontist-auth/" PACKAGE_VERSION

#endif
