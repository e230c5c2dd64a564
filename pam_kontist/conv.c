#include <config.h>

#include <stdlib.h>
#include <string.h>

#include <security/pam_ext.h>

#include "pam_kontist.h"

static int conv_prompt(void *data, const char *message, bool echo, char **answer)
{
    kt_pam_conv_data *d = data;
    char *resp = NULL;
    int rc;

    *answer = NULL;
    rc = pam_prompt(d->pamh, echo ? PAM_PROMPT_ECHO_ON : PAM_PROMPT_ECHO_OFF, &resp, "%s", message);
    if (rc != PAM_SUCCESS || resp == NULL) {
        kt_secret_free(resp);
        return -1;
    }
    *answer = resp;
    return 0;
}

/* Informational text: PAM_TEXT_INFO, which sshd may hold back until the next prompt. Nothing the
 * device login says is needed to get in; what is (the password) is asked for with a prompt. */
static void conv_info(void *data, const char *message)
{
    kt_pam_conv_data *d = data;

    if (!d->silent)
        pam_info(d->pamh, "%s", message);
}

static void conv_error(void *data, const char *message)
{
    kt_pam_conv_data *d = data;

    if (!d->silent)
        pam_error(d->pamh, "%s", message);
}

void kt_pam_conv_init(kt_conv *conv, kt_pam_conv_data *data, pam_handle_t *pamh, int flags)
{
    data->pamh = pamh;
    data->silent = (flags & PAM_SILENT) != 0;
    memset(conv, 0, sizeof(*conv));
    conv->prompt = conv_prompt;
    conv->info = conv_info;
    conv->error = conv_error;
    conv->data = data;
}
