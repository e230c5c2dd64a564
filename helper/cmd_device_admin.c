#include <config.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "output.h"
#include "exit_codes.h"
#include "options.h"

static const char list_help[] =
    "Usage: kontist-auth device list [--json]\n"
    "\n"
    "Lists the devices the bank has bound to the logged-in Kontist user: id and name, and which\n"
    "one is this machine (the device its record ~/.config/kontist/device.json names). Needs a\n"
    "confirmed login ('kontist-auth login' on an enrolled machine); never prompts.\n"
    "\n"
    "Options:\n"
    "      --json         print {\"username\",\"devices\":[{\"id\",\"name\",\"this_machine\"}]}\n"
    "      --config FILE  read only FILE as configuration\n"
    "  -h, --help         show this help\n"
    "\n";

static const char remove_help[] =
    "Usage: kontist-auth device remove ID|--this [--yes]\n"
    "\n"
    "Removes a device the bank has bound to the logged-in Kontist user ('kontist-auth device\n"
    "list' shows their ids): a lost or retired machine, or this one (--this). The bank is asked\n"
    "first, and only once it has removed the device is anything removed here. Removing this\n"
    "machine's device also removes, in this order, the cached tokens it confirmed, the device\n"
    "record and the key file kontist-auth made for it (a TPM key blob too); a key persistent in\n"
    "the TPM, a key on a PKCS#11 token or a key file you chose with --key stays, and you are told\n"
    "how to remove it. Anything that could not be removed here is named. An id the bank does not\n"
    "list changes nothing.\n"
    "\n"
    "On a terminal it asks before removing; without one it refuses unless --yes is given. Needs\n"
    "a confirmed login ('kontist-auth login' on an enrolled machine).\n"
    "\n"
    "Options:\n"
    "      --this         remove this machine's device (the one its record names)\n"
    "  -y, --yes          remove without asking (scripts)\n"
    "      --config FILE  read only FILE as configuration\n"
    "  -h, --help         show this help\n"
    "\n";

static void print_list_json(const kt_device_list *l)
{
    fputs("{\"username\":", stdout);
    if (l->username != NULL)
        ka_put_json_string(stdout, l->username);
    else
        fputs("null", stdout);
    fputs(",\"devices\":[", stdout);
    for (size_t i = 0; i < l->count; i++) {
        fputs(i > 0 ? ",{\"id\":" : "{\"id\":", stdout);
        ka_put_json_string(stdout, l->devices[i].id);
        fputs(",\"name\":", stdout);
        ka_put_json_string(stdout, l->devices[i].name);
        printf(",\"this_machine\":%s}", l->devices[i].this_machine ? "true" : "false");
    }
    fputs("]}\n", stdout);
}

static void print_list_text(const kt_device_list *l)
{
    if (l->count == 0) {
        printf("no devices are bound to %s\n", l->username != NULL ? l->username : "this login");
        return;
    }
    printf("%-36s  %s\n", "ID", "NAME");
    for (size_t i = 0; i < l->count; i++) {
        printf("%-36s  ", l->devices[i].id);
        ka_put_plain(stdout, l->devices[i].name);
        fputs(l->devices[i].this_machine ? "  (this machine)\n" : "\n", stdout);
    }
}

/* The core's errors, worded for device administration: a refusal by the bank is not about
 * enrolling this machine, which is what ka_report's hint for the kind says. */
static int admin_report(const ka_app *app, const kt_error *err)
{
    if (err->kind == KT_ERR_MFA_FAILED) {
        fprintf(stderr, "%s: %s\n", app->prog, err->message);
        return ka_exit_code(err->kind);
    }
    if (err->kind == KT_ERR_BAD_REQUEST) {
        fprintf(stderr, "%s: %s\n%s: 'kontist-auth device list' shows the account's devices\n",
                app->prog, err->message, app->prog);
        return ka_exit_code(err->kind);
    }
    if (err->kind == KT_ERR_NOT_ENROLLED) {
        fprintf(stderr, "%s: %s\n%s: 'kontist-auth device list' shows the account's devices\n",
                app->prog, err->message, app->prog);
        return ka_exit_code(err->kind);
    }
    return ka_report(app->prog, err);
}

/* A context whose conversation never prompts: the token comes from the cache or not at all. */
static kt_ctx *quiet_ctx(ka_app *app, kt_error *err)
{
    ka_term quiet = app->term;
    kt_conv conv;

    quiet.no_prompt = true;
    conv = ka_term_conv(&quiet);
    return kt_ctx_new(&app->cfg, &conv, err);
}

int ka_cmd_device_list(ka_app *app, int argc, char **argv)
{
    kt_error err = {KT_OK, ""};
    kt_device_list list;
    kt_ctx *ctx;
    static const ka_syntax syntax = {"device list", KA_IN_DEVICE_LIST, list_help, 0, false};
    ka_args args;
    int c, rc;

    c = ka_parse_args(app, &syntax, argc, argv, &args);
    if (c >= 0)
        return c;
    if (ka_app_setup(app, &err) != 0)
        return ka_report(app->prog, &err);
    ctx = quiet_ctx(app, &err);
    if (ctx == NULL)
        return ka_report(app->prog, &err);
    rc = kt_devices_list(ctx, &app->paths, &app->user_owners, &list, &err);
    kt_ctx_free(ctx);
    if (rc != 0)
        return admin_report(app, &err);
    if (args.json)
        print_list_json(&list);
    else
        print_list_text(&list);
    kt_device_list_free(&list);
    return KA_EXIT_OK;
}

/* --- remove ----------------------------------------------------------------------------------- */

/* Asks on the terminal; the bank has listed the device, nothing is removed yet. */
static int ask_removal(void *data, const kt_bound_device *device, kt_error *err)
{
    const ka_app *app = data;
    char *answer = NULL;
    int rc;

    fprintf(stderr, "%s: device %s (\"", app->prog, device->id);
    ka_put_plain(stderr, device->name);
    fputs("\")", stderr);
    if (device->this_machine)
        fputs(" is THIS machine's device: its cached tokens, device record and key file go too",
              stderr);
    fputc('\n', stderr);
    rc = ka_tty_ask("Remove it? [y/N] ", true, &answer, err);
    if (rc == 1)
        return kt_error_set(err, KT_ERR_CONV,
                            "no terminal to ask on: pass --yes to remove a device without asking");
    if (rc != 0)
        return -1;
    rc = answer != NULL && (strcasecmp(answer, "y") == 0 || strcasecmp(answer, "yes") == 0);
    kt_secret_free(answer);
    return rc;
}

/* What to do about a key that stayed, by its kind. */
static void key_advice(const ka_app *app, const kt_device_removal *r)
{
    char ref[512];

    ka_key_ref_display(r->key_ref, ref, sizeof(ref));

    if (r->key_ref != NULL && strncasecmp(r->key_ref, "handle:", 7) == 0)
        fprintf(stderr,
                "%s: the key stays persistent in the TPM at %s: remove it with "
                "'tpm2_evictcontrol -C o -c %s' when nothing else uses it\n",
                app->prog, r->key_ref + 7, r->key_ref + 7);
    else if (strcmp(r->key_kind, "pkcs11") == 0)
        fprintf(stderr,
                "%s: the key stays on the PKCS#11 token (%s): delete it there with the token's "
                "own tools (for instance 'pkcs11-tool --delete-object --type privkey --id ID') "
                "when nothing else uses it, or keep it to enroll again with --pkcs11\n",
                app->prog, ref);
    else if (strcmp(r->key_kind, "tpm") == 0)
        fprintf(stderr,
                "%s: the TPM key blob %s stays (kontist-auth did not make it there): remove the "
                "file when nothing else uses it; without it the key cannot be used\n",
                app->prog, ref);
    else
        fprintf(stderr,
                "%s: the key %s stays (kontist-auth did not make it there): remove it when "
                "nothing else uses it\n",
                app->prog, ref);
}

static const char *step_word(kt_local_step s)
{
    switch (s) {
    case KT_LOCAL_REMOVED:
        return "removed";
    case KT_LOCAL_KEPT:
        return "kept";
    case KT_LOCAL_FAILED:
        return "NOT removed";
    case KT_LOCAL_NONE:
        break;
    }
    return "none";
}

/* One line per piece of local state, so that a person (and a test) sees exactly what is left. */
static void report_local(const ka_app *app, const kt_device_removal *r)
{
    char key[512];

    if (!r->device.this_machine && r->tokens == KT_LOCAL_NONE)
        return;
    fprintf(stderr, "%s: cached tokens it confirmed (%s): %s\n", app->prog, app->paths.cache_file,
            step_word(r->tokens));
    if (!r->device.this_machine)
        return;
    ka_key_ref_display(r->key_ref, key, sizeof(key));
    fprintf(stderr, "%s: device record (%s): %s\n", app->prog, app->paths.record_file,
            step_word(r->record));
    fprintf(stderr, "%s: key (%s): %s\n", app->prog, key, step_word(r->key));
    if (r->key == KT_LOCAL_KEPT && r->record != KT_LOCAL_FAILED && r->key_ref != NULL)
        key_advice(app, r);
}

static int removal_report(const ka_app *app, const kt_device_removal *r, const kt_error *err)
{
    if (!r->removed)
        return admin_report(app, err);
    fprintf(stderr, "%s: %s\n", app->prog, err->message);
    report_local(app, r);
    if (r->record == KT_LOCAL_FAILED)
        fprintf(stderr,
                "%s: this machine no longer has a device at the bank: remove the files marked "
                "NOT removed, or enroll again with 'kontist-auth device enroll --force'\n",
                app->prog);
    else
        fprintf(stderr, "%s: remove the files marked NOT removed yourself\n", app->prog);
    return ka_exit_code(err->kind);
}

int ka_cmd_device_remove(ka_app *app, int argc, char **argv)
{
    kt_error err = {KT_OK, ""};
    kt_device_removal_request req;
    kt_device_removal r;
    static const ka_syntax syntax = {"device remove", KA_IN_DEVICE_REMOVE, remove_help, 1, false};
    kt_ctx *ctx;
    ka_args args;
    bool this_machine, yes;
    const char *id = NULL;
    int c, rc, fd;

    c = ka_parse_args(app, &syntax, argc, argv, &args);
    if (c >= 0)
        return c;
    this_machine = args.this_machine;
    yes = args.yes;
    if (args.n_operands > 0)
        id = args.operands[0];
    if ((id != NULL) == this_machine)
        return ka_usage_error(app, "device remove", "give either a device ID or --this");
    if (id != NULL && !kt_device_id_ok(id))
        return ka_usage_error(app, "device remove",
                              "not a device id: 1 to %d characters of A-Z, a-z, 0-9, _ and -",
                              KT_DEVICE_ID_MAX);
    /* Refused before the bank is asked anything: nobody could answer the question. */
    if (!yes) {
        fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            return ka_usage_error(app, "device remove",
                                  "no terminal to ask for confirmation on: pass --yes to remove "
                                  "without asking");
        close(fd);
    }
    if (ka_app_setup(app, &err) != 0)
        return ka_report(app->prog, &err);
    ctx = quiet_ctx(app, &err);
    if (ctx == NULL)
        return ka_report(app->prog, &err);
    req = (kt_device_removal_request){
        .paths = &app->paths,
        .owners = &app->user_owners,
        .device_id = id,
        .confirm = yes ? NULL : ask_removal,
        .confirm_data = app,
    };
    rc = kt_devices_remove(ctx, &req, &r, &err);
    kt_ctx_free(ctx);
    if (rc != 0) {
        rc = removal_report(app, &r, &err);
        kt_device_removal_free(&r);
        return rc;
    }
    fprintf(stderr, "%s: removed device %s (\"", app->prog, r.device.id);
    ka_put_plain(stderr, r.device.name);
    fprintf(stderr, "\") at the bank%s\n", r.device.this_machine ? ": it was this machine's" : "");
    report_local(app, &r);
    if (r.device.this_machine)
        fprintf(stderr,
                "%s: this machine has no device now: to bind it again, run 'kontist-auth login "
                "--no-device' and 'kontist-auth device enroll'\n",
                app->prog);
    kt_device_removal_free(&r);
    return KA_EXIT_OK;
}
