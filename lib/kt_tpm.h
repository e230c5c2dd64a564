/* Device keys born in a TPM 2.0, through the tpm2 OpenSSL provider (tpm2-openssl).
 *
 * The key is generated inside the TPM; what leaves it is a TSS2 key blob (the private part
 * wrapped by the TPM's storage key: useless in any other TPM), kept in a file, mode 0600. The key
 * reference of such a key is "tpm2:" followed by the blob's absolute path. Persistent keys are
 * referenced as "handle:0x81......" (served by the same provider). */
#ifndef KT_TPM_H
#define KT_TPM_H

#include <stdbool.h>

#include <openssl/evp.h>

#include "kt_config.h"
#include "kt_error.h"
#include "kt_validate.h"

/* Pins the TCTI (how the TPM is reached) for this process: tcti (NULL: KT_TPM_DEFAULT_TCTI), or
 * with environment_wins a TPM2OPENSSL_TCTI the caller set (the kontist-auth command, run by the
 * person for themself). Without environment_wins (the PAM helper, root-owned settings only) the
 * TSS variables of the environment are removed. Must come before the first TPM access; without a
 * call the first access pins TPM2OPENSSL_TCTI or the default, never the TSS's own fallbacks. */
int kt_tpm_set_tcti(const char *tcti, bool environment_wins);
/* Makes sure the tpm2 provider is loaded (beside the default one). Errors say why there is no
 * TPM to use: none on this machine, no access to /dev/tpmrm0 (and which group grants it). */
int kt_tpm_ensure_provider(kt_error *err);
/* Whether OpenSSL's queued errors (from the tpm2 provider) say the TPM refused for its
 * dictionary-attack lockout (TPM_RC_LOCKOUT). Empties the queue. */
bool kt_tpm_lockout_queued(void);
/* Sets the error that says the TPM is in lockout and what to do (KT_ERR_KEY_UNUSABLE). */
int kt_tpm_lockout_error(kt_error *err);
/* A new P-256 signing key inside the TPM. A TPM in lockout still makes keys it then will not use:
 * enrolling signs once with the key before the bank hears of it. */
EVP_PKEY *kt_tpm_generate(kt_error *err);
/* Writes the key's TSS2 blob (PEM) to path, atomically, mode 0600. */
int kt_tpm_save_blob(EVP_PKEY *key, const char *path, kt_error *err);
/* Generates a P-256 ECDSA signing key inside the TPM (below the owner hierarchy's ECC primary)
 * and makes it persistent at handle (0x81000000 to 0x81ffffff), for "handle:0x81......"
 * references. A handle that already holds an object is refused. */
int kt_tpm_create_persistent(unsigned long handle, kt_error *err);
/* Removes the persistent object at handle again (an enrollment that failed). */
void kt_tpm_evict(unsigned long handle);
/* Loads the key of a "tpm2:/path" reference: the blob file is opened with the same checks as a
 * PEM key file (owners, mode 0600, no link) and handed to the TPM. */
EVP_PKEY *kt_tpm_load_blob(const char *ref, const kt_owner_policy *owners, kt_error *err);

#endif
