/* SPDX-License-Identifier: MIT */
/*
 * weft_offload: run a blocking function on the loop's worker pool while the
 * fiber waits (asyncio.to_thread). The job record lives on the fiber's
 * stack, and the fiber does not leave weft_offload before its job is done,
 * cancelled or not (the function may use memory of that stack). The
 * worker completes the fiber's wait (a post to its loop).
 *
 * The abandonable kind (name resolution: a resolver that never answers must
 * not hold a fiber past its deadline) lives on the heap instead: a fiber
 * whose wait ends early lets it go, and the worker, when the function
 * returns, drops what it made and frees the record.
 */
#include "offload.h"
#include "fiber.h"
#include "wait.h"
#include "workers.h"

#include <stdlib.h>

struct job {
	struct weft__job job;
	weft_fn fn;
	void *arg;
	int result;
	struct weft__waiter w; /* the fiber's wait: OWED, and uninterrupted */
};

static void job_run(struct weft__job *jj)
{
	struct job *j = weft__container_of(jj, struct job, job);

	j->result = j->fn(j->arg);
}

static void job_done(struct weft__job *jj)
{
	struct job *j = weft__container_of(jj, struct job, job);

	weft__waiter_wake(&j->w, jj->err);
}

int weft_offload(weft_fn fn, void *arg, int *result)
{
	struct weft_fiber *self;
	int rc = fn ? weft__fiber_check(&self) : -EINVAL;

	if (rc < 0)
		return rc;

	struct job j = { .job.run = job_run,
			 .job.done = job_done,
			 .job.cls = WEFT__JOB_OFFLOAD,
			 .fn = fn,
			 .arg = arg };

	/* A worker cannot be interrupted: a cancel only marks the fiber. */
	weft__waiter_init(&j.w, WEFT__WAIT_OWED);
	rc = weft__job_submit(self->loop, &j.job);
	if (rc < 0)
		return rc;
	rc = weft__waiter_wait(&j.w);
	if (rc < 0)
		return rc; /* fn never ran: no worker could be started */
	if (result)
		*result = j.result;
	return 0;
}

/* ---- jobs a fiber may stop waiting for ------------------------------------------ */

struct ajob {
	struct weft__job job;
	weft_fn fn;
	void (*drop)(void *arg);
	void *arg;
	struct weft__waiter *w; /* the fiber's, until it lets the job go */
};

static void ajob_run(struct weft__job *jj)
{
	struct ajob *j = weft__container_of(jj, struct ajob, job);

	j->fn(j->arg);
}

static void ajob_done(struct weft__job *jj)
{
	struct ajob *j = weft__container_of(jj, struct ajob, job);

	weft__waiter_wake(j->w, jj->err);
}

/* On the worker: the fiber let it go; release what fn made. */
static void ajob_drop(struct weft__job *jj)
{
	struct ajob *j = weft__container_of(jj, struct ajob, job);

	j->drop(j->arg);
	free(j);
}

static bool ajob_withdraw(struct weft__waiter *w)
{
	struct ajob *j = w->ctx;

	switch (weft__job_abandon(&j->job)) {
	case WEFT__JOB_TAKEN_BACK:
		j->drop(j->arg); /* it never ran */
		free(j);
		return true;
	case WEFT__JOB_LET_GO:
		return true; /* the worker drops it */
	default:
		return false; /* done: its completion is on the way */
	}
}

int weft__offload_abandonable(weft_fn fn, void (*drop)(void *arg), void *arg)
{
	struct weft_fiber *self;
	struct weft__waiter w;
	int rc = weft__fiber_check(&self);
	struct ajob *j = rc < 0 ? NULL : calloc(1, sizeof(*j));

	if (!j) {
		drop(arg);
		return rc < 0 ? rc : -ENOMEM;
	}
	*j = (struct ajob){ .job.run = ajob_run,
			    .job.done = ajob_done,
			    .job.drop = ajob_drop,
			    .job.cls = WEFT__JOB_IO,
			    .fn = fn,
			    .drop = drop,
			    .arg = arg,
			    .w = &w };
	weft__waiter_init(&w, WEFT__WAIT_OWED | WEFT__WAIT_EARLY);
	w.ctx = j;
	w.withdraw = ajob_withdraw;
	rc = weft__job_submit(self->loop, &j->job);
	if (rc < 0) {
		drop(arg);
		free(j);
		return rc;
	}
	rc = weft__waiter_wait(&w);
	if (!w.woken)
		return rc; /* let go: freed by its withdraw or by the worker */
	rc = j->job.err;
	if (rc < 0)
		drop(arg); /* it never ran */
	free(j);
	return rc;
}
