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

#endif
