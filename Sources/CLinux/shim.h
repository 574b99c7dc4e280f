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
