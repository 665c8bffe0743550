/* SPDX-License-Identifier: MIT */
/*
 * Pools of loops: one loop per thread, work posted between them.
 *
 * A pool creates loop 0 on the caller's thread and every other loop on a
 * thread of its own (an io_uring ring set up SINGLE_ISSUER belongs to the
 * thread that runs it). weft_pool_run starts fn on every loop and returns
 * when the pool is quiet: no loop can make progress and nothing is on its
 * way to any of them (remote.c); then 0, or -EDEADLK if fibers are left.
 *
 * Destroy goes in two halves over all loops at once: every inbox is closed,
 * every loop shuts down (cancels its fibers, answers the others' requests)
 * until the whole pool is quiet again, and only then is any loop freed, so
 * that a fiber unwinding on one loop never reaches a sibling already gone.
 */
#include "types.h"
#include "explain.h"
#include "fiber.h"
#include "group.h"
#include "loop.h"
#include "remote.h"
#include "workers.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

enum { CMD_NONE, CMD_RUN, CMD_SHUTDOWN, CMD_FREE };

struct member {
	struct weft_pool *pool;
	unsigned index;
	pthread_t tid;
	bool started;
	int cpu; /* -1: not pinned */
	weft_loop *loop;
	int create_rc;
	const char *create_what; /* what failed, as the member thread's note said */
	int run_rc;
	int result;
	unsigned cmd_seen;
};

struct weft_pool {
	unsigned n;
	struct member *m;
	weft_config cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned cmd;	  /* what the threads are to do next */
	unsigned cmd_gen; /* bumped with every command */
	unsigned finished;
	weft_fn fn;
	void *arg;
	struct weft__quiet quiet;
	struct weft_loop **loops; /* the loops that exist, for the quiescence */
};

/* ---- CPUs ---------------------------------------------------------------------------- */

/* The i-th CPU this process may run on; -1 if it cannot be told. */
static int nth_cpu(unsigned i)
{
	cpu_set_t set;
	unsigned count, k = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -1;
	count = (unsigned)CPU_COUNT(&set);
	if (count == 0)
		return -1;
	i %= count;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set) && k++ == i)
			return c;
	return -1;
}

static unsigned cpus_allowed(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	return (unsigned)CPU_COUNT(&set) ? (unsigned)CPU_COUNT(&set) : 1;
}

static void pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ---- the member threads ------------------------------------------------------------- */

/* Start fn on the member's loop and run it until the pool is quiet (on its thread). */
static void run_member(struct weft_pool *p, struct member *m)
{
	weft_fiber *f = NULL;
	struct weft_loop *l = m->loop;
	int rc = weft__fiber_spawn(l, p->fn, p->arg, false, &f);

	m->result = 0;
	if (rc < 0)
		weft__explain_note("weft_spawn", rc);
	l->quiet = &p->quiet;
	l->quiet_idle = false;
	/* Without its fiber the loop still runs: it must count itself idle. */
	m->run_rc = weft_loop_run(l);
	if (rc < 0)
		m->run_rc = rc;
	l->quiet = NULL;
	if (f && f->state == WEFT__FIBER_DONE) {
		m->result = f->result;
		weft__fiber_release(l, f);
	}
}

/* Make the member's loop, a loop of @p (on the member's thread, or loop 0's). */
static void make_member(struct weft_pool *p, struct member *m)
{
	int err;

	pin_self(m->cpu);
	m->create_rc = weft_loop_create(&m->loop, &p->cfg);
	if (m->create_rc < 0) {
		m->create_what = weft__explain_last(&err);
		m->loop = NULL;
		return;
	}
	m->loop->pool = p;
	m->loop->pool_index = m->index;
	m->loop->flight = &p->quiet.flight;
	m->loop->outside = &p->quiet.outside;
}

static void member_do(struct weft_pool *p, struct member *m, unsigned cmd)
{
	switch (cmd) {
	case CMD_RUN:
		run_member(p, m);
		break;
	case CMD_SHUTDOWN:
		weft__loop_shutdown(m->loop, &p->quiet);
		break;
	case CMD_FREE:
		weft__loop_free(m->loop);
		m->loop = NULL;
		break;
	default:
		break;
	}
}

static void *member_thread(void *arg)
{
	struct member *m = arg;
	struct weft_pool *p = m->pool;

	make_member(p, m);
	pthread_mutex_lock(&p->mu);
	p->finished++;
	pthread_cond_broadcast(&p->cv);
	for (;;) {
		while (p->cmd_gen == m->cmd_seen)
			pthread_cond_wait(&p->cv, &p->mu);
		m->cmd_seen = p->cmd_gen;

		unsigned cmd = p->cmd;

		pthread_mutex_unlock(&p->mu);
		if (m->loop)
			member_do(p, m, cmd);
		if (cmd == CMD_FREE)
			return NULL;
		pthread_mutex_lock(&p->mu);
		p->finished++;
		pthread_cond_broadcast(&p->cv);
	}
}

/* Tell the threads @cmd; they report back through finished. */
static void command(struct weft_pool *p, unsigned cmd)
{
	pthread_mutex_lock(&p->mu);
	p->finished = 0;
	p->cmd = cmd;
	p->cmd_gen++;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static void wait_finished(struct weft_pool *p, unsigned count)
{
	pthread_mutex_lock(&p->mu);
	while (p->finished < count)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

/* ---- create, run, destroy ------------------------------------------------------------ */

static struct weft_pool *pool_new(unsigned nloops, const weft_config *cfg)
{
	struct weft_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->n = nloops;
	p->m = calloc(nloops, sizeof(*p->m));
	p->loops = calloc(nloops, sizeof(*p->loops));
	if (!p->m || !p->loops) {
		free(p->m);
		free(p->loops);
		free(p);
		return NULL;
	}
	if (cfg)
		p->cfg = *cfg;
	else
		weft_config_init(&p->cfg);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	return p;
}

/* Start the member threads; each makes its loop. Return: 0 or the first failure, noted. */
static int start_members(struct weft_pool *p)
{
	unsigned started = 0;
	int rc = 0;

	for (unsigned i = 1; i < p->n; i++) {
		rc = weft__thread_start(&p->m[i].tid, NULL, member_thread, &p->m[i]);
		if (rc < 0) {
			weft__explain_note("pthread_create", rc);
			break;
		}
		p->m[i].started = true;
		started++;
	}
	wait_finished(p, started);
	for (unsigned i = 1; i < p->n && rc == 0; i++) {
		if (p->m[i].create_rc < 0) {
			rc = p->m[i].create_rc;
			weft__explain_note(p->m[i].create_what, rc); /* on the caller's thread */
		}
	}
	return rc;
}

int weft_pool_create(weft_pool **out, unsigned nloops, const weft_config *cfg)
{
	if (!out || nloops > 4096)
		return -EINVAL;
	if (weft__tls_loop)
		return -EBUSY; /* loop 0 runs on this thread: not from inside a fiber */
	if (nloops == 0)
		nloops = cpus_allowed();

	struct weft_pool *p = pool_new(nloops, cfg);

	if (!p)
		return -ENOMEM;

	bool pin = p->cfg.flags & WEFT_CONFIG_PIN;

	p->cfg.flags &= ~WEFT_CONFIG_PIN;
	for (unsigned i = 0; i < nloops; i++)
		p->m[i] = (struct member){ .pool = p, .index = i, .cpu = pin ? nth_cpu(i) : -1 };
	make_member(p, &p->m[0]);

	int rc = p->m[0].loop ? start_members(p) : p->m[0].create_rc;

	if (rc < 0) {
		weft_pool_destroy(p);
		return rc;
	}
	for (unsigned i = 0; i < nloops; i++)
		p->loops[i] = p->m[i].loop;
	p->quiet.loops = p->loops;
	p->quiet.n = nloops;
	*out = p;
	return 0;
}

unsigned weft_pool_size(const weft_pool *p)
{
	return p ? p->n : 0;
}

weft_loop *weft_pool_loop(weft_pool *p, unsigned i)
{
	return p && i < p->n ? p->m[i].loop : NULL;
}

int weft_pool_run(weft_pool *p, weft_fn fn, void *arg)
{
	if (!p || !fn)
		return -EINVAL;
	if (weft__tls_loop)
		return -EBUSY;
	p->fn = fn;
	p->arg = arg;
	weft__quiet_start(&p->quiet);
	command(p, CMD_RUN);
	run_member(p, &p->m[0]);
	wait_finished(p, p->n - 1);

	for (unsigned i = 0; i < p->n; i++)
		if (p->m[i].run_rc < 0)
			return p->m[i].run_rc;
	for (unsigned i = 0; i < p->n; i++)
		if (p->m[i].result < 0)
			return p->m[i].result;
	return 0;
}

/* On each loop: cancel every fiber there (posted by weft_pool_cancel). */
static int cancel_here(void *arg)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft__list *n;

	(void)arg;
	weft__list_for_each(n, &l->all)
	{
		struct weft_fiber *f = weft__container_of(n, struct weft_fiber, all);

		if (f != l->cur)
			weft__fiber_cancel(f);
	}
	return 0;
}

void weft_pool_cancel(weft_pool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->n; i++)
		if (p->m[i].loop)
			(void)weft__remote_post(p->m[i].loop, cancel_here, NULL);
}

/* Shut every loop down together, until the pool is quiet (members on their threads). */
static void shutdown_all(struct weft_pool *p, unsigned threads)
{
	unsigned n = 0;

	for (unsigned i = 0; i < p->n; i++)
		if (p->m[i].loop) {
			weft__remote_close(p->m[i].loop);
			p->loops[n++] = p->m[i].loop;
		}
	p->quiet.loops = p->loops;
	p->quiet.n = n;
	weft__quiet_start(&p->quiet);
	command(p, CMD_SHUTDOWN);
	if (p->m[0].loop)
		weft__loop_shutdown(p->m[0].loop, &p->quiet);
	wait_finished(p, threads);
}

void weft_pool_destroy(weft_pool *p)
{
	unsigned threads = 0;

	if (!p)
		return;
	for (unsigned i = 1; i < p->n; i++)
		threads += p->m[i].started;
	shutdown_all(p, threads);
	command(p, CMD_FREE);
	for (unsigned i = 1; i < p->n; i++)
		if (p->m[i].started)
			pthread_join(p->m[i].tid, NULL);
	if (p->m[0].loop)
		weft__loop_free(p->m[0].loop);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->loops);
	free(p->m);
	free(p);
}

int weft_main_pool(unsigned nloops, weft_fn fn, void *arg)
{
	weft_pool *p;
	int rc;

	if (!fn)
		return -EINVAL;
	rc = weft_pool_create(&p, nloops, NULL);
	if (rc < 0)
		return rc;
	rc = weft_pool_run(p, fn, arg);
	weft_pool_destroy(p);
	return rc;
}

int weft_loop_index(void)
{
	struct weft_loop *l = weft__tls_loop;

	return l && l->pool ? (int)l->pool_index : 0;
}

/* ---- gather spread over the pool ------------------------------------------------------ */

int weft_pool_gather(weft_pool *p, weft_call *calls, size_t n)
{
	struct weft_loop *l = weft__tls_loop;
	unsigned nl;

	if (!p)
		return -EINVAL;
	if (!l || !l->cur)
		return -EPERM;
	if (l->pool != p)
		return -EXDEV;
	nl = n < p->n ? (unsigned)(n ? n : 1) : p->n;

	/* Call i on loop (this loop's index + i) mod size: loops[] starts with this one. */
	struct weft_loop **loops = malloc(nl * sizeof(*loops));

	if (!loops)
		return -ENOMEM;
	for (unsigned k = 0; k < nl; k++)
		loops[k] = p->m[(l->pool_index + k) % p->n].loop;

	int rc = weft__gather(calls, n, loops, nl);

	free(loops);
	return rc;
}
