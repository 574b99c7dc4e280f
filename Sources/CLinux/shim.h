// Linux headers that Swift's Glibc module does not include: epoll and eventfd
// for the event loop, TCP options for sockets.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/tcp.h>

// glibc declares accept4 only under _GNU_SOURCE, which Swift's Glibc module is
// built without; the symbol is always in libc.
extern int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
