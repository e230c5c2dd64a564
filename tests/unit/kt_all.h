/* Every core header, for white-box tests and fuzz harnesses (front ends see only kontist.h). */
#ifndef KT_ALL_H
#define KT_ALL_H

#include "kontist.h"
#include "kt_binding.h"
#include "kt_cache.h"
#include "kt_config.h"
#include "kt_ctx.h"
#include "kt_curl.h"
#include "kt_device.h"
#include "kt_devices.h"
#include "kontist.h"
#include "kt_error.h"
#include "kt_file.h"
#include "kt_flow.h"
#include "kt_graphql.h"
#include "kt_hex.h"
#include "kt_http.h"
#include "kt_json.h"
#include "kt_keys.h"
#include "kt_mfa.h"
#include "kt_oauth.h"
#include "kt_privs.h"
#include "kt_record.h"
#include "kt_secret.h"
#include "kt_session.h"
#include "kt_token.h"
#include "kt_util.h"
#include "kt_validate.h"

#endif
