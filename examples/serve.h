/* SPDX-License-Identifier: MIT */
/*
 * What echo_server and http_server share: a listener, a fiber per
 * connection in an independent group (a connection that fails is counted,
 * and cancels no other), and a graceful shutdown on SIGINT/SIGTERM, waited
 * for with weft_signal_wait (stop accepting, cancel every connection, wait
 * for them).
 *
 * With --loops N (0: one per CPU the process may run on) the server runs a
 * pool of N loops, each with a listener of its own on the same port
 * (SO_REUSEPORT: the kernel spreads the connections), and the signal fiber
 * on loop 0 posts the shutdown to every loop. Without --loops, one loop and
 * one plain listener (a second server on the port fails "Address already in
 * use"; with --loops it would share the port, as SO_REUSEPORT allows).
 *
 * An example's file defines its connection fiber and calls serve_main.
 */
#ifndef SERVE_H
#define SERVE_H

#define _GNU_SOURCE
#include <weft.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct server { /* one per loop */
	struct fleet *fleet;
	int lfd;
	weft_group *conns;
	weft_fiber *acceptor;
	bool stopping; /* the shutdown reached this loop */
	uint64_t served;
};

struct fleet {
	const char *name;
	const char *host;
	int port;
	int backlog;
	int loops; /* -1: no pool (one loop, weft_main) */
	unsigned flags;
	weft_fn conn;	     /* the connection fiber: arg is the fd; closes it */
	const char *options; /* the example's own, for the usage line (or NULL) */
	weft_pool *pool;
	_Atomic int bound; /* 0 until loop 0 listens; then its port, or -errno */
	struct server *s;
};

static int serve_acceptor(void *arg)
{
	struct server *s = arg;

	for (;;) {
		int fd = weft_accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd == -ECANCELED)
			return 0;
		if (fd < 0) {
			if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
				fprintf(stderr, "%s: accept: %s; retrying\n", s->fleet->name,
					strerror(-fd));
				weft_sleep(100 * WEFT_MSEC);
				continue;
			}
			fprintf(stderr, "%s: accept: %s\n", s->fleet->name, strerror(-fd));
			return fd;
		}
		if (weft_group_spawn(s->conns, s->fleet->conn, (void *)(intptr_t)fd) < 0) {
			close(fd);
			continue;
		}
		s->served++;
	}
}

/* On each loop, from the signal fiber: stop accepting, cancel the connections. */
static int serve_stop_here(void *arg)
{
	struct server *s = arg;

	s->stopping = true;
	if (s->acceptor)
		weft_cancel(s->acceptor);
	if (s->conns)
		weft_group_cancel(s->conns);
	return 0;
}

static int serve_signals(void *arg)
{
	struct fleet *f = arg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sig = weft_signal_wait(&set, NULL);
	if (sig == -ECANCELED)
		return 0; /* the acceptor ended on its own: nothing to stop */
	if (sig > 0)
		fprintf(stderr, "%s: %s: shutting down\n", f->name, strsignal(sig));
	else
		fprintf(stderr, "%s: waiting for signals: %s; shutting down\n", f->name,
			weft_strerror(sig));
	if (!f->pool)
		return serve_stop_here(&f->s[0]);
	for (unsigned i = 0; i < weft_pool_size(f->pool); i++)
		if (weft_loop_post(weft_pool_loop(f->pool, i), serve_stop_here, &f->s[i]) < 0)
			fprintf(stderr, "%s: could not stop loop %u\n", f->name, i);
	return 0;
}

/* Listen: loop 0 first (it may pick the port), then the others on its port. */
static int serve_listen(struct fleet *f, struct server *s, int index)
{
	unsigned flags = f->pool ? WEFT_TCP_REUSEPORT : 0;
	int port = f->port;

	if (index > 0) {
		while ((port = atomic_load(&f->bound)) == 0)
			weft_sleep(WEFT_MSEC);
		if (port < 0)
			return port; /* loop 0 said why */
	}
	s->lfd = weft_tcp_listen(f->host, port, f->backlog, flags);
	if (s->lfd < 0) {
		fprintf(stderr, "%s: listen on port %d: %s\n", f->name, port, strerror(-s->lfd));
		if (index == 0)
			atomic_store(&f->bound, s->lfd);
		return s->lfd;
	}
	if (index == 0) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		getsockname(s->lfd, (struct sockaddr *)&ss, &len);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		if (f->pool)
			fprintf(stderr, "%s: %u loops\n", f->name, weft_pool_size(f->pool));
		fprintf(stderr, "%s: listening on port %d\n", f->name, port);
		atomic_store(&f->bound, port);
	}
	return 0;
}

/* Every loop's first fiber. */
static int serve_loop(void *arg)
{
	struct fleet *f = arg;
	int index = weft_loop_index();
	struct server *s = &f->s[index];
	weft_fiber *sig = NULL;
	int rc, arc = 0;

	s->fleet = f;
	if ((rc = serve_listen(f, s, index)) < 0)
		return rc;
	if ((rc = weft_group_create_flags(&s->conns, WEFT_GROUP_INDEPENDENT)) < 0 ||
	    (rc = weft_spawn(NULL, serve_acceptor, s, &s->acceptor)) < 0 ||
	    (index == 0 && (rc = weft_spawn(NULL, serve_signals, f, &sig)) < 0))
		return rc;
	if (s->stopping) /* the shutdown came before the acceptor was there */
		weft_cancel(s->acceptor);
	weft_join(s->acceptor, &arc);
	if (sig) {
		weft_cancel(sig); /* if accept failed on its own, stop waiting for a signal */
		weft_join(sig, NULL);
	}
	weft_group_wait(s->conns);

	int first = 0;
	uint64_t failed = weft_group_failures(s->conns, &first);

	if (failed)
		fprintf(stderr, "%s: loop %d: %llu connections ended in an error (the first: %s)\n",
			f->name, index, (unsigned long long)failed, weft_strerror(first));
	weft_group_destroy(s->conns);
	weft_close(s->lfd);
	return arc;
}

static void serve_usage(FILE *out, const struct fleet *f, int port)
{
	fprintf(out,
		"usage: %s [--loops N] [--pin]%s [port] [host]\n"
		"(port %d by default; 0 picks a free one and prints it.\n"
		" --loops N: N loops in one process, a listener each on the port (SO_REUSEPORT);\n"
		" 0 for one per CPU. --pin: loop i on the i-th CPU the process may use.)\n",
		f->name, f->options ? f->options : "", port);
}

static int serve_main(int argc, char **argv, struct fleet *f)
{
	int port = f->port;
	int args = 0;

	f->loops = -1;
	for (int i = 1; i < argc; i++) {
		char *end;

		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			serve_usage(stdout, f, port);
			return 0;
		}
		if (!strcmp(argv[i], "--pin")) {
			f->flags |= WEFT_CONFIG_PIN;
			continue;
		}
		if (!strcmp(argv[i], "--loops")) {
			long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;

			if (i + 1 >= argc || *end || n < 0 || n > 1024) {
				fprintf(stderr,
					"%s: --loops takes a number of loops from 0 (one per "
					"CPU) to 1024\n",
					f->name);
				return 2;
			}
			f->loops = (int)n;
			i++;
			continue;
		}
		if (args == 0) {
			long p = strtol(argv[i], &end, 10);

			if (*end || p < 0 || p > 65535) {
				serve_usage(stderr, f, port);
				return 2;
			}
			f->port = (int)p;
		} else if (args == 1) {
			f->host = argv[i];
		} else {
			serve_usage(stderr, f, port);
			return 2;
		}
		args++;
	}
	/* SIGINT and SIGTERM reach serve_signals' weft_signal_wait (threads the
	 * pool starts block them, and a handler of weft's hands one that lands
	 * on an unblocked thread to the waiter). Blocked here too, before the
	 * port is announced: one sent as soon as "listening" shows then waits
	 * for serve_signals instead of killing the process. */
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (f->loops < 0) {
		struct server one = { 0 };

		f->s = &one;
		rc = weft_main(serve_loop, f);
		fprintf(stderr, "%s: served %llu connections\n", f->name,
			(unsigned long long)one.served);
	} else {
		weft_config cfg;
		uint64_t served = 0;

		weft_config_init(&cfg);
		cfg.flags |= f->flags;
		rc = weft_pool_create(&f->pool, (unsigned)f->loops, &cfg);
		if (rc == 0) {
			f->s = calloc(weft_pool_size(f->pool), sizeof(*f->s));
			rc = f->s ? weft_pool_run(f->pool, serve_loop, f) : -ENOMEM;
			for (unsigned i = 0; f->s && i < weft_pool_size(f->pool); i++)
				served += f->s[i].served;
			fprintf(stderr, "%s: served %llu connections\n", f->name,
				(unsigned long long)served);
			weft_pool_destroy(f->pool);
			free(f->s);
		}
	}
	if (rc < 0) {
		/* A set-up error (any errno) gets its fix; the server's own, a plain sentence. */
		fprintf(stderr, "%s: %s\n", f->name, weft_loop_explain(rc));
		return 1;
	}
	return 0;
}

#endif
