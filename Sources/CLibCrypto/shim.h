// The system's OpenSSL libcrypto (Debian's libssl-dev), for the SHA-256 that verifies downloaded
// models. The system library replaces a compiled copy of BoringSSL, which cost several minutes
// of every build on two cores for this one digest.
#include <openssl/evp.h>
