/* placeholder until implemented */
#include <config.h>
typedef int kt_paths_placeholder;
