/* SPDX-License-Identifier: MIT */
/*
 * The worker pool of a loop. Jobs wait on one FIFO queue; a worker takes
 * the oldest job whose class is below its bound (offload jobs, and the
 * loop's own operations and name lookups, are bounded apart, so one kind
 * cannot starve the other). Threads are started on demand, on the loop's
 * own stack (a record posted to its inbox: pthread_create takes about
 * 2 KiB, too much for a one-page fiber), and live until the loop is
 * destroyed.
 *
 * A job's waiter may give up on it (a deadline, a cancel): a queued job is
 * taken back; a running one is let go, and its worker, when run() returns,
 * calls drop() instead of done(). An abandoned job that runs no longer
 * counts against its class (up to ABANDONED_MAX of them; past that it keeps
 * its place), so a resolver that never answers cannot hold the pool. At
 * destroy, a worker still running an abandoned job is detached: it finishes
 * on its own and the last one out frees the pool (refs), so neither a
 * fiber nor weft_loop_destroy ever waits for abandoned work.
 */
#include "workers.h"
#include "inbox.h"

#include <signal.h>
#include <stdlib.h>

#define ABANDONED_MAX 64
#define DEFAULT_IO 16

struct worker {
	pthread_t tid;
	struct weft__workers *pool;
	struct weft__job *cur; /* the job it runs, under the lock */
	bool detached;	       /* left to finish an abandoned job at destroy */
};

struct weft__workers {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct weft__list queue;
	unsigned queued[WEFT__JOB_CLASSES];
	unsigned running[WEFT__JOB_CLASSES];
	unsigned cap[WEFT__JOB_CLASSES];
	unsigned abandoned; /* running abandoned jobs that gave their class slot back */
	unsigned threads;
	unsigned idle;
	unsigned max_threads;
	struct worker *w; /* max_threads of them */
	bool stop;
	unsigned refs; /* the loop, and each detached worker; under the lock */
	struct weft_loop *loop;
	struct weft__remote start; /* starts threads on the loop's stack */
	bool start_posted;	   /* loop thread only */
};

int weft__thread_start(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	sigset_t all;
	sigset_t old;

	/*
	 * Every signal blocked, so that the process's go to a thread that
	 * wants them (or to weft_signal_wait), but the faults: a fault is
	 * forced on the thread that made it, and the kernel resets a blocked
	 * fault's action to the default first, so the stack overflow report
	 * (stack.c) would never run.
	 */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGTRAP);
	sigdelset(&all, SIGSYS);
	pthread_sigmask(SIG_SETMASK, &all, &old);

	int rc = pthread_create(tid, attr, fn, arg);

	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}

/* Jobs that could start now: queued, with room in their class. Under the lock. */
static unsigned startable(const struct weft__workers *p)
{
	unsigned n = 0;

	for (unsigned c = 0; c < WEFT__JOB_CLASSES; c++) {
		unsigned room = p->cap[c] > p->running[c] ? p->cap[c] - p->running[c] : 0;

		n += p->queued[c] < room ? p->queued[c] : room;
	}
	return n;
}

/* The oldest queued job whose class has room, taken off the queue. Under the lock. */
static struct weft__job *pick(struct weft__workers *p)
{
	struct weft__list *n;

	weft__list_for_each(n, &p->queue)
	{
		struct weft__job *j = weft__container_of(n, struct weft__job, link);

		if (p->running[j->cls] >= p->cap[j->cls])
			continue;
		weft__list_del(&j->link);
		p->queued[j->cls]--;
		p->running[j->cls]++;
		atomic_store_explicit(&j->state, WEFT__JOB_RUNNING, memory_order_relaxed);
		return j;
	}
	return NULL;
}

static void pool_free(struct weft__workers *p)
{
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->w);
	free(p);
}

/* After run(): hand the job back, or drop it if its waiter left. Takes and drops the lock. */
static void job_over(struct weft__workers *p, struct worker *me, struct weft__job *j)
{
	bool abandoned;

	pthread_mutex_lock(&p->mu);
	me->cur = NULL;
	abandoned = atomic_load_explicit(&j->state, memory_order_relaxed) == WEFT__JOB_ABANDONED;
	if (!abandoned) {
		atomic_store_explicit(&j->state, WEFT__JOB_DONE, memory_order_relaxed);
		p->running[j->cls]--;
	} else if (j->kept_slot) {
		p->running[j->cls]--;
	} else {
		p->abandoned--;
	}
	pthread_mutex_unlock(&p->mu);
	if (abandoned)
		j->drop(j);
	else
		j->done(j); /* the job may be gone after this */
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	struct weft__workers *p = me->pool;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct weft__job *j = pick(p);

		if (!j) {
			if (p->stop)
				break;
			p->idle++;
			pthread_cond_wait(&p->cv, &p->mu);
			p->idle--;
			continue;
		}
		me->cur = j;
		pthread_mutex_unlock(&p->mu);
		j->run(j);
		job_over(p, me, j);
		pthread_mutex_lock(&p->mu);
		if (me->detached)
			break; /* destroy left it this job to finish */
	}

	bool last = me->detached && --p->refs == 0;

	pthread_mutex_unlock(&p->mu);
	if (last)
		pool_free(p);
	return NULL;
}

static struct weft__workers *pool_get(struct weft_loop *l)
{
	if (l->workers)
		return l->workers;

	struct weft__workers *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->cap[WEFT__JOB_OFFLOAD] = l->cfg.offload_threads;
	p->cap[WEFT__JOB_IO] = l->cfg.iowq_bounded ? l->cfg.iowq_bounded : DEFAULT_IO;
	p->max_threads = p->cap[WEFT__JOB_OFFLOAD] + p->cap[WEFT__JOB_IO] + ABANDONED_MAX;
	p->w = calloc(p->max_threads, sizeof(*p->w));
	if (!p->w) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	weft__list_init(&p->queue);
	p->refs = 1;
	p->loop = l;
	l->workers = p;
	return p;
}

/* Not one worker could be started: the queued jobs fail with @rc (done() on this thread). */
static void fail_queued(struct weft__workers *p, int rc)
{
	struct weft__list failed;

	weft__list_init(&failed);
	pthread_mutex_lock(&p->mu);
	while (!weft__list_empty(&p->queue)) {
		struct weft__job *j = weft__container_of(p->queue.next, struct weft__job, link);

		weft__list_del(&j->link);
		p->queued[j->cls]--;
		atomic_store_explicit(&j->state, WEFT__JOB_DONE, memory_order_relaxed);
		weft__list_add_before(&failed, &j->link);
	}
	pthread_mutex_unlock(&p->mu);
	while (!weft__list_empty(&failed)) {
		struct weft__job *j = weft__container_of(failed.next, struct weft__job, link);

		weft__list_del(&j->link);
		j->err = rc;
		j->done(j);
	}
}

/* On the loop's stack: start workers while more jobs could run than workers are idle. */
static void start_workers(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__workers *p = weft__container_of(r, struct weft__workers, start);
	unsigned started = 0;
	int rc = 0;

	(void)l;
	p->start_posted = false;
	pthread_mutex_lock(&p->mu);
	while (startable(p) > p->idle + started && p->threads < p->max_threads) {
		struct worker *w = &p->w[p->threads];

		*w = (struct worker){ .pool = p };
		rc = weft__thread_start(&w->tid, NULL, worker_main, w);
		if (rc < 0)
			break;
		p->threads++;
		started++;
	}

	bool none = rc < 0 && p->threads == 0;

	pthread_mutex_unlock(&p->mu);
	if (none)
		fail_queued(p, rc);
}

/* The loop's thread: have start_workers run on the loop's stack after its tick. */
static void post_start(struct weft__workers *p)
{
	if (p->start_posted)
		return;
	p->start_posted = true;
	p->start.run = start_workers;
	weft__inbox_push(p->loop, &p->start); /* its own loop: no wake needed */
}

int weft__job_submit(struct weft_loop *l, struct weft__job *j)
{
	struct weft__workers *p = pool_get(l);

	if (!p)
		return -ENOMEM;
	j->pool = p;
	j->err = 0;
	j->kept_slot = false;
	atomic_init(&j->state, WEFT__JOB_QUEUED);
	pthread_mutex_lock(&p->mu);
	weft__list_add_before(&p->queue, &j->link);
	p->queued[j->cls]++;

	bool need = startable(p) > p->idle && p->threads < p->max_threads;

	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (need)
		post_start(p);
	return 0;
}

enum weft__abandon weft__job_abandon(struct weft__job *j)
{
	struct weft__workers *p = j->pool;
	enum weft__abandon how = WEFT__JOB_TOO_LATE;

	pthread_mutex_lock(&p->mu);
	switch (atomic_load_explicit(&j->state, memory_order_relaxed)) {
	case WEFT__JOB_QUEUED:
		weft__list_del(&j->link);
		p->queued[j->cls]--;
		how = WEFT__JOB_TAKEN_BACK;
		break;
	case WEFT__JOB_RUNNING:
		if (!j->drop)
			break; /* it must finish: its waiter waits */
		atomic_store_explicit(&j->state, WEFT__JOB_ABANDONED, memory_order_relaxed);
		if (p->abandoned < ABANDONED_MAX) {
			p->abandoned++;
			p->running[j->cls]--; /* its class may start another */
			pthread_cond_signal(&p->cv);
		} else {
			j->kept_slot = true;
		}
		how = WEFT__JOB_LET_GO;
		break;
	default:
		break;
	}

	/* Its slot is free: a job queued behind it may start now, on a new thread if it must. */
	bool need =
	    how == WEFT__JOB_LET_GO && startable(p) > p->idle && p->threads < p->max_threads;

	pthread_mutex_unlock(&p->mu);
	if (need)
		post_start(p);
	return how;
}

void weft__workers_fini(struct weft_loop *l)
{
	struct weft__workers *p = l->workers;
	unsigned joinable = 0;

	if (!p)
		return;
	l->workers = NULL;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	for (unsigned i = 0; i < p->threads; i++) {
		struct worker *w = &p->w[i];

		if (w->cur && atomic_load_explicit(&w->cur->state, memory_order_relaxed) ==
				  WEFT__JOB_ABANDONED) {
			w->detached = true;
			p->refs++;
			pthread_detach(w->tid);
		} else {
			joinable++;
		}
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->threads && joinable; i++)
		if (!p->w[i].detached)
			pthread_join(p->w[i].tid, NULL);
	pthread_mutex_lock(&p->mu);

	bool last = --p->refs == 0;

	pthread_mutex_unlock(&p->mu);
	if (last)
		pool_free(p);
}
