/* placeholder until implemented */
#include <config.h>
typedef int kt_secret_placeholder;
