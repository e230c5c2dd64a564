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

/* Switches effective uid/gid to the user's, with groups (ngroups of them; NULL or 0: gid alone)
 * as the supplementary groups. A no-op when the process already runs as that user. Must be
 * paired with kt_privs_restore, which puts back the uid, gid and every saved group. */
int kt_privs_drop_groups(kt_privs *p, uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
                         kt_error *err);
/* kt_privs_drop_groups with gid as the only group. */
int kt_privs_drop(kt_privs *p, uid_t uid, gid_t gid, kt_error *err);
/* The user's group list as the group database has it (getgrouplist, gid included): *groups is
 * malloc'd, *ngroups entries. */
int kt_privs_user_groups(const char *user, gid_t gid, gid_t **groups, size_t *ngroups,
                         kt_error *err);
/* Restores what kt_privs_drop saved; returns -1 (and err) if it could not. */
int kt_privs_restore(kt_privs *p, kt_error *err);

#endif
