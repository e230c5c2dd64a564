/* Fuzzes the git credential protocol parser of the helper: any request must parse or be refused
 * with a clean error, and what parses must hold only values that can travel back in the protocol.
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include "credential_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ka_cred c = {0};
    kt_error err = {0};

    if (ka_cred_parse((const char *)data, size, &c, &err) == 0) {
        const char *values[] = {c.protocol, c.host, c.path, c.username, c.password};
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
            if (values[i] != NULL && !ka_cred_value_ok(values[i]))
                abort();
    } else if (err.kind == KT_OK) {
        abort();
    }
    ka_cred_free(&c);
    return 0;
}
