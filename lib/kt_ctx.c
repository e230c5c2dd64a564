/* placeholder until implemented */
#include <config.h>
typedef int kt_ctx_placeholder;
