/* placeholder until implemented */
#include <config.h>
typedef int kt_hex_placeholder;
