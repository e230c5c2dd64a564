/* placeholder until implemented */
#include <config.h>
typedef int kt_config_placeholder;
