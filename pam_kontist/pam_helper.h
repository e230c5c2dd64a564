/* Internals of kontist-pam-helper, the process pam_kontist.so runs for the network flow. */
#ifndef PAM_HELPER_H
#define PAM_HELPER_H

#include <stdbool.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "kontist.h"

/* --- pins: which Kontist identity root allows for a local user (authfile.c) ----------------- */

/* The Kontist username that says "this user is not pinned", for exceptions to a `*` line. */
#define KT_PAM_NOT_PINNED "-"

/* One line per local user, `#` comments:
 *   local-user  kontist-username  device-id  key-ref   central: the key is root's
 *   local-user  kontist-username                       pin: the device comes from the user's record
 *   *           template                               pin for every user without a line; %u is
 *                                                      the local user name, %% a percent sign
 *   local-user  -                                      not pinned, whatever the `*` line says
 * Parsed strictly; errors name file and line (KT_ERR_CONFIG). A user without a line (and no
 * `*` line) gives KT_ERR_NOT_ENROLLED. */
int kt_pam_authfile_parse(const char *name, const char *text, size_t len, const char *user,
                          kt_device_record *rec, kt_error *err);
/* Reads and parses the authfile; root must own it and it must not be writable by group or
 * others. A missing file is KT_ERR_NOT_ENROLLED when missing_ok (the default path: nobody is
 * pinned yet), else KT_ERR_CONFIG. */
int kt_pam_authfile_lookup(const char *path, bool missing_ok, const char *user,
                           kt_device_record *rec, kt_error *err);
/* Who may own files the helper reads as root: root, or, in a process that does not run as root,
 * that process's own user (nobody else can change what such a process does anyway). */
void kt_pam_trusted_owners(kt_owner_policy *owners);

/* --- users: who the PAM user is at Kontist (user.c) ----------------------------------------- */

typedef struct kt_pam_user {
    const char *name; /* the local (PAM) user, borrowed */
    uid_t uid;
    gid_t gid;
    kt_paths paths;          /* below the user's home, XDG variables ignored */
    kt_device_record rec;    /* username from root's pin; device id and key reference */
    bool pinned;             /* root pins this user: nouserok no longer applies */
    pid_t parent;            /* the module's process, 0 when unknown */
    EVP_PKEY *key;           /* loaded with need_key, unless key_after_password */
    bool key_after_password; /* need_key: a token or TPM key, opened after the password */
    bool key_central;        /* that key is root's (authfile line): pin-source only, no prompt */
} kt_pam_user;

/* Finds the user's pin and, with need_key, the device and its key: from the authfile line when it
 * names them (read as root), else from the user's own device record (read with the user's
 * identity), which may only repeat the pinned identity, never name another one
 * (KT_ERR_IDENTITY_MISMATCH). */
int kt_pam_user_load(kt_pam_user *u, const char *authfile, bool authfile_missing_ok, bool need_key,
                     kt_error *err);
/* Opens the hardware key kt_pam_user_load left out (key_after_password), once the bank has
 * accepted the password: the user's own as the user, with ask for a PIN a token needs and its URI
 * does not source; root's as root (a token's PIN from its pin-source only). The key stays u's. */
EVP_PKEY *kt_pam_user_load_hardware_key(kt_pam_user *u, kt_key_pin_fn ask, void *ask_data,
                                        kt_error *err);
/* Runs fn(u, data, err) with the effective identity switched to the user's, all of the user's
 * supplementary groups included (kt_privs_run_as_user). */
int kt_pam_as_user(const kt_pam_user *u, int (*fn)(const kt_pam_user *, void *, kt_error *),
                   void *data, kt_error *err);
void kt_pam_user_free(kt_pam_user *u);

#endif
