// OpenSSL 3 (TLS for the HTTP/2 transport).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/crypto.h>

// SSL_OP_* are built by the function-like macro SSL_OP_BIT, which Swift cannot import.
static inline uint64_t tether_ssl_options_no_renegotiation_no_ticket(void) {
    return SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET;
}
