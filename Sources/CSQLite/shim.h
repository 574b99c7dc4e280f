// SQLite. SQLITE_TRANSIENT is a macro over a cast function pointer that Swift
// cannot import; this shim exposes it as a value.
#include <sqlite3.h>

static inline sqlite3_destructor_type tether_sqlite_transient(void) {
    return SQLITE_TRANSIENT;
}
