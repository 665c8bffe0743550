/* SPDX-License-Identifier: MIT */
/*
 * peer_epoll: bench/gather's workloads (see ../workload.h) in the classic
 * readiness design: one thread, an epoll loop, a timer heap, and a callback
 * per task step, as libevent or a hand-written C server does it. Sockets
 * are non-blocking and registered once, edge-triggered for both
 * directions, so a round trip costs a send, a recv and a share of one
 * epoll_wait. Regular files cannot be waited for with epoll: their reads,
 * writes and fsyncs are made right in the callback and block the loop,
 * which is this design's known weakness.
 *
 *   peer_epoll WORKLOAD epoll N [options]   (prints workload.h's result line)
 */
#define _GNU_SOURCE
#include "../workload.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum step { S_START, S_SLEPT, S_CONNECTING, S_RECEIVING, S_DONE };

struct task {
	long long i;
	int64_t deadline;
	int fd;
	enum step step;
	long long rounds_left;
	size_t got;
	int rc;
	char msg[W_MSG];
};

static struct task *tasks;
static struct task **heap; /* timers, earliest first */
static size_t heap_len;
static int ep;
static long long finished;
static unsigned long long waits;

static void heap_push(struct task *t)
{
	size_t i = heap_len++;

	while (i > 0 && heap[(i - 1) / 2]->deadline > t->deadline) {
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = t;
}

static struct task *heap_pop(void)
{
	struct task *top = heap[0];
	struct task *last = heap[--heap_len];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= heap_len)
			break;
		if (c + 1 < heap_len && heap[c + 1]->deadline < heap[c]->deadline)
			c++;
		if (heap[c]->deadline >= last->deadline)
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (heap_len)
		heap[i] = last;
	return top;
}

static void finish(struct task *t, int rc)
{
	if (t->fd >= 0) {
		close(t->fd); /* also removes it from the epoll set */
		t->fd = -1;
	}
	t->rc = rc;
	t->step = S_DONE;
	finished++;
}

/* Send one message; a 64-byte send to a fresh socket buffer goes whole. */
static void send_msg(struct task *t)
{
	ssize_t n = send(t->fd, t->msg, W_MSG, MSG_NOSIGNAL);

	if (n != W_MSG) {
		finish(t, n < 0 ? -errno : -EIO);
		return;
	}
	t->got = 0;
	t->step = S_RECEIVING;
}

static void start_round_trips(struct task *t, long long rounds)
{
	struct sockaddr_in sa;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = t };

	t->rounds_left = rounds;
	memset(t->msg, 'm', sizeof(t->msg));
	t->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->fd < 0) {
		finish(t, -errno);
		return;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, t->fd, &ev) < 0) {
		finish(t, -errno);
		return;
	}
	w_server_addr(&sa);
	t->step = S_CONNECTING;
	if (connect(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		finish(t, -errno);
	/* Connected or not, EPOLLOUT reports it. */
}

/* After the timer (or at once): the file part, then the socket part. */
static void after_sleep(struct task *t)
{
	int rc;

	switch (w.kind) {
	case W_SLEEP:
		finish(t, 0);
		return;
	case W_READ:
		finish(t, w_pread_slice(t->i));
		return;
	case W_WRITE_FSYNC:
		finish(t, w_write_own_file(t->i));
		return;
	case W_SOCKET:
		start_round_trips(t, w.rounds);
		return;
	case W_MIXED:
		rc = w_pread_slice(t->i);
		if (rc < 0)
			finish(t, rc);
		else
			start_round_trips(t, 1);
		return;
	}
}

static void on_socket(struct task *t, uint32_t events)
{
	if (t->step == S_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			finish(t, -err);
			return;
		}
		send_msg(t);
		return;
	}
	if (t->step != S_RECEIVING || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	/* Edge-triggered: read until the reply is whole or the socket is empty. */
	while (t->got < W_MSG) {
		ssize_t n = recv(t->fd, t->msg + t->got, W_MSG - t->got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			finish(t, n < 0 ? -errno : -ECONNRESET);
			return;
		}
		t->got += (size_t)n;
	}
	if (--t->rounds_left > 0)
		send_msg(t);
	else
		finish(t, 0);
}

int main(int argc, char **argv)
{
	static const char *const modes[] = { "epoll", NULL };
	struct epoll_event evs[256];
	int64_t t0;
	int rc = w_parse(argc - 1, argv + 1, "peer_epoll", modes);

	if (rc)
		return rc;
	rc = w_prepare();
	if (rc < 0) {
		w_result(strerrorname_np(-rc), 0, 0, "");
		return 3;
	}
	t0 = b_now();
	tasks = calloc((size_t)w.n + 1, sizeof(*tasks));
	heap = calloc((size_t)w.n + 1, sizeof(*heap));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!tasks || !heap || ep < 0) {
		w_result(ep < 0 ? strerrorname_np(errno) : "ENOMEM", 0, 0, "");
		return 3;
	}
	for (long long i = 0; i < w.n; i++) {
		struct task *t = &tasks[i];

		t->i = i;
		t->fd = -1;
		if (w.kind == W_SLEEP || w.kind == W_MIXED) {
			t->deadline = t0 + w.d_ms * 1000000;
			heap_push(t);
		} else {
			after_sleep(t);
		}
	}
	while (finished < w.n) {
		struct timespec ts = { 0, 0 };
		struct timespec *tsp = NULL;

		if (heap_len) {
			int64_t left = heap[0]->deadline - b_now();

			if (left < 0)
				left = 0;
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		int n = epoll_pwait2(ep, evs, 256, tsp, NULL);

		waits++;
		if (n < 0 && errno != EINTR) {
			w_result(strerrorname_np(errno), 0, 0, "");
			return 3;
		}
		for (int k = 0; k < n; k++)
			on_socket(evs[k].data.ptr, evs[k].events);
		int64_t now = b_now();

		while (heap_len && heap[0]->deadline <= now)
			after_sleep(heap_pop());
	}

	long long ok = 0;
	const char *status = "ok";

	for (long long i = 0; i < w.n; i++) {
		if (tasks[i].rc == 0)
			ok++;
		else if (!strcmp(status, "ok"))
			status = strerrorname_np(-tasks[i].rc);
	}
	char extra[64];

	snprintf(extra, sizeof(extra), " epoll_waits=%llu", waits);
	w_result(status, ok, (double)(b_now() - t0) / 1e9, extra);
	return strcmp(status, "ok") ? 3 : 0;
}
