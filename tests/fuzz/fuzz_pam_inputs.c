/* Fuzzes what an administrator writes for the PAM module: the central authfile and the module
 * arguments (the input split into argv at whitespace). Both must parse or fail with
 * KT_ERR_CONFIG / KT_ERR_NOT_ENROLLED, never crash. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pam_helper.h"
#include "pam_kontist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_args(const char *text)
{
    const char *argv[64];
    int argc = 0;
    char *copy = strdup(text), *save = NULL;
    kt_pam_args args;
    kt_error err = {0};

    if (copy == NULL)
        return;
    for (char *tok = strtok_r(copy, " \t\n", &save); tok != NULL && argc < 64;
         tok = strtok_r(NULL, " \t\n", &save))
        argv[argc++] = tok;
    if (kt_pam_args_parse(&args, argc, argv, &err) != 0 && err.kind != KT_ERR_CONFIG)
        abort();
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    kt_device_record rec = {0};
    kt_error err = {0};

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (kt_pam_authfile_parse("fuzz-authfile", text, size, "alice", &rec, &err) == 0) {
        if (rec.username == NULL)
            abort();
    } else if (err.kind != KT_ERR_CONFIG && err.kind != KT_ERR_NOT_ENROLLED) {
        abort();
    }
    kt_record_free(&rec);
    fuzz_args(text);
    free(text);
    return 0;
}
