/* placeholder until implemented */
#include <config.h>
typedef int kt_error_placeholder;
