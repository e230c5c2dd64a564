/* Temporary privilege dropping for per-user files read or written by the PAM module as root. */
#ifndef KT_PRIVS_H
#define KT_PRIVS_H

#include <sys/types.h>

#include "kt_error.h"

typedef struct kt_privs {
    uid_t saved_euid;
    gid_t saved_egid;
    int saved_ngroups;
    gid_t *saved_groups;
    int dropped;
} kt_privs;

/* Switches effective uid/gid (and supplementary groups) to the user's. A no-op when the process
 * already runs as that user. Must be paired with kt_privs_restore. */
int kt_privs_drop(kt_privs *p, uid_t uid, gid_t gid, kt_error *err);
/* Restores what kt_privs_drop saved; returns -1 (and err) if it could not. */
int kt_privs_restore(kt_privs *p, kt_error *err);

#endif
