// Makes civetweb's HTTPS work with OpenSSL 3, in process, with nothing asked of the user.
//
// civetweb 1.15 as Debian builds it does not link OpenSSL: it calls dlopen("libssl.so") and
// dlopen("libcrypto.so"), then dlsym() for each function by its OpenSSL 1.1 name. Under
// OpenSSL 3 this breaks twice: the unversioned "libssl.so" exists only where libssl-dev is
// installed, and SSL_get_peer_certificate became a macro for SSL_get1_peer_certificate, so its
// table entry stays null and the first HTTPS request calls address 0 (civetweb issue #1334).
//
// The executable links libssl and libcrypto itself. A symbol defined in the executable comes
// first in the lookup of every shared library, so civetweb's dlopen() lands here: for those
// two names it gets the handle of the program's own global scope, in which dlsym() finds
// every OpenSSL function in the libraries the program links, and SSL_get_peer_certificate
// below. Every other dlopen() is passed on unchanged. Both symbols are exported by the link
// options in daemon/CMakeLists.txt.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

struct ssl_st;
struct x509_st;
extern "C" x509_st* SSL_get1_peer_certificate(const ssl_st* ssl);

// OpenSSL 1.1's name; like SSL_get1_peer_certificate it returns a reference the caller frees
// (civetweb calls X509_free on it).
extern "C" x509_st* SSL_get_peer_certificate(const ssl_st* ssl) {
  return SSL_get1_peer_certificate(ssl);
}

namespace {

using DlopenFunction = void* (*)(const char*, int);

// glibc's own dlopen: by its current version, or the architecture's first one.
DlopenFunction RealDlopen() {
  for (const char* version : {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.0"}) {
    if (void* found = dlvsym(RTLD_NEXT, "dlopen", version)) {
      return reinterpret_cast<DlopenFunction>(found);
    }
  }
  std::fputs("fastapi-exporter: cannot find glibc's dlopen\n", stderr);
  std::abort();
}

}  // namespace

extern "C" void* dlopen(const char* file, int mode) {
  static const DlopenFunction real_dlopen = RealDlopen();
  if (file && (std::strcmp(file, "libssl.so") == 0 || std::strcmp(file, "libcrypto.so") == 0)) {
    return real_dlopen(nullptr, mode);
  }
  return real_dlopen(file, mode);
}
