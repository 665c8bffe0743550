/* SPDX-License-Identifier: MIT */
/*
 * The loop: configuration, create, run, destroy, stats, weft_main. One
 * tick, in order:
 *   1. run the records other threads (and this one) posted: finished
 *      worker jobs, completed waits, requests, weft_loop_post;
 *   2. run the fibers that are ready now, as one round (each runs until it
 *      parks, yields or returns; their operations pile up in the backend);
 *   3. if nothing can happen any more, return (remote.c says when a loop
 *      of a pool may);
 *   4. the backend's tick: submit the round's work and, if no fiber is
 *      ready, wait for a completion, a wake or the nearest timer, in one
 *      system call (one io_uring_enter); completions wake their fibers;
 *   5. fire the timers that are due.
 */
#include "types.h"
#include "accept.h"
#include "recvmulti.h"
#include "bufs.h"
#include "explain.h"
#include "fiber.h"
#include "inbox.h"
#include "loop.h"
#include "remote.h"
#include "sigwait.h"
#include "splice.h"
#include "stack.h"
#include "stackfault.h"
#include "workers.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_POSTS 65536

_Static_assert(sizeof(weft_config) == 96, "weft_config keeps its size: new fields take reserved");

static uint32_t env_ring_mode(void)
{
	const char *s = getenv("WEFT_RING_MODE");

	if (!s || !*s || !strcmp(s, "auto"))
		return WEFT_RING_AUTO;
	if (!strcmp(s, "defer"))
		return WEFT_RING_DEFER_TASKRUN;
	if (!strcmp(s, "coop"))
		return WEFT_RING_COOP_TASKRUN;
	if (!strcmp(s, "plain"))
		return WEFT_RING_PLAIN;
	return WEFT_RING_AUTO;
}

static uint32_t env_backend(void)
{
	const char *s = getenv("WEFT_BACKEND");

	if (s && !strcmp(s, "uring"))
		return WEFT_BACKEND_URING;
	if (s && !strcmp(s, "epoll"))
		return WEFT_BACKEND_EPOLL;
	return WEFT_BACKEND_AUTO;
}

void weft_config_init(weft_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->sq_entries = 256;
	cfg->ring_mode = env_ring_mode();
	cfg->timer_mode = WEFT_TIMERS_HEAP;
	cfg->stack_size = 64 * 1024;
	cfg->stack_guards = WEFT_STACK_GUARDS_AUTO;
	cfg->max_fibers = 4u << 20;
	cfg->offload_threads = 4;
	cfg->backend = env_backend();
	cfg->max_posts = DEFAULT_MAX_POSTS;
	cfg->recv_buffers = 1024;
	cfg->recv_buffer_size = 4096;

	const char *sqpoll = getenv("WEFT_SQPOLL");

	if (sqpoll && !strcmp(sqpoll, "1"))
		cfg->flags |= WEFT_CONFIG_SQPOLL;
}

static int check_config(weft_config *c)
{
	/* An op and its linked timeout take two SQEs at once: one slot could never hold them. */
	if (c->sq_entries < 2 || c->sq_entries > 32768 || (c->sq_entries & (c->sq_entries - 1)))
		return -EINVAL;
	/* The kernel's CQ holds at most 65536 (IORING_MAX_CQ_ENTRIES). */
	if (c->cq_entries == 0)
		c->cq_entries = c->sq_entries <= 8192 ? c->sq_entries * 8 : 65536;
	if (c->cq_entries < 2 * c->sq_entries || c->cq_entries > 65536 ||
	    (c->cq_entries & (c->cq_entries - 1)))
		return -EINVAL;
	if (c->ring_mode > WEFT_RING_PLAIN || c->timer_mode > WEFT_TIMERS_KERNEL)
		return -EINVAL;
	if (c->stack_size == 0 || c->stack_size > WEFT_STACK_SIZE_MAX || c->max_fibers == 0)
		return -EINVAL;
	if (c->offload_threads == 0 || c->offload_threads > 1024 || c->backend > WEFT_BACKEND_EPOLL)
		return -EINVAL;
	if ((c->flags & ~(WEFT_CONFIG_SQPOLL | WEFT_CONFIG_PIN | WEFT_CONFIG_MULTISHOT_RECV)) ||
	    ((c->flags & WEFT_CONFIG_SQPOLL) &&
	     (c->ring_mode == WEFT_RING_DEFER_TASKRUN || c->ring_mode == WEFT_RING_COOP_TASKRUN)))
		return -EINVAL;
	if (c->sqpoll_idle_ms == 0)
		c->sqpoll_idle_ms = 1000;
	if (c->max_posts == 0)
		c->max_posts = DEFAULT_MAX_POSTS;
	if (c->recv_buffers == 0)
		c->recv_buffers = 1024;
	if (c->recv_buffer_size == 0)
		c->recv_buffer_size = 4096;
	if (c->recv_buffers > 32768 || (c->recv_buffers & (c->recv_buffers - 1)) ||
	    c->recv_buffer_size < 64 || c->recv_buffer_size > (1u << 20))
		return -EINVAL;
	if (c->reserved32)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(c->reserved) / sizeof(c->reserved[0]); i++)
		if (c->reserved[i])
			return -EINVAL;
	return 0;
}

static bool is_one_of(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (!strcmp(s, *words))
			return true;
	return false;
}

/* A comma-separated list of numbers below 256. */
static bool is_op_list(const char *s)
{
	while (*s) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || v > 255 || (*end != ',' && *end != '\0'))
			return false;
		s = *end == ',' ? end + 1 : end;
	}
	return true;
}

/*
 * The environment variables weft reads (WEFT_RING_MODE, WEFT_SQPOLL,
 * WEFT_BACKEND, WEFT_WAKE, WEFT_DISABLE_OPS, WEFT_GUARD_MARKERS,
 * WEFT_POLL_FIRST, WEFT_MULTISHOT_ACCEPT, WEFT_MULTISHOT_RECV): a value
 * weft does not understand is refused rather than ignored, so that a typo
 * does not silently change nothing; a WEFT_* name weft does not read gets
 * one warning line per process.
 */
static int check_env(void)
{
	static const char *const modes[] = { "auto", "defer", "coop", "plain", NULL };
	static const char *const flag[] = { "0", "1", NULL };
	static const char *const backends[] = { "auto", "uring", "epoll", NULL };
	static const char *const wakes[] = { "auto", "msg_ring", "eventfd", NULL };
	static const char *const markers[] = { "auto", "off", NULL };
	static const char *const on_off[] = { "auto", "on", "off", NULL };
	static const char *const names[] = { "WEFT_BACKEND",	    "WEFT_RING_MODE",
					     "WEFT_SQPOLL",	    "WEFT_WAKE",
					     "WEFT_POLL_FIRST",	    "WEFT_MULTISHOT_ACCEPT",
					     "WEFT_MULTISHOT_RECV", "WEFT_GUARD_MARKERS",
					     "WEFT_DISABLE_OPS",    NULL };
	const char *s;

	weft__explain_env_unknown(names);
	if ((s = getenv("WEFT_RING_MODE")) && *s && !is_one_of(s, modes))
		return weft__explain_env("WEFT_RING_MODE", s, "auto, defer, coop or plain");
	if ((s = getenv("WEFT_SQPOLL")) && *s && !is_one_of(s, flag))
		return weft__explain_env("WEFT_SQPOLL", s, "0 or 1");
	if ((s = getenv("WEFT_BACKEND")) && *s && !is_one_of(s, backends))
		return weft__explain_env("WEFT_BACKEND", s, "auto, uring or epoll");
	if ((s = getenv("WEFT_WAKE")) && *s && !is_one_of(s, wakes))
		return weft__explain_env("WEFT_WAKE", s, "auto, msg_ring or eventfd");
	if ((s = getenv("WEFT_POLL_FIRST")) && *s && !is_one_of(s, markers))
		return weft__explain_env("WEFT_POLL_FIRST", s, "auto or off");
	if ((s = getenv("WEFT_MULTISHOT_ACCEPT")) && *s && !is_one_of(s, markers))
		return weft__explain_env("WEFT_MULTISHOT_ACCEPT", s, "auto or off");
	if ((s = getenv("WEFT_MULTISHOT_RECV")) && *s && !is_one_of(s, on_off))
		return weft__explain_env("WEFT_MULTISHOT_RECV", s, "auto, on or off");
	if ((s = getenv("WEFT_GUARD_MARKERS")) && *s && !is_one_of(s, markers))
		return weft__explain_env("WEFT_GUARD_MARKERS", s, "auto or off");
	if ((s = getenv("WEFT_DISABLE_OPS")) && !is_op_list(s))
		return weft__explain_env("WEFT_DISABLE_OPS", s,
					 "IORING_OP_* numbers separated by commas (e.g. 55,37)");
	return 0;
}

/*
 * io_uring, or epoll: as weft_config.backend asks, falling back from
 * io_uring to epoll only where io_uring is refused or missing.
 */
static int setup_backend(struct weft_loop *l)
{
	int rc;
	int err;

	if (l->cfg.backend == WEFT_BACKEND_EPOLL) {
		l->be = &weft__backend_epoll;
		rc = l->be->setup(l);
		if (rc < 0)
			weft__explain_note("epoll_create1", rc);
		else
			weft__explain_backend("this loop runs on epoll, as weft_config.backend (or "
					      "WEFT_BACKEND=epoll) asks.");
		return rc;
	}
	l->be = &weft__backend_uring;
	rc = l->be->setup(l);
	if (rc == 0) {
		weft__explain_backend("this loop runs on io_uring.");
		return 0;
	}

	const char *what = weft__explain_last(&err);

	if (err != rc)
		weft__explain_note(what = "io_uring_setup", rc);
	if (l->cfg.backend != WEFT_BACKEND_AUTO ||
	    (rc != -ENOSYS && rc != -EPERM && rc != -EACCES && rc != -ENOMEM) ||
	    strcmp(what ? what : "", "io_uring_setup"))
		return rc;

	/* io_uring is refused or missing here: say why, and run on epoll. */
	char why[300];

	snprintf(why, sizeof(why), "%s", weft_loop_explain(rc));
	l->be = &weft__backend_epoll;

	int erc = l->be->setup(l);

	if (erc < 0) {
		weft__explain_note("epoll_create1", erc);
		return erc;
	}
	weft__explain_note(NULL, 0);
	weft__explain_backend("io_uring_setup failed with %s, so this loop runs on epoll. Why, "
			      "and how to run on io_uring: %s",
			      strerrorname_np(-rc), why);
	return 0;
}

int weft_loop_create(weft_loop **out, const weft_config *cfg)
{
	if (!out)
		return -EINVAL;
	weft__explain_note(NULL, 0);

	int env = check_env();

	if (env < 0)
		return env;

	struct weft_loop *l = calloc(1, sizeof(*l));

	if (!l) {
		weft__explain_note("malloc", -ENOMEM);
		return -ENOMEM;
	}
	if (cfg)
		l->cfg = *cfg;
	else
		weft_config_init(&l->cfg);

	int rc = check_config(&l->cfg);

	if (rc < 0) {
		weft__explain_note("weft_config", rc);
		goto out_free;
	}
	weft__list_init(&l->all);
	atomic_init(&l->owner, weft__thread_id());
	rc = setup_backend(l);
	if (rc < 0)
		goto out_free;
	weft__stacks_init(&l->stacks, &l->cfg);
	l->stats.stack_size = l->stacks.pools[0].slot;
	weft__stack_segv_install();
	*out = l;
	return 0;

out_free:
	free(l);
	return rc;
}

const char *weft_loop_backend(const weft_loop *loop)
{
	return loop ? loop->be->name : "";
}

/* ASan needs the bounds of the thread's own stack to switch back to it. */
static void learn_sched_stack(struct weft_loop *l)
{
#ifdef WEFT_ASAN
	pthread_attr_t attr;
	void *addr;
	size_t size;

	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
		l->sched_stack = addr;
		l->sched_stack_size = size;
	}
	pthread_attr_destroy(&attr);
#else
	(void)l;
#endif
}

/* Ticks until no fiber can make progress, or the backend fails. */
static int run(struct weft_loop *l)
{
	int rc;

	for (;;) {
		/* The pool found itself quiet: what came since waits for the next run. */
		if (WEFT__UNLIKELY(l->quiet != NULL) && weft__remote_done(l, &rc))
			return rc;
		/* Posts of its own (a fiber posted to this loop) need no wake: look first. */
		if (!weft__inbox_empty(l))
			weft__remote_run_inbox(l);
		weft__fiber_run_round(l);

		bool ready = l->runq_head || !weft__inbox_empty(l);
		int64_t next = weft__fiber_timers_next(l);

		if (!ready && next == WEFT_FOREVER && l->inflight == 0 && l->owed == 0 &&
		    weft__remote_settled(l, &rc))
			return rc; /* 0, or -EDEADLK: every fiber waits for what cannot happen */
		rc = l->be->tick(l, !ready, next);
		if (rc < 0)
			return rc;
		if (next != WEFT_FOREVER)
			weft__fiber_timers_fire(l, l->be->now(l));
	}
}

/* Run @l on this thread as the loop of its fibers (weft_loop_run, and destroy). */
static int run_here(struct weft_loop *l)
{
	struct weft_loop *outer = weft__tls_loop;
	int rc;

	weft__tls_loop = l;
	l->tsan_sched = weft__tsan_current();
	learn_sched_stack(l);
	rc = run(l);
	weft__tls_loop = outer;
	return rc;
}

int weft_loop_run(weft_loop *l)
{
	if (!l)
		return -EINVAL;
	if (weft__tls_loop)
		return -EBUSY;
	/* One run at a time: two threads racing to run a fresh loop, one gets -EBUSY. */
	if (atomic_exchange_explicit(&l->running, true, memory_order_acquire))
		return -EBUSY;
	if (atomic_load_explicit(&l->owner, memory_order_relaxed) != weft__thread_id()) {
		/* Before its first run a loop moves to the thread that runs it; then it stays. */
		if (l->ran) {
			atomic_store_explicit(&l->running, false, memory_order_release);
			weft__explain_note("weft_loop_run", -EXDEV);
			return -EXDEV;
		}
		atomic_store_explicit(&l->owner, weft__thread_id(), memory_order_relaxed);
	}
	l->ran = true;

	int rc = run_here(l);

	atomic_store_explicit(&l->running, false, memory_order_release);
	return rc;
}

/* Cancel every fiber of @l. */
static void cancel_all(struct weft_loop *l)
{
	struct weft__list *n;

	weft__list_for_each(n, &l->all)
	{
		weft__fiber_cancel(weft__container_of(n, struct weft_fiber, all));
	}
}

void weft__loop_shutdown(struct weft_loop *l, struct weft__quiet *q)
{
	if (atomic_exchange_explicit(&l->running, true, memory_order_acquire))
		WEFT__BUG(l->cur, "weft_loop_destroy called on a running loop");
	/* Posts that got in before the close run (their fibers see the cancel below). */
	weft__remote_close(l);
	if (!weft__inbox_empty(l)) {
		struct weft_loop *outer = weft__tls_loop;

		weft__tls_loop = l;
		weft__remote_run_inbox(l);
		weft__tls_loop = outer;
	}
	l->destroying = true;
	/* Listeners' multishot accepts end: their last CQEs come in the runs below. */
	/* So do the multishot receives; what they queued goes back to the buffers. */
	if (l->acceptors || l->rx_cap) {
		struct weft_loop *outer = weft__tls_loop;

		weft__tls_loop = l;
		weft__accept_shutdown(l);
		weft__recvm_shutdown(l);
		weft__tls_loop = outer;
	}
	l->quiet = q;
	l->quiet_idle = false;
	/*
	 * Cancel what is left and let it unwind. A fiber that ignores -ECANCELED
	 * and blocks again gets -ECANCELED again; one that spins without
	 * blocking keeps destroy waiting, as it would keep run waiting. In a
	 * pool, every loop runs until the whole pool is quiet, so that requests
	 * between them are answered.
	 */
	for (int pass = 0; pass < 1000 && (q || l->live > 0 || l->inflight > 0); pass++) {
		cancel_all(l);
		run_here(l);
		if (q)
			break; /* the pool is quiet: what is left can never run */
	}
	l->quiet = NULL;
	atomic_store_explicit(&l->running, false, memory_order_release);
}

void weft__loop_free(struct weft_loop *l)
{
	struct weft_loop *outer = weft__tls_loop;

	/* A waker on another thread may still be in its push's wake-up (inbox.h). */
	while (atomic_load_explicit(&l->pushing, memory_order_seq_cst) > 0)
		sched_yield();

	/* From now on a release of a lent buffer from another thread frees it there. */
	weft__bufs_orphan(l);
	/* Records that came after the last run (a joined fiber sent home to be freed). */
	weft__tls_loop = l;
	if (!weft__inbox_empty(l))
		weft__remote_run_inbox(l);
	weft__tls_loop = outer;
#if WEFT_STACK_CENSUS
	weft__census_report(l);
#endif
	weft__accept_fini(l);
	weft__recvm_fini(l);
	weft__sigwait_fini(l);
	weft__workers_fini(l);
	weft__pipes_free(l);
	l->be->teardown(l);
	weft__bufs_fini(l);
	weft__heap_fini(&l->timers);
	weft__stacks_fini(&l->stacks);
	free(l);
	weft__stack_segv_release();
}

void weft_loop_destroy(weft_loop *l)
{
	if (!l)
		return;
	weft__loop_shutdown(l, NULL);
	weft__loop_free(l);
}

static void fill_stats(weft_loop *l, weft_stats *out)
{
	*out = l->stats;
	out->fibers = l->live;
	out->inflight = l->inflight;
	out->stacks = l->stacks.mapped;
	out->stacks_guarded = l->stacks.guarded;
	out->stacks_trimmed = l->stacks.trimmed;
	out->stacks_unguarded = l->stacks.unguarded;
	out->timers = l->timers.len;
	l->be->stats(l, out);
}

void weft_loop_stats(weft_loop *l, weft_stats *out)
{
	if (l && out)
		fill_stats(l, out);
}

/*
 * The weft_loop_stats of programs linked against 0.4 and before, whose
 * weft_stats ended at bufs_fallbacks: only that much of it is written.
 * (Exported as weft_loop_stats@WEFT_0.1; its own name stays local, weft.map.)
 */
#define STATS_V1_SIZE offsetof(weft_stats, multishot_rearms)
__attribute__((visibility("default"))) void weft__loop_stats_v1(weft_loop *l, weft_stats *out);
__asm__(".symver weft__loop_stats_v1, weft_loop_stats@WEFT_0.1");

void weft__loop_stats_v1(weft_loop *l, weft_stats *out)
{
	weft_stats all;

	if (!l || !out)
		return;
	fill_stats(l, &all);
	memcpy(out, &all, STATS_V1_SIZE);
}

weft_loop *weft_loop_current(void)
{
	return weft__tls_loop;
}

int weft_main(weft_fn fn, void *arg)
{
	return weft_main_config(NULL, fn, arg);
}

int weft_main_config(const weft_config *cfg, weft_fn fn, void *arg)
{
	weft_loop *l;
	weft_fiber *f;
	int result = 0;

	if (!fn)
		return -EINVAL;
	if (weft__tls_loop)
		return -EBUSY;

	int rc = weft_loop_create(&l, cfg);

	if (rc < 0)
		return rc;
	rc = weft__fiber_spawn(l, fn, arg, false, &f);
	if (rc < 0)
		weft__explain_note("weft_spawn", rc);
	if (rc == 0)
		rc = weft_loop_run(l);
	if (rc == 0) {
		result = f->result;
		weft__fiber_release(l, f);
	}
	weft_loop_destroy(l);
	return rc < 0 ? rc : result;
}
