/* SPDX-License-Identifier: MIT */
/*
 * The baselines of bench/gather: the same tasks with blocking system calls,
 * run as a thread per task (pthread_create, then join all) or one after
 * another. What a C programmer writes without an event loop.
 */
#define _GNU_SOURCE
#include "../workload.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static int round_trips(long long k)
{
	struct sockaddr_in sa;
	char msg[W_MSG];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = 0;

	if (fd < 0)
		return -errno;
	w_server_addr(&sa);
	memset(msg, 'm', sizeof(msg));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	for (long long r = 0; rc == 0 && r < k; r++) {
		size_t done = 0;

		while (rc == 0 && done < W_MSG) {
			ssize_t n = send(fd, msg + done, W_MSG - done, MSG_NOSIGNAL);

			if (n < 0 && errno != EINTR)
				rc = -errno;
			else if (n > 0)
				done += (size_t)n;
		}
		for (done = 0; rc == 0 && done < W_MSG;) {
			ssize_t n = recv(fd, msg + done, W_MSG - done, 0);

			if (n < 0 && errno != EINTR)
				rc = -errno;
			else if (n == 0)
				rc = -ECONNRESET; /* the server went away mid-reply */
			else if (n > 0)
				done += (size_t)n;
		}
	}
	close(fd);
	return rc;
}

static int task(long long i)
{
	int rc;

	switch (w.kind) {
	case W_SLEEP:
		w_nap_ms(w.d_ms);
		return 0;
	case W_READ:
		return w_pread_slice(i);
	case W_WRITE_FSYNC:
		return w_write_own_file(i);
	case W_SOCKET:
		return round_trips(w.rounds);
	case W_MIXED:
		w_nap_ms(w.d_ms);
		rc = w_pread_slice(i);
		return rc < 0 ? rc : round_trips(1);
	}
	return -EINVAL;
}

/* The first failure's name and how many tasks succeeded. */
static const char *tally(const int *res, long long n, long long *ok)
{
	const char *status = "ok";

	*ok = 0;
	for (long long i = 0; i < n; i++) {
		if (res[i] == 0)
			(*ok)++;
		else if (!strcmp(status, "ok"))
			status = strerrorname_np(-res[i]);
	}
	return status;
}

static int *results;

static void *thread_main(void *arg)
{
	long long i = (long long)(intptr_t)arg;

	results[i] = task(i);
	return NULL;
}

int w_run_threads(void)
{
	pthread_t *t = calloc((size_t)w.n + 1, sizeof(*t));
	pthread_attr_t attr;
	int64_t t0 = b_now();
	long long started = 0;
	long long ok;
	int err = 0;
	char extra[64];

	results = calloc((size_t)w.n + 1, sizeof(*results));
	if (!t || !results)
		return -ENOMEM;
	pthread_attr_init(&attr);
	/* The same 64 KiB a fiber gets by default (glibc's default is 8 MiB). */
	pthread_attr_setstacksize(&attr, (size_t)w.stack);
	for (; started < w.n; started++) {
		err = pthread_create(&t[started], &attr, thread_main, (void *)(intptr_t)started);
		if (err)
			break;
	}
	if (w.kind == W_SLEEP) {
		/* Kernel memory while the threads are all alive: half-way through. */
		int64_t left = t0 + w.d_ms * 1000000 / 2 - b_now();

		if (left > 0)
			w_nap_ms(left / 1000000);
		w_kernel_mid = b_kernel_kb();
	}
	for (long long i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	pthread_attr_destroy(&attr);

	const char *status = tally(results, started, &ok);

	if (err)
		status = strerrorname_np(err);
	snprintf(extra, sizeof(extra), " thread_stack=%lld", w.stack);
	w_result(status, ok, (double)(b_now() - t0) / 1e9, extra);
	free(t);
	free(results);
	return strcmp(status, "ok") ? -EIO : 0;
}

int w_run_sequential(void)
{
	int64_t t0 = b_now();
	long long ok;

	results = calloc((size_t)w.n + 1, sizeof(*results));
	if (!results)
		return -ENOMEM;
	for (long long i = 0; i < w.n; i++)
		results[i] = task(i);

	const char *status = tally(results, w.n, &ok);

	w_result(status, ok, (double)(b_now() - t0) / 1e9, "");
	free(results);
	return strcmp(status, "ok") ? -EIO : 0;
}
