/*
 * tls-constants.c -- OpenSSL option and verification constants by name,
 * with the values of the headers this library is built with.
 */
#include <string.h>

#include "tls-int.h"

/* OpenSSL 3 keeps these defined as 0; they stay in the table for programs
 * written against older versions (mapped to 0 if a header lacks them). */
#ifndef SSL_OP_SINGLE_ECDH_USE
#define SSL_OP_SINGLE_ECDH_USE 0
#endif
#ifndef SSL_OP_SINGLE_DH_USE
#define SSL_OP_SINGLE_DH_USE 0
#endif
#ifndef SSL_OP_EPHEMERAL_RSA
#define SSL_OP_EPHEMERAL_RSA 0
#endif
#ifndef SSL_OP_NO_SSLv2
#define SSL_OP_NO_SSLv2 0
#endif

#define CONSTANTS(X)                                                           \
  X(SSL_OP_ALL)                                                                \
  X(SSL_OP_NO_QUERY_MTU)                                                       \
  X(SSL_OP_COOKIE_EXCHANGE)                                                    \
  X(SSL_OP_NO_TICKET)                                                          \
  X(SSL_OP_CISCO_ANYCONNECT)                                                   \
  X(SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION)                             \
  X(SSL_OP_NO_COMPRESSION)                                                     \
  X(SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION)                                  \
  X(SSL_OP_SINGLE_ECDH_USE)                                                    \
  X(SSL_OP_SINGLE_DH_USE)                                                      \
  X(SSL_OP_EPHEMERAL_RSA)                                                      \
  X(SSL_OP_CIPHER_SERVER_PREFERENCE)                                           \
  X(SSL_OP_TLS_ROLLBACK_BUG)                                                   \
  X(SSL_OP_NO_SSLv2)                                                           \
  X(SSL_OP_NO_SSLv3)                                                           \
  X(SSL_OP_NO_TLSv1)                                                           \
  X(SSL_OP_NO_TLSv1_1)                                                         \
  X(SSL_OP_NO_TLSv1_2)                                                         \
  X(SSL_OP_NO_TLSv1_3)                                                         \
  X(SSL_OP_NO_RENEGOTIATION)                                                   \
  X(SSL_OP_ALLOW_CLIENT_RENEGOTIATION)                                         \
  X(SSL_OP_LEGACY_SERVER_CONNECT)                                              \
  X(SSL_OP_NO_ENCRYPT_THEN_MAC)                                                \
  X(SSL_OP_NO_EXTENDED_MASTER_SECRET)                                          \
  X(SSL_OP_ENABLE_MIDDLEBOX_COMPAT)                                            \
  X(SSL_OP_PRIORITIZE_CHACHA)                                                  \
  X(SSL_OP_NO_ANTI_REPLAY)                                                     \
  X(SSL_OP_IGNORE_UNEXPECTED_EOF)                                              \
  X(SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS)                                        \
  X(SSL_OP_SAFARI_ECDHE_ECDSA_BUG)                                             \
  X(SSL_OP_TLSEXT_PADDING)                                                     \
  X(SSL_OP_CRYPTOPRO_TLSEXT_BUG)                                               \
  X(SSL_OP_DISABLE_TLSEXT_CA_NAMES)                                            \
  X(SSL_OP_ALLOW_NO_DHE_KEX)                                                   \
  X(SSL_OP_CLEANSE_PLAINTEXT)                                                  \
  X(SSL_OP_ENABLE_KTLS)                                                        \
  X(SSL_OP_MICROSOFT_SESS_ID_BUG)                                              \
  X(SSL_OP_NETSCAPE_CHALLENGE_BUG)                                             \
  X(SSL_OP_NETSCAPE_REUSE_CIPHER_CHANGE_BUG)                                   \
  X(SSL_OP_MICROSOFT_BIG_SSLV3_BUFFER)                                         \
  X(SSL_OP_TLS_D5_BUG)                                                         \
  X(SSL_OP_TLS_BLOCK_PADDING_BUG)                                              \
  X(SSL_VERIFY_NONE)                                                           \
  X(SSL_VERIFY_PEER)                                                           \
  X(SSL_VERIFY_FAIL_IF_NO_PEER_CERT)                                           \
  X(SSL_VERIFY_CLIENT_ONCE)                                                    \
  X(SSL_VERIFY_POST_HANDSHAKE)

#define CONST_VALUE(name) (uint64_t)(name),
#define CONST_NAME(name) #name,
static const uint64_t constant_values[] = {CONSTANTS(CONST_VALUE)};
static const char *const constant_names[] = {CONSTANTS(CONST_NAME) NULL};

int casl_tls_constant(const char *name, uint64_t *out) {
  size_t i;
  if (name == NULL || out == NULL)
    return CASL_EINVAL;
  for (i = 0; constant_names[i] != NULL; i++) {
    if (strcmp(constant_names[i], name) == 0) {
      *out = constant_values[i];
      return 0;
    }
  }
  return CASL_EINVAL;
}

const char *const *casl_tls_constant_names(void) { return constant_names; }
