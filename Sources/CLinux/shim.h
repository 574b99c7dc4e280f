// Linux headers that Swift's Glibc module does not include: epoll and eventfd
// for the event loop, TCP options for sockets; memfd and pidfd for task processes.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/tcp.h>

// glibc declares accept4 only under _GNU_SOURCE, which Swift's Glibc module is
// built without; the symbol is always in libc.
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);

// memfd_create is declared only under _GNU_SOURCE too (glibc 2.27+).
extern int memfd_create(const char *name, unsigned int flags);
#define TETHER_MFD_CLOEXEC 0x0001U

// pidfd_open (Linux 5.3, glibc 2.36) through syscall(2), so an older C library still links;
// a kernel without it answers ENOSYS.
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>
static inline int tether_pidfd_open(int pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

// Names the calling thread, as top -H, perf and /proc show it (the first 15 bytes).
#include <sys/prctl.h>
static inline void tether_name_thread(const char *name) {
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

// For a child between fork/vfork and exec (async-signal-safe calls only): every signal
// to its default action, and every descriptor from `lowest` up closed.
#include <signal.h>
#include <string.h>
static inline void tether_child_default_signals(void) {
    struct sigaction byDefault;
    memset(&byDefault, 0, sizeof byDefault);
    byDefault.sa_handler = SIG_DFL;
    for (int s = 1; s < _NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &byDefault, NULL);
    }
}
static inline void tether_child_close_from(int lowest, int max_fd) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0) return;
#endif
    for (int fd = lowest; fd < max_fd; fd++) close(fd);
}

// tether_spawn starts a task process. It is C, not Swift, because the child runs between
// vfork and execve in the agent's own memory and may call only async-signal-safe
// functions: Swift code there could take a lock another thread holds. posix_spawn cannot
// set a parent-death signal, which ties the task to the agent (it dies when the thread
// that spawned it ends, so spawn only from threads that live as long as the agent).
//
// The child leads a new process group, has default dispositions for every signal and an
// empty mask, stdin from stdin_fd, stdout and stderr to output_fd, no other descriptor,
// runs in directory (if not NULL), and gets parent_death_signal (if not 0) when the
// spawning thread ends. Returns 0 and sets *pid_out, or returns an errno: vfork's, or
// the child's own if it failed before execve (the child is then reaped here).
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <pthread.h>
static inline int tether_spawn(const char *path, char *const argv[], char *const envp[], int stdin_fd, int output_fd,
                               const char *directory, int parent_death_signal, int max_fd, int *pid_out) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);  // no handler of the agent may run in the child
    volatile int child_error = 0;            // shared with the child until it execs
    pid_t parent = getpid();
    pid_t pid = vfork();
    if (pid == 0) {
        tether_child_default_signals();
        if (setpgid(0, 0) != 0) goto fail;
        if (dup2(stdin_fd, 0) < 0 || dup2(output_fd, 1) < 0 || dup2(output_fd, 2) < 0) goto fail;
        for (int fd = 0; fd < 3; fd++) fcntl(fd, F_SETFD, 0);
        tether_child_close_from(3, max_fd);
        if (directory != NULL && chdir(directory) != 0) goto fail;
        if (parent_death_signal != 0) {
            if (prctl(PR_SET_PDEATHSIG, parent_death_signal) != 0) goto fail;
            if (getppid() != parent) _exit(127);  // the agent is already gone
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, envp);
    fail:
        child_error = errno;
        _exit(127);
    }
    int spawn_error = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) return spawn_error;
    if (child_error != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return child_error;
    }
    *pid_out = pid;
    return 0;
}

// tether_lease_keeper_start forks the agent's lease keeper: a child process that SIGKILLs a
// task's process group when its lease deadline passes, so a task never outlives its lease
// even while the agent itself is stopped (SIGSTOP), starved or hung, and cannot stop it.
// It is C because it runs in a child cloned from a multithreaded process without exec,
// where only async-signal-safe calls are allowed. It leads a process group of its own
// (a signal for the agent's group does not reach it) and reads fixed-size records from
// the pipe whose write end it returns in *write_fd:
//   deadline_ns > 0: watch process group `pgid` until CLOCK_BOOTTIME deadline_ns (or
//   move its deadline); deadline_ns == 0: forget it. A leader that exits is forgotten by
//   itself, where the kernel has pidfds (Linux 5.3); elsewhere only by a record.
// When the pipe closes (the agent exited, however), it kills every group it watches and
// exits. Returns the keeper's pid, or -1 with errno.
#include <poll.h>
#include <stdint.h>
#include <time.h>
struct tether_keeper_record { int32_t pgid; int32_t reserved; int64_t deadline_ns; };
#define TETHER_KEEPER_CAPACITY 16384
static inline int64_t tether_boottime_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_BOOTTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}
static inline void tether_keeper_loop(int fd) {
    static struct { int32_t pgid; int pidfd; int64_t deadline; } watched[TETHER_KEEPER_CAPACITY];
    static struct pollfd exits[TETHER_KEEPER_CAPACITY];
    static unsigned char buffer[256 * sizeof(struct tether_keeper_record)];
    size_t buffered = 0;
    int count = 0;
    for (;;) {
        int64_t earliest = INT64_MAX;
        for (int i = 0; i < count; i++) if (watched[i].deadline < earliest) earliest = watched[i].deadline;
        int timeout = -1;
        if (earliest != INT64_MAX) {
            int64_t wait = earliest - tether_boottime_ns();
            timeout = wait <= 0 ? 0 : (int)(wait / 1000000 + 1 > 60000 ? 60000 : wait / 1000000 + 1);
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout) < 0 && errno != EINTR) _exit(2);
        // Read every record already written before acting on a deadline: a later record
        // may move it. A read may end inside a record; its start waits in the buffer.
        for (;;) {
            ssize_t n = read(fd, buffer + buffered, sizeof buffer - buffered);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) break;
            if (n <= 0) {  // the agent is gone: so are its tasks
                for (int i = 0; i < count; i++) kill(-watched[i].pgid, SIGKILL);
                _exit(0);
            }
            buffered += (size_t)n;
            size_t whole = buffered / sizeof(struct tether_keeper_record);
            for (size_t k = 0; k < whole; k++) {
                struct tether_keeper_record r;
                memcpy(&r, buffer + k * sizeof r, sizeof r);
                if (r.pgid <= 1) continue;
                int i = 0;
                while (i < count && watched[i].pgid != r.pgid) i++;
                if (r.deadline_ns == 0) {
                    if (i < count) {
                        if (watched[i].pidfd >= 0) close(watched[i].pidfd);
                        watched[i] = watched[--count];
                    }
                } else if (i < count) {
                    watched[i].deadline = r.deadline_ns;
                } else if (count < TETHER_KEEPER_CAPACITY) {
                    watched[count].pgid = r.pgid;
                    watched[count].pidfd = tether_pidfd_open(r.pgid);  // tells an exit (and so a reused pid) apart
                    watched[count].deadline = r.deadline_ns;
                    count++;
                }
            }
            buffered -= whole * sizeof(struct tether_keeper_record);
            memmove(buffer, buffer + whole * sizeof(struct tether_keeper_record), buffered);
        }
        // One poll finds every task that has exited (a negative fd is skipped): those are
        // dropped, the ones past their deadline killed.
        for (int i = 0; i < count; i++) {
            exits[i].fd = watched[i].pidfd;
            exits[i].events = POLLIN;
            exits[i].revents = 0;
        }
        if (count > 0) poll(exits, (nfds_t)count, 0);
        int64_t now = tether_boottime_ns();
        for (int i = 0; i < count;) {
            int gone = watched[i].pidfd >= 0 && (exits[i].revents & (POLLIN | POLLHUP | POLLERR));
            if (gone || watched[i].deadline <= now) {
                if (!gone) kill(-watched[i].pgid, SIGKILL);
                if (watched[i].pidfd >= 0) close(watched[i].pidfd);
                watched[i] = watched[--count];
                exits[i] = exits[count];
            } else {
                i++;
            }
        }
    }
}
static inline int tether_lease_keeper_start(int *write_fd) {
    int fds[2];
    if (pipe(fds) != 0) return -1;  // pipe2 is _GNU_SOURCE-only; tether_spawn closes leaked fds anyway
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    // A raw clone, not fork(): fork runs every library's atfork handlers, and one that
    // takes a lock another thread holds would hang the child before it closed the agent's
    // descriptors. The child gets a copy of the address space and runs only syscalls.
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) {
        int error = errno;
        close(fds[0]);
        close(fds[1]);
        errno = error;
        return -1;
    }
    if (pid == 0) {
        // Keep only the read end (as fd 0), first: no socket, file or lock of the agent
        // stays referenced here.
        if (dup2(fds[0], 0) < 0) _exit(2);
        tether_child_close_from(1, 65536);
        fcntl(0, F_SETFL, O_NONBLOCK);
        setpgid(0, 0);
        tether_child_default_signals();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        tether_keeper_loop(0);
    }
    setpgid(pid, pid);  // as the child does: whichever runs first, the group exists on return
    close(fds[0]);
    *write_fd = fds[1];
    return pid;
}
