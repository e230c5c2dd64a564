/* placeholder until implemented */
#include <config.h>
typedef int kt_record_placeholder;
