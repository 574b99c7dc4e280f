// OpenSSL 3 (TLS for the HTTP/2 transport).
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/crypto.h>
