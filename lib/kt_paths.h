/* Where a user's files live. */
#ifndef KT_PATHS_H
#define KT_PATHS_H

#include "kt_error.h"

typedef struct kt_paths {
    char *config_dir;  /* ~/.config/kontist */
    char *state_dir;   /* ~/.local/state/kontist */
    char *user_config; /* config_dir/kontist.conf */
    char *record_file; /* config_dir/device.json */
    char *key_file;    /* config_dir/device-key.pem (default for new keys) */
    char *cache_file;  /* state_dir/tokens.json */
    char *lock_file;   /* state_dir/tokens.lock */
} kt_paths;

/* Defaults below a home directory, ignoring XDG variables (the PAM module). */
int kt_paths_for_home(kt_paths *p, const char *home, kt_error *err);
/* XDG_CONFIG_HOME / XDG_STATE_HOME when set and absolute, else below HOME (the helper). */
int kt_paths_from_env(kt_paths *p, kt_error *err);
void kt_paths_free(kt_paths *p);

#endif
