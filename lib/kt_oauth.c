/* placeholder until implemented */
#include <config.h>
typedef int kt_oauth_placeholder;
