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
#include <signal.h>
#include <string.h>
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
        struct sigaction byDefault;
        memset(&byDefault, 0, sizeof byDefault);
        byDefault.sa_handler = SIG_DFL;
        for (int s = 1; s < _NSIG; s++) {
            if (s != SIGKILL && s != SIGSTOP) sigaction(s, &byDefault, NULL);
        }
        if (setpgid(0, 0) != 0) goto fail;
        if (dup2(stdin_fd, 0) < 0 || dup2(output_fd, 1) < 0 || dup2(output_fd, 2) < 0) goto fail;
        for (int fd = 0; fd < 3; fd++) fcntl(fd, F_SETFD, 0);
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3, ~0U, 0) != 0)
#endif
        for (int fd = 3; fd < max_fd; fd++) close(fd);
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
