/* SPDX-License-Identifier: MIT */
/*
 * Setting the epoll backend up: the epoll set, the wake eventfd in it, the
 * rows of the op table it can run (every row with a try, a blocking form
 * or a timer); and its one wait, in epoll_pwait2 (nanoseconds; Linux 5.11)
 * or else epoll_wait (milliseconds, rounded up).
 */
#include "epoll_setup.h"
#include "opdef.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int weft__epoll_wait_until(struct ep *e, struct epoll_event *evs, int n, int64_t until)
{
	if (until == 0) /* do not wait */
		return epoll_wait(e->epfd, evs, n, 0);
	if (e->have_pwait2) {
		struct timespec ts;
		struct timespec *tsp = NULL;

		if (until != WEFT_FOREVER) {
			int64_t left = until - weft__clock_now();

			if (left < 0)
				left = 0;
			ts.tv_sec = left / WEFT_SEC;
			ts.tv_nsec = left % WEFT_SEC;
			tsp = &ts;
		}

		int r = (int)syscall(SYS_epoll_pwait2, e->epfd, evs, n, tsp, NULL, (size_t)8);

		if (r >= 0 || errno != ENOSYS)
			return r;
		e->have_pwait2 = false; /* before Linux 5.11 */
	}

	int ms = -1;

	if (until != WEFT_FOREVER) {
		int64_t left = until - weft__clock_now();

		ms = left <= 0 ? 0 : (int)((left + WEFT_MSEC - 1) / WEFT_MSEC);
	}
	return epoll_wait(e->epfd, evs, n, ms);
}

/* The rows this backend can run: a try, a blocking form, a timer or a close. */
static uint64_t runnable_ops(void)
{
	uint64_t ops = 0;

	for (unsigned c = 0; c < WEFT__OP_COUNT; c++) {
		const struct weft__opdef *d = weft__opdef(c);

		if (d->try_nb || d->blocking || (d->flags & WEFT__OPD_TIMER))
			ops |= (uint64_t)1 << c;
	}
	return ops;
}

int weft__epoll_setup(struct weft_loop *l)
{
	struct ep *e = calloc(1, sizeof(*e));
	struct rlimit rl;
	int rc;

	if (!e)
		return -ENOMEM;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	e->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->epfd < 0 || e->wakefd < 0) {
		rc = -errno;
		goto fail;
	}

	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WEFT__EP_WAKE_TAG };

	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) < 0) {
		rc = -errno;
		goto fail;
	}
	e->fd_cap = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY
			? (size_t)rl.rlim_max
			: (size_t)1 << 20;
	e->done_tail = &e->done;
	e->to_work_tail = &e->to_work;
	e->have_pwait2 = true;
	l->ops = runnable_ops();
	l->be_data = e;
	return 0;
fail:
	if (e->epfd >= 0)
		close(e->epfd);
	if (e->wakefd >= 0)
		close(e->wakefd);
	free(e);
	return rc;
}

void weft__epoll_teardown(struct weft_loop *l)
{
	struct ep *e = E(l);

	close(e->epfd);
	close(e->wakefd);
	free(e->fds);
	weft__heap_fini(&e->deadlines);
	free(e);
	l->be_data = NULL;
}
