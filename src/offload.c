/* SPDX-License-Identifier: MIT */
/*
 * weft_offload: run a blocking function on a worker thread while the fiber
 * is parked (asyncio.to_thread). The pool belongs to one loop and is made at
 * its first offload. A finished job goes back to its loop like any work
 * another thread hands a loop: on the loop's inbox, with a backend wake()
 * (weft__loop_post_remote); the loop completes it after its tick, on its own
 * thread. A job record lives on the fiber's stack; the fiber does not leave
 * weft_offload before its job is done, cancelled or not.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

struct job {
	struct weft__remote remote; /* how it goes back to the loop */
	struct weft_loop *loop;
	weft_fn fn;
	void *arg;
	int result;
	int failed; /* no worker could run it: -EAGAIN, -ENOMEM (fn never ran) */
	bool done;  /* written by the loop thread only */
	struct weft_fiber *fiber;
	struct job *next;
};

struct weft__offload {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head; /* queued, FIFO */
	struct job *tail;
	unsigned threads; /* started */
	unsigned idle;	  /* waiting for a job */
	unsigned queued;  /* jobs on the queue */
	unsigned max;
	bool stop;
	pthread_t *tids;
	/*
	 * Workers are started on the loop's own stack, by this record posted
	 * to the loop's inbox: pthread_create takes about 2 KiB of stack, too
	 * much for a one-page fiber.
	 */
	struct weft__remote start;
	bool start_posted; /* loop thread only */
};

static void *worker(void *arg)
{
	struct weft__offload *p = arg;

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
		p->queued--;
		pthread_mutex_unlock(&p->mu);

		j->result = j->fn(j->arg);
		weft__loop_post_remote(j->loop, &j->remote);

		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static struct weft__offload *pool_get(struct weft_loop *l)
{
	if (l->offload)
		return l->offload;

	struct weft__offload *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->max = l->cfg.offload_threads;
	p->tids = calloc(p->max, sizeof(*p->tids));
	if (!p->tids) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	l->offload = p;
	return p;
}

int weft__thread_start(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	sigset_t all;
	sigset_t old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);

	int rc = pthread_create(tid, attr, fn, arg);

	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}

/* Start one more worker. */
static int start_worker(struct weft__offload *p)
{
	int rc = weft__thread_start(&p->tids[p->threads], NULL, worker, p);

	if (rc == 0)
		p->threads++;
	return rc;
}

/* On the loop's thread, after the tick: the job is back. */
static void job_done(struct weft_loop *l, struct weft__remote *r)
{
	struct job *j = weft__container_of(r, struct job, remote);

	j->done = true;
	l->remote_expected--;
	weft__fiber_wake(j->fiber, 0);
}

/* On the loop's stack: start workers while more jobs wait than workers are idle. */
static void start_workers(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__offload *p = weft__container_of(r, struct weft__offload, start);
	unsigned started = 0;
	int rc = 0;

	p->start_posted = false;
	pthread_mutex_lock(&p->mu);
	while (p->queued > p->idle + started && p->threads < p->max) {
		rc = start_worker(p);
		if (rc < 0)
			break;
		started++;
	}

	struct job *fail = NULL;

	if (rc < 0 && p->threads == 0) {
		/* Not one worker: the jobs cannot run; their fibers get the reason. */
		fail = p->head;
		p->head = p->tail = NULL;
		p->queued = 0;
	}
	pthread_mutex_unlock(&p->mu);
	while (fail) {
		struct job *next = fail->next;

		fail->failed = rc;
		job_done(l, &fail->remote);
		fail = next;
	}
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
	struct weft__offload *p = pool_get(l);

	if (!p)
		return -ENOMEM;

	struct job j = { .remote.run = job_done, .loop = l, .fn = fn, .arg = arg, .fiber = self };

	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = &j;
	else
		p->head = &j;
	p->tail = &j;
	p->queued++;

	bool need = p->queued > p->idle && p->threads < p->max;

	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (need && !p->start_posted) {
		p->start_posted = true;
		p->start.run = start_workers;
		weft__loop_post_remote(l, &p->start);
	}

	/* A worker cannot be interrupted: a cancel only marks the fiber. */
	l->remote_expected++;
	while (!j.done)
		weft__fiber_park(l, self, &weft__wait_handoff, WEFT_FOREVER);
	if (j.failed)
		return j.failed; /* fn never ran */
	if (result)
		*result = j.result;
	return 0;
}

/*
 * A job the fiber may stop waiting for (name resolution: a resolver that never
 * answers must not hold a fiber past its deadline). It runs on a detached
 * thread of its own, not on the loop's workers, so that neither the fiber nor
 * weft_loop_destroy ever waits for it. Whoever moves the state first decides:
 * the thread (RUNNING -> DONE) hands the job back through the loop's inbox,
 * and the fiber waits for that even if cancelled meanwhile; the fiber
 * (RUNNING -> ABANDONED) leaves at once, and the thread, when @fn returns,
 * calls @drop(@arg) and frees the record. The loop is never touched by an
 * abandoned job's thread.
 */
enum { AJOB_RUNNING, AJOB_DONE, AJOB_ABANDONED };

struct ajob {
	struct weft__remote remote;
	struct weft__remote start; /* its thread is created on the loop's stack */
	int start_err;
	struct weft_loop *loop;
	weft_fn fn;
	void (*drop)(void *arg);
	void *arg;
	_Atomic int state;
	bool back; /* loop thread: the DONE job arrived */
	struct weft_fiber *fiber;
};

static void ajob_back(struct weft_loop *l, struct weft__remote *r)
{
	struct ajob *j = weft__container_of(r, struct ajob, remote);

	j->back = true;
	l->remote_expected--;
	weft__fiber_wake(j->fiber, 0);
}

static void *ajob_thread(void *arg)
{
	struct ajob *j = arg;
	int running = AJOB_RUNNING;

	j->fn(j->arg);
	if (atomic_compare_exchange_strong(&j->state, &running, AJOB_DONE)) {
		weft__loop_post_remote(j->loop, &j->remote);
	} else {
		j->drop(j->arg);
		free(j);
	}
	return NULL;
}

/* On the loop's stack (pthread_create needs ~2 KiB): start the job's thread. */
static void ajob_start(struct weft_loop *l, struct weft__remote *r)
{
	struct ajob *j = weft__container_of(r, struct ajob, start);
	pthread_attr_t attr;
	pthread_t tid;
	int rc = -pthread_attr_init(&attr);

	if (rc == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 256 * 1024); /* getaddrinfo and NSS modules */
		rc = weft__thread_start(&tid, &attr, ajob_thread, j);
		pthread_attr_destroy(&attr);
	}
	if (rc != 0) {
		int running = AJOB_RUNNING;

		if (atomic_compare_exchange_strong(&j->state, &running, AJOB_DONE)) {
			/* No thread: hand the job back failed to the fiber still waiting. */
			j->start_err = rc;
			ajob_back(l, &j->remote);
		} else {
			j->drop(j->arg); /* the fiber left already */
			free(j);
		}
	}
}

int weft__offload_abandonable(weft_fn fn, void (*drop)(void *arg), void *arg)
{
	struct weft_fiber *self;
	int rc = weft__op_check(&self);
	struct ajob *j = rc < 0 ? NULL : calloc(1, sizeof(*j));

	if (!j) {
		drop(arg);
		return rc < 0 ? rc : -ENOMEM;
	}

	struct weft_loop *l = self->loop;

	*j = (struct ajob){ .remote.run = ajob_back,
			    .start.run = ajob_start,
			    .loop = l,
			    .fn = fn,
			    .drop = drop,
			    .arg = arg,
			    .fiber = self };
	atomic_init(&j->state, AJOB_RUNNING);
	l->remote_expected++;
	weft__loop_post_remote(l, &j->start);
	/* Until the thread exists, only a cancel or deadline can wake us: wait for it to start. */
	while (!j->back) {
		int wrc = weft__fiber_park(l, self, &weft__wait_event, self->deadline);
		int running = AJOB_RUNNING;

		if (j->back)
			break;
		if (wrc < 0 && !j->start_err &&
		    atomic_compare_exchange_strong(&j->state, &running, AJOB_ABANDONED)) {
			/*
			 * The thread (started, or about to be by ajob_start, which
			 * runs before the loop can be destroyed) frees the job.
			 */
			l->remote_expected--;
			return wrc; /* -ETIMEDOUT or -ECANCELED */
		}
		if (wrc < 0)
			/* Done already, on its way back: wait for it, uninterrupted. */
			while (!j->back)
				weft__fiber_park(l, self, &weft__wait_handoff, WEFT_FOREVER);
	}
	if (j->start_err) {
		rc = j->start_err;
		drop(arg);
		free(j);
		return rc;
	}
	free(j);
	return 0;
}

/* Stop and join the workers; called by destroy once no job is out. */
void weft__offload_fini(struct weft_loop *l)
{
	struct weft__offload *p = l->offload;

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
	free(p->tids);
	free(p);
	l->offload = NULL;
}
