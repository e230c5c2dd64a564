/* Device keys: ECDSA P-256 through the EVP API and OSSL_STORE. */
#ifndef KT_KEYS_H
#define KT_KEYS_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "kt_config.h"
#include "kt_error.h"

#define KT_PUBKEY_HEX_LEN 130 /* "04" || X || Y, hex */

EVP_PKEY *kt_key_generate(kt_error *err);
/* Writes the private key as unencrypted PKCS#8 PEM, atomically, mode 0600. */
int kt_key_save_pem(EVP_PKEY *key, const char *path, kt_error *err);
/* out must hold KT_PUBKEY_HEX_LEN + 1 bytes. */
int kt_key_public_hex(EVP_PKEY *key, char *out, kt_error *err);
/* ECDSA-SHA256 over msg; *sig_hex is the DER signature in lowercase hex (malloc'd). */
int kt_key_sign_hex(EVP_PKEY *key, const char *msg, size_t len, char **sig_hex, kt_error *err);

/* The kind of key a reference names, for status and messages: "file" (a path or file: URI),
 * "tpm" (tpm2:/path of a TSS2 key blob, or handle:0x81...), "pkcs11" (an RFC 7512 URI), "uri"
 * (another OpenSSL store URI), "none" (NULL). Never anything of the reference itself. */

/* Generates a P-256 key where the reference says: "pkcs11:URI" on that token (*ref_out then
 * names the new key), "tpm2:/path" inside the TPM (*ref_out is a copy; kt_key_save writes the
 * blob), "handle:0x81......" inside the TPM, made persistent at that handle. The private half never
 * exists outside the token or TPM. */
EVP_PKEY *kt_key_generate_on(const char *where, const kt_owner_policy *owners, char **ref_out,
                             kt_error *err);
/* Stores what is needed to use key again under ref: the PEM file (kt_key_save_pem), the TPM blob,
 * or nothing for a token key. */
int kt_key_save(EVP_PKEY *key, const char *ref, kt_error *err);
/* Removes a key that kt_key_generate_on made on a token or persistent in the TPM (ref), when
 * enrolling it failed. */
void kt_key_discard(EVP_PKEY *key, const char *ref);

#endif
