// The chaos soak's wall-clock step (Scripts/soak): preloaded into `tether server`, it adds
// an offset to CLOCK_REALTIME as the process reads it, and to nothing else.
//
// Why not libfaketime (Debian `faketime`), which the soak was first written with: version
// 0.9.10 also moves every absolute timerfd deadline by its offset, whatever the timer's
// clock (FAKETIME_DONT_FAKE_MONOTONIC does not cover timerfd_settime). Dispatch arms its
// CLOCK_MONOTONIC timers that way, so under a +1 h offset every Swift `Task.sleep` fails
// (timerfd_settime: EINVAL, a negative deadline) and never returns, and under -1 h it
// sleeps an hour too long: any Swift program's timers freeze, which says nothing about the
// program. (Preloaded without the `faketime` wrapper's FAKETIME_SHARED, it also makes a
// Swift program lose its arguments.) A real wall-clock step (`date -s`) moves CLOCK_REALTIME
// only; so does this.
//
// SOAK_WALLCLOCK_FILE names a file holding the offset in whole seconds ("3600", "-3600",
// "0"); it is read again at most every 100 ms, so writing it steps a running process's
// clock. Intercepted: clock_gettime (CLOCK_REALTIME, CLOCK_REALTIME_COARSE), gettimeofday,
// time, timespec_get. Build: cc -shared -fPIC -O2 -o wallclock_step.so wallclock_step.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);

static _Atomic(clock_gettime_fn) real_clock_gettime;
static _Atomic(gettimeofday_fn) real_gettimeofday;
static _Atomic long long offset_ns;
static _Atomic long long checked_at_ns = -1000000000LL;

static clock_gettime_fn next_clock_gettime(void) {
    clock_gettime_fn fn = atomic_load(&real_clock_gettime);
    if (!fn) {
        fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        atomic_store(&real_clock_gettime, fn);
    }
    return fn;
}

static gettimeofday_fn next_gettimeofday(void) {
    gettimeofday_fn fn = atomic_load(&real_gettimeofday);
    if (!fn) {
        fn = (gettimeofday_fn)dlsym(RTLD_NEXT, "gettimeofday");
        atomic_store(&real_gettimeofday, fn);
    }
    return fn;
}

// The offset in nanoseconds, from the file when its last read is 100 ms old.
static long long current_offset(void) {
    struct timespec boot;
    if (next_clock_gettime()(CLOCK_BOOTTIME, &boot) != 0) return atomic_load(&offset_ns);
    long long now = (long long)boot.tv_sec * 1000000000LL + boot.tv_nsec;
    long long checked = atomic_load(&checked_at_ns);
    if (now - checked < 100000000LL || !atomic_compare_exchange_strong(&checked_at_ns, &checked, now)) {
        return atomic_load(&offset_ns);
    }
    const char *path = getenv("SOAK_WALLCLOCK_FILE");
    if (!path) return atomic_load(&offset_ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return atomic_load(&offset_ns);
    char text[32];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n > 0) {
        text[n] = 0;
        char *end;
        long long seconds = strtoll(text, &end, 10);
        if (end != text) atomic_store(&offset_ns, seconds * 1000000000LL);
    }
    return atomic_load(&offset_ns);
}

static void shift(struct timespec *ts) {
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + current_offset();
    ts->tv_sec = (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000L;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    int result = next_clock_gettime()(clock, ts);
    if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shift(ts);
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    int result = next_gettimeofday()(tv, tz);
    if (result == 0) {  // glibc declares tv nonnull
        struct timespec ts = {tv->tv_sec, tv->tv_usec * 1000L};
        shift(&ts);
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000L;
    }
    return result;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base) {
    if (base != TIME_UTC || clock_gettime(CLOCK_REALTIME, ts) != 0) return 0;
    return base;
}
