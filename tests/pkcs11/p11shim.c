/* A PKCS#11 module for the tests: it passes every call on to a real module (SoftHSM2) and can
 * make the token misbehave the way real ones do.
 *
 * kontist-pam-helper runs with an empty environment, so the shim is configured by a file next to
 * itself, "<the shim's path>.conf", with lines
 *   module PATH        the module to pass calls on to
 *   env NAME=VALUE     set before that module is loaded (SOFTHSM2_CONF)
 *   mode locked        the user PIN is locked: the token says so, C_Login answers CKR_PIN_LOCKED
 *   mode hang          C_Sign never returns (a card that stopped answering)
 *   mode final-try     the token says one PIN try is left (CKF_USER_PIN_FINAL_TRY)
 *   count PATH         every C_Login appends a line to PATH (how often the PIN was tried)
 * Tests copy the shim to a directory of their own and write the file beside it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST real_list;
static CK_FUNCTION_LIST shim_list;
static enum { MODE_NORMAL, MODE_LOCKED, MODE_HANG, MODE_FINAL_TRY } mode;
static char count_path[4096];

/* One line per login attempt, written before the attempt is passed on. */
static void count_login(CK_USER_TYPE type)
{
    FILE *f;

    if (count_path[0] == '\0' || (f = fopen(count_path, "ae")) == NULL)
        return;
    fprintf(f, "C_Login %lu\n", (unsigned long)type);
    fclose(f);
}

static CK_RV shim_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO *info)
{
    CK_RV rv = real_list.C_GetTokenInfo(slot, info);

    if (rv == CKR_OK && mode == MODE_LOCKED)
        info->flags |= CKF_USER_PIN_LOCKED;
    if (rv == CKR_OK && mode == MODE_FINAL_TRY)
        info->flags |= CKF_USER_PIN_FINAL_TRY;
    return rv;
}

static CK_RV shim_login(CK_SESSION_HANDLE session, CK_USER_TYPE type, CK_UTF8CHAR *pin,
                        CK_ULONG len)
{
    count_login(type);
    if (mode == MODE_LOCKED)
        return CKR_PIN_LOCKED;
    return real_list.C_Login(session, type, pin, len);
}

static CK_RV shim_sign(CK_SESSION_HANDLE session, CK_BYTE *data, CK_ULONG len, CK_BYTE *sig,
                       CK_ULONG *sig_len)
{
    if (mode == MODE_HANG) {
        for (;;)
            pause();
    }
    return real_list.C_Sign(session, data, len, sig, sig_len);
}

static int configure(void)
{
    Dl_info self;
    char path[4096], line[4096], module[4096] = "";
    FILE *f;
    void *handle;
    CK_RV (*get_list)(CK_FUNCTION_LIST **);
    CK_FUNCTION_LIST *list = NULL;

    if (dladdr((void *)configure, &self) == 0 || self.dli_fname == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s.conf", self.dli_fname);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "module ", 7) == 0)
            snprintf(module, sizeof(module), "%s", line + 7);
        else if (strncmp(line, "env ", 4) == 0)
            putenv(strdup(line + 4));
        else if (strcmp(line, "mode locked") == 0)
            mode = MODE_LOCKED;
        else if (strcmp(line, "mode hang") == 0)
            mode = MODE_HANG;
        else if (strcmp(line, "mode final-try") == 0)
            mode = MODE_FINAL_TRY;
        else if (strncmp(line, "count ", 6) == 0)
            snprintf(count_path, sizeof(count_path), "%s", line + 6);
    }
    fclose(f);
    handle = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL)
        return -1;
    *(void **)&get_list = dlsym(handle, "C_GetFunctionList");
    if (get_list == NULL || get_list(&list) != CKR_OK || list == NULL)
        return -1;
    real_list = *list;
    shim_list = real_list;
    shim_list.C_GetTokenInfo = shim_get_token_info;
    shim_list.C_Login = shim_login;
    shim_list.C_Sign = shim_sign;
    return 0;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out)
{
    if (shim_list.C_Initialize == NULL && configure() != 0)
        return CKR_GENERAL_ERROR;
    *out = &shim_list;
    return CKR_OK;
}
