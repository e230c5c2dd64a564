/* placeholder until implemented */
#include <config.h>
typedef int kt_flow_placeholder;
