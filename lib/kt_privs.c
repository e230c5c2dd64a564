/* placeholder until implemented */
#include <config.h>
typedef int kt_privs_placeholder;
