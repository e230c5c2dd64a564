/* Fuzzes the configuration parser: any bytes must give 0 or a KT_ERR_CONFIG, never a crash. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include "kt_all.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kt_config cfg;
    kt_error err = {0};

    kt_config_init(&cfg);
    if (kt_config_parse(&cfg, "fuzz.conf", (const char *)data, size, &err) != 0 &&
        err.kind != KT_ERR_CONFIG)
        abort();
    kt_config_free(&cfg);
    return 0;
}
