/* examples_check: the documentation's examples through the real parsers, for
 * tests/integration/test_docs_examples.py.
 *
 *   examples_check config FILE   parses FILE as a configuration file, the way kontist-auth and
 *                                kontist-pam-helper do (kt_config_parse: the files it names are
 *                                not read), and prints "key=value" for every key it sets
 *   examples_check pam ARG...    parses module arguments the way pam_kontist.so does
 *                                (kt_pam_args_parse) and prints what they set
 *
 * Exit status 0 when the example parses, 1 with the parser's message on standard error when it
 * does not, 2 for a usage error. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_config.h"
#include "kt_error.h"
#include "pam_kontist.h"

static int check_config(const char *path)
{
    kt_config cfg;
    kt_error err = {KT_OK, ""};
    char *text = NULL;
    size_t cap = 0, len = 0;
    FILE *fp = fopen(path, "rb");
    int rc = 1;

    if (fp == NULL) {
        perror(path);
        return 2;
    }
    for (;;) {
        size_t n;

        if (len + 4096 > cap) {
            char *bigger = realloc(text, cap + 65536);

            if (bigger == NULL) {
                fclose(fp);
                free(text);
                fputs("out of memory\n", stderr);
                return 2;
            }
            text = bigger;
            cap += 65536;
        }
        n = fread(text + len, 1, cap - len, fp);
        if (n == 0)
            break;
        len += n;
    }
    fclose(fp);
    kt_config_init(&cfg);
    if (kt_config_parse(&cfg, path, text != NULL ? text : "", len, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
    } else {
        const struct {
            const char *key;
            const char *value;
        } strings[] = {
            {"base_url", cfg.base_url},
            {"client_id", cfg.client_id},
            {"client_secret_file", cfg.client_secret_file},
            {"scopes", cfg.scopes},
            {"ca_file", cfg.ca_file},
            {"pinned_pubkey", cfg.pinned_pubkey},
            {"proxy", cfg.proxy},
            {"username", cfg.username},
        };
        const struct {
            const char *key;
            long value;
        } numbers[] = {
            {"connect_timeout", cfg.connect_timeout},
            {"timeout", cfg.timeout},
            {"login_timeout", cfg.login_timeout},
        };

        for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
            if (kt_config_origin(&cfg, strings[i].key) != NULL)
                printf("%s=%s\n", strings[i].key, strings[i].value);
        for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
            if (kt_config_origin(&cfg, numbers[i].key) != NULL)
                printf("%s=%ld\n", numbers[i].key, numbers[i].value);
        rc = 0;
    }
    kt_config_free(&cfg);
    free(text);
    return rc;
}

static int check_pam(int argc, const char **argv)
{
    kt_pam_args args;
    kt_error err = {KT_OK, ""};

    if (kt_pam_args_parse(&args, argc, argv, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("config=%s\nauthfile=%s\nmfa=%s\nlogin_timeout=%ld\n", args.config, args.authfile,
           kt_pam_mfa_name(args.mfa), args.login_timeout);
    printf("nouserok=%d\nuse_first_pass=%d\ntry_first_pass=%d\nlogout_on_close=%d\nnocache=%d\n"
           "debug=%d\n",
           args.nouserok, args.use_first_pass, args.try_first_pass, args.logout_on_close,
           args.nocache, args.debug);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "config") == 0)
        return check_config(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "pam") == 0) {
        /* What PAM hands a module: an array of const strings. */
        const char **args = calloc((size_t)argc, sizeof(*args));
        int rc;

        if (args == NULL)
            return 2;
        for (int i = 2; i < argc; i++)
            args[i - 2] = argv[i];
        rc = check_pam(argc - 2, args);
        free(args);
        return rc;
    }
    fputs("usage: examples_check config FILE | examples_check pam [ARG...]\n", stderr);
    return 2;
}
