/* Traffic for the VM tests: a bulk TCP transfer and a request/response exchange with a slow
 * reader, between two network namespaces. Built statically by tests/vm/run.sh.
 *
 *   traffic sink PORT                              accept one connection, read to EOF
 *   traffic bulk ADDR PORT BYTES [RATE]            send BYTES (paced at RATE bytes/s by TCP's
 *                                                  own pacing when given), then wait for the
 *                                                  peer to close
 *   traffic rr-server PORT REQ RESP DELAY_MS       per request: sleep DELAY_MS (the request waits
 *                                                  in the receive queue), read REQ bytes, send RESP
 *   traffic rr-client ADDR PORT COUNT REQ RESP     COUNT requests of REQ bytes, RESP bytes each back
 *
 * Every mode prints one line with the bytes it sent and read, e.g.
 *   bulk: sent 4194304 bytes, read 0 bytes
 * and exits non-zero on any error or short transfer.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
static char buf[CHUNK];

static void die(const char *what)
{
	fprintf(stderr, "traffic: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned long num(const char *s, const char *name)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s) {
		fprintf(stderr, "traffic: bad %s '%s'\n", name, s);
		exit(2);
	}
	return v;
}

static int listen_one(const char *port)
{
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(num(port, "port")) };
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		die("socket");
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (listen(l, 4) < 0)
		die("listen");
	int c = accept(l, NULL, NULL);
	if (c < 0)
		die("accept");
	close(l);
	return c;
}

/* Connects, retrying while the server is not listening yet (up to 60 s). */
static int connect_to(const char *addr, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(num(port, "port")) };
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		fprintf(stderr, "traffic: bad address '%s'\n", addr);
		exit(2);
	}
	for (int i = 0;; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			die("socket");
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0)
			return s;
		/* Another host may not be up yet either (tests/vm/two-hosts-init.sh). */
		bool later = errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ETIMEDOUT ||
			     errno == ENETUNREACH;
		if (!later || i >= 600)
			die("connect");
		close(s);
		usleep(100 * 1000);
	}
}

static void write_all(int s, unsigned long n, unsigned long *sent)
{
	while (n > 0) {
		size_t k = n < CHUNK ? n : CHUNK;
		ssize_t w = write(s, buf, k);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		n -= (unsigned long)w;
		*sent += (unsigned long)w;
	}
}

/* Reads exactly n bytes; returns 0 on EOF before the first byte, dies on a short read. */
static int read_exact(int s, unsigned long n, unsigned long *got)
{
	unsigned long want = n;
	while (n > 0) {
		ssize_t r = read(s, buf, n < CHUNK ? n : CHUNK);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read");
		}
		if (r == 0) {
			if (n == want)
				return 0;
			fprintf(stderr, "traffic: connection closed after %lu of %lu bytes\n",
				want - n, want);
			exit(1);
		}
		n -= (unsigned long)r;
		*got += (unsigned long)r;
	}
	return 1;
}

static unsigned long read_to_eof(int s)
{
	unsigned long got = 0;
	for (;;) {
		ssize_t r = read(s, buf, CHUNK);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read");
		}
		if (r == 0)
			return got;
		got += (unsigned long)r;
	}
}

static void sleep_ms(unsigned long ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* Reads exactly n bytes into p; 0 on EOF before the first byte, dies on a short read. */
static int read_full(int s, void *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(s, (char *)p + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0) {
			if (done == 0)
				return 0;
			fprintf(stderr, "traffic: connection closed inside a message\n");
			exit(1);
		}
		done += (size_t)r;
	}
	return 1;
}

static long long mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: traffic sink PORT\n"
			"       traffic bulk ADDR PORT BYTES [RATE]\n"
			"       traffic bulk-nb ADDR PORT BYTES    non-blocking, 64 KiB calls\n"
			"       traffic rr-server PORT REQ RESP DELAY_MS\n"
			"       traffic rr-client ADDR PORT COUNT REQ RESP\n"
			"       traffic clock-server PORT\n"
			"       traffic clock-client ADDR PORT COUNT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long sent = 0, got = 0;
	memset(buf, 'x', sizeof(buf));
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	if (!strcmp(mode, "sink") && argc == 3) {
		int c = listen_one(argv[2]);
		got = read_to_eof(c);
		close(c);
		printf("sink: sent %lu bytes, read %lu bytes, pid %d\n", sent, got, (int)getpid());
	} else if (!strcmp(mode, "bulk") && (argc == 5 || argc == 6)) {
		unsigned long bytes = num(argv[4], "byte count");
		int s = connect_to(argv[2], argv[3]);
		if (argc == 6) {
			/* SO_MAX_PACING_RATE turns on TCP's internal pacing (no fq qdisc needed). */
			unsigned int rate = (unsigned int)num(argv[5], "rate");
			if (setsockopt(s, SOL_SOCKET, SO_MAX_PACING_RATE, &rate, sizeof(rate)) < 0)
				die("setsockopt SO_MAX_PACING_RATE");
		}
		write_all(s, bytes, &sent);
		if (shutdown(s, SHUT_WR) < 0)
			die("shutdown");
		got = read_to_eof(s);
		close(s);
		printf("bulk: sent %lu bytes, read %lu bytes, pid %d\n", sent, got, (int)getpid());
		if (sent != bytes)
			return 1;
	} else if (!strcmp(mode, "bulk-nb") && argc == 5) {
		/* Non-blocking writes of up to CHUNK bytes, waiting for room between them: a call may
		 * write less than it asked for. Counts the calls that wrote and those that wrote part. */
		unsigned long bytes = num(argv[4], "byte count"), calls = 0, partial = 0;
		int s = connect_to(argv[2], argv[3]);
		if (fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK) < 0)
			die("fcntl");
		while (sent < bytes) {
			size_t want = bytes - sent < CHUNK ? bytes - sent : CHUNK;
			ssize_t w = write(s, buf, want);
			if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				struct pollfd p = { .fd = s, .events = POLLOUT };
				poll(&p, 1, 1000);
				continue;
			}
			if (w < 0)
				die("write");
			calls++;
			partial += (size_t)w < want;
			sent += (unsigned long)w;
		}
		if (fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK) < 0)
			die("fcntl");
		if (shutdown(s, SHUT_WR) < 0)
			die("shutdown");
		got = read_to_eof(s);
		close(s);
		printf("bulk-nb: sent %lu bytes, read %lu bytes, calls %lu, partial %lu, pid %d\n", sent,
		       got, calls, partial, (int)getpid());
	} else if (!strcmp(mode, "rr-server") && argc == 6) {
		unsigned long req = num(argv[3], "request size"), resp = num(argv[4], "response size");
		unsigned long delay = num(argv[5], "delay");
		unsigned long n = 0;
		int c = listen_one(argv[2]);
		for (;;) {
			sleep_ms(delay); /* the slow reader: the request waits in the receive queue */
			if (!read_exact(c, req, &got))
				break;
			write_all(c, resp, &sent);
			n++;
		}
		close(c);
		printf("rr-server: sent %lu bytes, read %lu bytes, %lu requests, pid %d\n", sent, got, n,
		       (int)getpid());
	} else if (!strcmp(mode, "rr-client") && argc == 7) {
		unsigned long count = num(argv[4], "count");
		unsigned long req = num(argv[5], "request size"), resp = num(argv[6], "response size");
		int one = 1;
		int s = connect_to(argv[2], argv[3]);
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		for (unsigned long i = 0; i < count; i++) {
			write_all(s, req, &sent);
			if (!read_exact(s, resp, &got)) {
				fprintf(stderr, "traffic: server closed after %lu responses\n", i);
				return 1;
			}
		}
		close(s);
		printf("rr-client: sent %lu bytes, read %lu bytes, %lu responses, pid %d\n", sent, got,
		       count, (int)getpid());
	} else if (!strcmp(mode, "clock-server") && argc == 3) {
		/* Answers each 8-byte message with its own CLOCK_MONOTONIC time. */
		int c = listen_one(argv[2]);
		int one = 1;
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		long long t;
		unsigned long answered = 0;
		while (read_full(c, &t, sizeof(t))) {
			t = mono_ns();
			if (write(c, &t, sizeof(t)) != sizeof(t))
				die("write");
			answered++;
		}
		close(c);
		printf("clock-server: answered %lu, pid %d\n", answered, (int)getpid());
	} else if (!strcmp(mode, "clock-client") && argc == 5) {
		/* The server read its clock between our send and our receipt: its offset from our
		 * clock lies in [t2 - t3, t2 - t1]; the tightest bounds over COUNT exchanges. */
		unsigned long count = num(argv[4], "count");
		int one = 1;
		int s = connect_to(argv[2], argv[3]);
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		long long lo = -(1LL << 62), hi = 1LL << 62;
		for (unsigned long i = 0; i < count; i++) {
			long long t1 = mono_ns(), t2;
			if (write(s, &t1, sizeof(t1)) != sizeof(t1))
				die("write");
			if (!read_full(s, &t2, sizeof(t2)))
				die("clock-server closed");
			long long t3 = mono_ns();
			if (t2 - t3 > lo)
				lo = t2 - t3;
			if (t2 - t1 < hi)
				hi = t2 - t1;
		}
		close(s);
		printf("clock-client: offset %lld %lld\n", lo, hi);
	} else {
		usage();
	}
	return 0;
}
