/* placeholder until implemented */
#include <config.h>
typedef int kt_http_placeholder;
