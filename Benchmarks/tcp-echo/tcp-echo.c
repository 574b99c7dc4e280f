// The floor for the transport benchmark's ping-pong: a plain TCP echo of the same
// size on blocking sockets with TCP_NODELAY, so a round trip is two kernel
// wake-ups and nothing else.
//
//   tcp-echo server PORT                          echo every connection on 127.0.0.1:PORT
//   tcp-echo client PORT [SIZE WARMUP ROUNDS]     time ROUNDS round trips of SIZE bytes
//
// The client prints: round_trips=N p50_us=X p99_us=Y mean_us=Z (nearest-rank).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <math.h>
#include <errno.h>

static void die(const char *what) { perror(what); exit(1); }

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void nodelay(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("TCP_NODELAY");
}

// Reads exactly n bytes; returns 0 at EOF.
static int read_full(int fd, char *buf, size_t n) {
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r == 0) return 0;
        if (r < 0) { if (errno == EINTR) continue; die("read"); }
        got += (size_t)r;
    }
    return 1;
}

static void write_full(int fd, const char *buf, size_t n) {
    for (size_t sent = 0; sent < n;) {
        ssize_t w = write(fd, buf + sent, n - sent);
        if (w < 0) { if (errno == EINTR) continue; die("write"); }
        sent += (size_t)w;
    }
}

_Noreturn static void serve(int port) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = loopback(port);
    if (bind(listener, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(listener, 16) < 0) die("listen");
    printf("listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    char buf[65536];
    for (;;) {  // one connection at a time: the benchmark uses one
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) { if (errno == EINTR) continue; die("accept"); }
        nodelay(fd);
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) write_full(fd, buf, (size_t)r);
        close(fd);
    }
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static long long percentile(const long long *sorted, int n, double q) {
    int rank = (int)ceil(n * q);
    if (rank < 1) rank = 1;
    return sorted[(rank > n ? n : rank) - 1];
}

static int client(int port, int size, int warmup, int rounds) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    nodelay(fd);
    char *out = malloc(size), *in = malloc(size);
    memset(out, 'p', size);
    long long *samples = malloc(sizeof *samples * rounds), sum = 0;
    for (int i = 0; i < warmup + rounds; i++) {
        long long start = now_ns();
        write_full(fd, out, size);
        if (!read_full(fd, in, size)) { fprintf(stderr, "tcp-echo: server closed\n"); return 1; }
        if (i >= warmup) sum += samples[i - warmup] = now_ns() - start;
    }
    close(fd);
    qsort(samples, rounds, sizeof *samples, by_value);
    printf("round_trips=%d p50_us=%.1f p99_us=%.1f mean_us=%.1f\n", rounds,
           percentile(samples, rounds, 0.50) / 1e3, percentile(samples, rounds, 0.99) / 1e3,
           (double)sum / rounds / 1e3);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "server") == 0) serve(atoi(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 32, argc > 4 ? atoi(argv[4]) : 2000,
                      argc > 5 ? atoi(argv[5]) : 20000);
    fprintf(stderr, "usage: tcp-echo server PORT | tcp-echo client PORT [SIZE WARMUP ROUNDS]\n");
    return 2;
}
