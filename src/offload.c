/* SPDX-License-Identifier: MIT */
/*
 * weft_offload: run a blocking function on a worker thread while the fiber
 * is parked (asyncio.to_thread). The pool belongs to one loop and is made at
 * its first offload. Workers put finished jobs on a done list and, when the
 * list was empty, bump an eventfd; the loop keeps one IORING_OP_POLL_ADD of
 * that eventfd in its ring while any job is out, so it never waits anywhere
 * but in io_uring_enter. A poll and a plain read(2) of the counter, rather
 * than an IORING_OP_READ of the eventfd: Linux 6.15.4 broke eventfd reads
 * through io_uring (ghostty PR#7731), polls were not affected. A job record lives on the fiber's
 * stack; the fiber does not leave weft_offload before its job is done, cancelled or not.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

struct job {
	weft_fn fn;
	void *arg;
	int result;
	bool done; /* written by the loop thread only */
	struct weft_fiber *fiber;
	struct job *next;
};

struct weft__pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head; /* queued, FIFO */
	struct job *tail;
	struct job *finished; /* done by workers, not yet seen by the loop */
	unsigned threads;     /* started */
	unsigned idle;	      /* waiting for a job */
	unsigned max;
	bool stop;
	pthread_t *tids;
	int efd;
	uint64_t pending; /* jobs handed out, not yet reaped (loop thread only) */
	bool armed;	  /* the eventfd read is in the ring (loop thread only) */
};

static void *worker(void *arg)
{
	struct weft__pool *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop) {
			p->idle++;
			pthread_cond_wait(&p->cv, &p->mu);
			p->idle--;
		}
		if (!p->head)
			break; /* stop, and nothing left */

		struct job *j = p->head;

		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);

		j->result = j->fn(j->arg);

		pthread_mutex_lock(&p->mu);
		bool was_empty = p->finished == NULL;

		j->next = p->finished;
		p->finished = j;
		if (was_empty) {
			uint64_t one = 1;

			/* Cannot fail short of a bad fd; the loop holds it open. */
			ssize_t w = write(p->efd, &one, sizeof(one));

			(void)w;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static struct weft__pool *pool_get(struct weft_loop *l)
{
	if (l->pool)
		return l->pool;

	struct weft__pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->max = l->cfg.offload_threads;
	p->tids = calloc(p->max, sizeof(*p->tids));
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!p->tids || p->efd < 0) {
		if (p->efd >= 0)
			close(p->efd);
		free(p->tids);
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	l->pool = p;
	return p;
}

/* Start one more worker, with every signal blocked: signals belong to the loop's thread. */
static int start_worker(struct weft__pool *p)
{
	sigset_t all;
	sigset_t old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);

	int rc = pthread_create(&p->tids[p->threads], NULL, worker, p);

	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	p->threads++;
	return 0;
}

static void arm(struct weft_loop *l, struct weft__pool *p)
{
	struct io_uring_sqe *sqe = weft__ring_sqe(l);

	io_uring_prep_poll_add(sqe, p->efd, POLLIN);
	io_uring_sqe_set_data64(sqe, WEFT__UD_OFFLOAD);
	p->armed = true;
	l->inflight++;
	l->stats.sqes++;
}

/* The eventfd became readable: wake the fibers whose jobs are done. */
void weft__offload_reap(struct weft_loop *l, int res)
{
	struct weft__pool *p = l->pool;
	uint64_t count;

	(void)res; /* the counter's value does not matter: the list does */
	p->armed = false;
	/*
	 * Reset the counter before taking the list: a worker that finishes
	 * after we took it finds the list empty and bumps the counter again.
	 */
	if (read(p->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		WEFT__BUG(NULL, "read of the offload eventfd failed");
	pthread_mutex_lock(&p->mu);

	struct job *j = p->finished;

	p->finished = NULL;
	pthread_mutex_unlock(&p->mu);
	while (j) {
		struct job *next = j->next;

		j->done = true;
		p->pending--;
		weft__fiber_wake(j->fiber, 0);
		j = next;
	}
	if (p->pending > 0)
		arm(l, p);
}

int weft_offload(weft_fn fn, void *arg, int *result)
{
	struct weft_fiber *self;
	int rc = weft__op_check(&self);

	if (rc < 0)
		return rc;
	if (!fn)
		return -EINVAL;

	struct weft_loop *l = self->loop;
	struct weft__pool *p = pool_get(l);

	if (!p)
		return -ENOMEM;

	struct job j = { .fn = fn, .arg = arg, .fiber = self };

	pthread_mutex_lock(&p->mu);
	if (p->idle == 0 && p->threads < p->max) {
		rc = start_worker(p);
		if (rc < 0 && p->threads == 0) {
			pthread_mutex_unlock(&p->mu);
			return rc; /* no worker at all: the job cannot run */
		}
	}
	if (p->tail)
		p->tail->next = &j;
	else
		p->head = &j;
	p->tail = &j;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);

	p->pending++;
	if (!p->armed)
		arm(l, p);
	while (!j.done)
		weft__fiber_park(l, self, WEFT__WAIT_OFFLOAD, WEFT_FOREVER);
	if (result)
		*result = j.result;
	return 0;
}

/* Stop and join the workers; called by destroy once no job is out. */
void weft__offload_fini(struct weft_loop *l)
{
	struct weft__pool *p = l->pool;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->threads; i++)
		pthread_join(p->tids[i], NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	close(p->efd);
	free(p->tids);
	free(p);
	l->pool = NULL;
}

struct sys_call {
	long nr;
	long a[5];
	long ret;
};

static int run_syscall(void *arg)
{
	struct sys_call *c = arg;
	long r = syscall(c->nr, c->a[0], c->a[1], c->a[2], c->a[3], c->a[4]);

	c->ret = r < 0 ? -errno : r;
	return 0;
}

long weft__offload_syscall(long nr, long a0, long a1, long a2, long a3, long a4)
{
	struct sys_call c = { .nr = nr, .a = { a0, a1, a2, a3, a4 } };
	int rc = weft_offload(run_syscall, &c, NULL);

	return rc < 0 ? rc : c.ret;
}
