/* Memory that holds passwords, OTPs, tokens and keys is wiped before it is freed. kt_wipe,
 * kt_secret_free and kt_secret_clear are in kontist.h: the front ends hold secrets too. */
#ifndef KT_SECRET_H
#define KT_SECRET_H

#include <stddef.h>

#include "kontist.h"

#endif
