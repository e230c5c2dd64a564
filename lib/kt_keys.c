/* placeholder until implemented */
#include <config.h>
typedef int kt_keys_placeholder;
