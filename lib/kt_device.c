/* placeholder until implemented */
#include <config.h>
typedef int kt_device_placeholder;
