/* Device keys on PKCS#11 tokens (smartcards, YubiKey PIV, SoftHSM) through p11-kit.
 *
 * A key is named by an RFC 7512 pkcs11: URI (token=, object=, id=, module-path= or module-name=,
 * pin-source=file:...). Modules come from p11-kit's registry unless the URI names one. A loaded
 * key is an EVP_PKEY holding the token key's public half, with the token session attached:
 * kt_key_sign_hex sees the attachment and signs on the token (CKM_ECDSA over the SHA-256 digest).
 * The private half never leaves the token. */
#ifndef KT_PKCS11_H
#define KT_PKCS11_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "kt_config.h"
#include "kt_error.h"

/* The largest PIN accepted from any source (PKCS#11 tokens allow far less in practice). */
#define KT_PKCS11_PIN_MAX 256

/* Asks the person for the PIN of the token labelled `token`: writes it NUL-terminated into pin
 * (size bytes). Returns 0, or -1 with err set. Only called when the token needs a PIN and the URI
 * has no pin-source. */
typedef int (*kt_pkcs11_pin_fn)(void *data, const char *token, char *pin, size_t size,
                                kt_error *err);

/* The process's way to ask for a PIN (the terminal in kontist-auth, the PAM conversation in the
 * module's helper); NULL: a token that needs a PIN without a pin-source is refused. */
void kt_pkcs11_set_pin_prompt(kt_pkcs11_pin_fn fn, void *data);
/* See kt_key_set_pkcs11_modules. Until called, any module may be named (a process of the key's
 * owner). Returns -1 (KT_ERR_INTERNAL) when out of memory. */
int kt_pkcs11_set_modules(const char *allowed, bool any_module, kt_error *err);

/* Loads the P-256 private key the URI names. pin-source files are read with the owner policy.
 * Failures are KT_ERR_KEY_UNUSABLE; messages never carry a PIN. A wrong PIN is tried once,
 * never again. */
EVP_PKEY *kt_pkcs11_load(const char *uri, const kt_owner_policy *owners, kt_error *err);
/* Generates a P-256 key pair on the token the URI names (private: CKA_SENSITIVE, not
 * CKA_EXTRACTABLE), labelled with the URI's object= (default "kontist-auth") and a fresh random
 * CKA_ID. *ref_out is the URI naming exactly that key (malloc'd). */
EVP_PKEY *kt_pkcs11_generate(const char *uri, const kt_owner_policy *owners, char **ref_out,
                             kt_error *err);
/* Removes a key kt_pkcs11_generate made (an enrollment that failed); other keys are left. */
void kt_pkcs11_discard(EVP_PKEY *key);
/* Whether key lives on a token: then signing goes through kt_pkcs11_sign. */
bool kt_pkcs11_is_token_key(const EVP_PKEY *key);
/* ECDSA over msg with the token key: *sig is the DER signature (malloc'd). */
int kt_pkcs11_sign(const EVP_PKEY *key, const unsigned char *msg, size_t len, unsigned char **sig,
                   size_t *sig_len, kt_error *err);

/* Turns a raw PKCS#11 ECDSA signature r || s of a P-256 key (exactly 64 bytes: two 32-byte
 * halves) into DER ECDSA-Sig-Value; any other length is refused (KT_ERR_KEY_UNUSABLE). */
int kt_ecdsa_raw_to_der(const unsigned char *raw, size_t raw_len, unsigned char **der,
                        size_t *der_len, kt_error *err);

#endif
