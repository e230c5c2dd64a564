/* placeholder until implemented */
#include <config.h>
typedef int kt_json_placeholder;
