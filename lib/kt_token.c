/* placeholder until implemented */
#include <config.h>
typedef int kt_token_placeholder;
