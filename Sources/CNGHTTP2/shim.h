// nghttp2 (HTTP/2 framing and session state). No shims needed yet: the
// public header has no macros or variadics that Swift must call.
#include <nghttp2/nghttp2.h>
