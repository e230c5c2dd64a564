/* placeholder until implemented */
#include <config.h>
typedef int kt_file_placeholder;
