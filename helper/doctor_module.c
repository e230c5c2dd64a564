/* The doctor checks a PAM stack's pam_kontist.so arguments with the module's own parser
 * (pam_kontist/args.c is compiled into kontist-auth for this), so it can never accept what the
 * module refuses. */
#include <config.h>

#include "app.h"
#include "pam_kontist.h"

int ka_doctor_parse_module_args(int argc, const char **argv, kt_doctor_module_args *out,
                                kt_error *err)
{
    kt_pam_args args;

    if (kt_pam_args_parse(&args, argc, argv, err) != 0)
        return -1;
    out->config = args.config;
    out->helper = args.helper;
    out->login_timeout = args.login_timeout;
    out->nouserok = args.nouserok;
    out->mfa_device = args.mfa != KT_PAM_MFA_NONE;
    out->mfa = kt_pam_mfa_name(args.mfa);
    return 0;
}
