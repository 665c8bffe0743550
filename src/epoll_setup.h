/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend's own state (struct ep), shared by its two files:
 * epoll_setup.c makes the epoll set and the wake eventfd, tears them down,
 * and waits in epoll_pwait2 (or epoll_wait); backend_epoll.c runs the ops.
 */
#ifndef WEFT_EPOLL_SETUP_H
#define WEFT_EPOLL_SETUP_H

#include "types.h"
#include "opdef.h"

#include <sys/epoll.h>

#pragma GCC visibility push(hidden)

#define WEFT__EP_WAKE_TAG UINT64_MAX /* epoll data of the wake eventfd */

enum { KIND_UNKNOWN = 0, KIND_POLL, KIND_FILE };

/* What weft knows of one fd number. */
struct fdent {
	struct weft__op *rd; /* ring (op->fdlink) of ops waiting for input */
	struct weft__op *wr; /* and for output */
	struct weft__op *wk; /* and of ops on the workers */
	uint8_t registered;  /* in the epoll set */
	uint8_t trusted;     /* weft saw this fd born: its registration needs no check */
	uint8_t kind;	     /* KIND_* */
	weft__memo memo;     /* the op rows' hooks' byte for it */
};

/* op->kflags, the backend's own */
#define EK_RD (1u << 0)		/* on its fd's rd ring */
#define EK_WR (1u << 1)		/* on its fd's wr ring */
#define EK_WORKER (1u << 2)	/* an op job on the workers (op->job) */
#define EK_WK_RING (1u << 3)	/* on its fd's wk ring */
#define EK_QUEUED (1u << 4)	/* waits for the tick to hand it to the workers (op->qnext) */
#define EK_TRIES_DONE (1u << 5) /* its row's nb_end ran, or must not (its fd is gone) */

struct ep {
	int epfd;
	int wakefd;
	struct fdent *fds;
	size_t nfds;
	size_t fd_cap;	       /* fd numbers above this are never tracked (RLIMIT_NOFILE) */
	struct weft__op *done; /* to report at the next tick (op->deferred) */
	struct weft__op **done_tail;
	struct weft__heap deadlines; /* of ops (op->timer) */
	struct weft__op *to_work;    /* ops the tick hands to the workers (op->qnext), FIFO */
	struct weft__op **to_work_tail;
	/* the in-place budget */
	uint64_t budget_switches;
	unsigned budget;
	size_t nwait; /* ops on the fd rings */
	bool have_pwait2;
};

static inline struct ep *E(struct weft_loop *l)
{
	return l->be_data;
}

/* backend.h's setup and teardown for epoll. */
int weft__epoll_setup(struct weft_loop *l);
void weft__epoll_teardown(struct weft_loop *l);
/*
 * Wait for events until the absolute time @until (0: do not wait,
 * WEFT_FOREVER: no limit). Return: epoll_wait's.
 */
int weft__epoll_wait_until(struct ep *e, struct epoll_event *evs, int n, int64_t until);

#pragma GCC visibility pop

#endif
