/*
 * heartbeat-floor-c SELF HEARTBEAT_MS ADDR:PORT ADDR:PORT ADDR:PORT  (IPv4; SELF indexes the list,
 * 0 leads): bench:footprint's heartbeat-floor-c row. The same exchange as heartbeat-floor.ts, with
 * no runtime under it: every HEARTBEAT_MS the leader sends each other node an 86-byte datagram
 * (the size of vipd's heartbeat) whose last 32 bytes are an HMAC-SHA256 of the rest, each
 * follower checks it and answers with one MAC'd the same way, and the leader checks the answer.
 * One thread, epoll and a timerfd. It answers the question the Node row cannot: how much of that
 * row is the message rate itself on this machine, and how much is Node. On SIGTERM it prints
 * {"sent","accepted","dropped"} as the Node floor does.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define PACKET 86
#define MAC 32
#define MAX_NODES 8

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static const unsigned char key[32] = {0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                      0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};

static void seal(unsigned char *p) {
  unsigned int len = MAC;
  HMAC(EVP_sha256(), key, sizeof key, p, PACKET - MAC, p + PACKET - MAC, &len);
}

static int intact(const unsigned char *p) {
  unsigned char mac[MAC];
  unsigned int len = MAC;
  HMAC(EVP_sha256(), key, sizeof key, p, PACKET - MAC, mac, &len);
  return CRYPTO_memcmp(mac, p + PACKET - MAC, MAC) == 0;
}

static int parse(const char *s, struct sockaddr_in *a) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || colon - s >= (long)sizeof host) return -1;
  memcpy(host, s, colon - s);
  host[colon - s] = 0;
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)atoi(colon + 1));
  return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
  int n = argc - 3;
  int self = argc > 1 ? atoi(argv[1]) : -1;
  long every = argc > 2 ? atol(argv[2]) : 0;
  struct sockaddr_in nodes[MAX_NODES];
  if (n < 2 || n > MAX_NODES || self < 0 || self >= n || every <= 0) {
    fprintf(stderr, "usage: heartbeat-floor-c SELF HEARTBEAT_MS ADDR:PORT ADDR:PORT ... (SELF indexes the list, 0 leads)\n");
    return 2;
  }
  for (int i = 0; i < n; i++)
    if (parse(argv[3 + i], &nodes[i]) != 0) {
      fprintf(stderr, "heartbeat-floor-c: not an IPv4 ADDR:PORT: %s\n", argv[3 + i]);
      return 2;
    }
  struct sigaction sa = {.sa_handler = on_term};
  sigaction(SIGTERM, &sa, NULL);

  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sock < 0 || bind(sock, (struct sockaddr *)&nodes[self], sizeof nodes[self]) != 0) {
    perror("heartbeat-floor-c: bind");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = sock};
  epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev);
  int timer = -1;
  if (self == 0) {
    timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = {{every / 1000, (every % 1000) * 1000000L}, {every / 1000, (every % 1000) * 1000000L}};
    timerfd_settime(timer, 0, &its, NULL);
    ev.data.fd = timer;
    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &ev);
  }

  unsigned long sent = 0, accepted = 0, dropped = 0;
  uint64_t round = 0;
  while (!stop) {
    struct epoll_event evs[2];
    int k = epoll_wait(ep, evs, 2, -1);
    for (int i = 0; i < k; i++) {
      if (evs[i].data.fd == timer) {
        uint64_t ticks;
        if (read(timer, &ticks, sizeof ticks) != sizeof ticks) continue;
        round++;
        for (int to = 1; to < n; to++) {
          unsigned char p[PACKET] = {0};
          memcpy(p, &round, sizeof round);
          p[8] = (unsigned char)to;
          seal(p);
          if (sendto(sock, p, PACKET, 0, (struct sockaddr *)&nodes[to], sizeof nodes[to]) == PACKET) sent++;
        }
        continue;
      }
      unsigned char p[PACKET + 1];
      struct sockaddr_in from;
      socklen_t fromLen = sizeof from;
      ssize_t r;
      while ((r = recvfrom(sock, p, sizeof p, 0, (struct sockaddr *)&from, &fromLen)) >= 0) {
        if (r != PACKET || !intact(p)) {
          dropped++;
        } else {
          accepted++;
          if (self != 0) {
            p[9] = 1; /* the answer */
            seal(p);
            if (sendto(sock, p, PACKET, 0, (struct sockaddr *)&from, fromLen) == PACKET) sent++;
          }
        }
        fromLen = sizeof from;
      }
    }
  }
  printf("{\"sent\":%lu,\"accepted\":%lu,\"dropped\":%lu}\n", sent, accepted, dropped);
  return 0;
}
