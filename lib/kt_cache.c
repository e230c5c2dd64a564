/* placeholder until implemented */
#include <config.h>
typedef int kt_cache_placeholder;
