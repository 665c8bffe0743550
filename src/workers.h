/* SPDX-License-Identifier: MIT */
/*
 * The one worker pool of a loop (workers.c): threads that run blocking
 * work for the loop, made at its first job and bounded. Its jobs: offload
 * calls, the epoll backend's file and blocking operations, operations a
 * kernel lacks the opcode of, and name resolution. Every thread weft
 * starts comes from weft__thread_start, which blocks signals in it.
 */
#ifndef WEFT_WORKERS_H
#define WEFT_WORKERS_H

#include "types.h"

#include <pthread.h>

#pragma GCC visibility push(hidden)

/* What a job is, for the bound on how many run at once. */
enum weft__job_class {
	WEFT__JOB_OFFLOAD, /* weft_offload: at most weft_config.offload_threads at once */
	WEFT__JOB_IO,	   /* operations and name resolution: at most iowq_bounded (16) */
	WEFT__JOB_CLASSES
};

enum weft__job_state {
	WEFT__JOB_QUEUED,
	WEFT__JOB_RUNNING,
	WEFT__JOB_DONE,	     /* run; done() is called, or was */
	WEFT__JOB_ABANDONED, /* its waiter left: drop() releases what run() made */
};

struct weft__workers;

/* A job, owned by whoever submits it until done() or drop(). */
struct weft__job {
	struct weft__list link;		   /* on the queue */
	void (*run)(struct weft__job *j);  /* on a worker thread */
	void (*done)(struct weft__job *j); /* after run (worker thread), or with err instead */
	void (*drop)(struct weft__job *j); /* after run of an abandoned job (worker thread) */
	int err;	   /* why it never ran (no thread could start): done() sees it */
	uint8_t cls;	   /* enum weft__job_class */
	bool kept_slot;	   /* abandoned while running, still in its class's count */
	_Atomic int state; /* enum weft__job_state */
	struct weft__workers *pool;
};

/*
 * Queue @j (run, done, cls set; drop too if it may be abandoned) on @l's
 * pool. The loop's thread, in a fiber or not. Return: 0 or -ENOMEM.
 */
int weft__job_submit(struct weft_loop *l, struct weft__job *j);

/* What weft__job_abandon did. */
enum weft__abandon {
	WEFT__JOB_TAKEN_BACK, /* it never ran: the caller owns it again, done() never comes */
	WEFT__JOB_LET_GO,     /* it runs: drop() comes instead of done(), on the worker */
	WEFT__JOB_TOO_LATE,   /* it has run: done() comes, or came */
};
/* The loop's thread: stop waiting for @j. */
enum weft__abandon weft__job_abandon(struct weft__job *j);

/*
 * Stop the pool (weft_loop_destroy, once no job is waited for): idle
 * workers end and are joined; one still running an abandoned job finishes
 * it on its own and frees what is left.
 */
void weft__workers_fini(struct weft_loop *l);

/*
 * pthread_create with every signal blocked in the new thread: signals
 * belong to the threads of the program, not to weft's. Call it on a
 * thread's own stack, not a fiber's (it takes about 2 KiB). Return: 0 or
 * -errno.
 */
int weft__thread_start(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

#pragma GCC visibility pop

#endif
