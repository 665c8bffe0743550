/* SPDX-License-Identifier: MIT */
/*
 * The loop: create, run, destroy, stats, weft_main. One tick, in order:
 *   1. run the fibers that are ready, as one round (each runs until it
 *      parks, yields or returns; their operations pile up in the backend);
 *   2. the backend's tick: submit the round's work and, if no fiber is
 *      ready, wait for a completion or the nearest timer, in one system
 *      call (one io_uring_enter); completions wake their fibers;
 *   3. fire the timers that are due;
 *   4. take the work other threads posted (finished offload jobs).
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

_Noreturn void weft__bug(const struct weft_fiber *f, const char *file, int line, const char *what)
{
	if (f)
		fprintf(stderr, "weft: BUG in fiber %u (fn %p) at %s:%d: %s\n", f->id,
			(void *)(uintptr_t)f->fn, file, line, what);
	else
		fprintf(stderr, "weft: BUG in the scheduler at %s:%d: %s\n", file, line, what);
	abort();
}

const char *weft_version(void)
{
	return WEFT_VERSION_STRING;
}

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
	cfg->stack_guards = WEFT_STACK_GUARDS_ALL;
	cfg->max_fibers = 4u << 20;
	cfg->offload_threads = 4;
	cfg->backend = env_backend();

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
	if (c->stack_size == 0 || c->stack_size > ((size_t)1 << 30) || c->max_fibers == 0)
		return -EINVAL;
	if (c->offload_threads == 0 || c->offload_threads > 1024 || c->backend > WEFT_BACKEND_EPOLL)
		return -EINVAL;
	if ((c->flags & ~(WEFT_CONFIG_SQPOLL | WEFT_CONFIG_PIN)) ||
	    ((c->flags & WEFT_CONFIG_SQPOLL) &&
	     (c->ring_mode == WEFT_RING_DEFER_TASKRUN || c->ring_mode == WEFT_RING_COOP_TASKRUN)))
		return -EINVAL;
	if (c->sqpoll_idle_ms == 0)
		c->sqpoll_idle_ms = 1000;
	for (size_t i = 0; i < sizeof(c->reserved) / sizeof(c->reserved[0]); i++)
		if (c->reserved[i])
			return -EINVAL;
	return 0;
}

/* This thread's last refused system call or setting, for weft_loop_explain. */
static __thread const char *failed_call;
static __thread int failed_err;
static __thread char env_sentence[200];
static __thread char plain_sentence[200];

void weft__loop_note_failure(const char *syscall_name, int err)
{
	failed_call = syscall_name;
	failed_err = err;
}

static int env_refused(const char *name, const char *value, const char *accepted)
{
	snprintf(env_sentence, sizeof(env_sentence),
		 "the environment variable %s=%.40s is not understood: it takes %s; fix or "
		 "unset it.",
		 name, value, accepted);
	weft__loop_note_failure(name, -EINVAL);
	return -EINVAL;
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
 * WEFT_BACKEND, WEFT_WAKE, WEFT_DISABLE_OPS): a value weft does not understand is refused rather
 * than ignored, so that a typo does not silently change nothing.
 */
static int check_env(void)
{
	static const char *const modes[] = { "auto", "defer", "coop", "plain", NULL };
	static const char *const flag[] = { "0", "1", NULL };
	static const char *const backends[] = { "auto", "uring", "epoll", NULL };
	static const char *const wakes[] = { "auto", "msg_ring", "eventfd", NULL };
	const char *s;

	if ((s = getenv("WEFT_RING_MODE")) && *s && !is_one_of(s, modes))
		return env_refused("WEFT_RING_MODE", s, "auto, defer, coop or plain");
	if ((s = getenv("WEFT_SQPOLL")) && *s && !is_one_of(s, flag))
		return env_refused("WEFT_SQPOLL", s, "0 or 1");
	if ((s = getenv("WEFT_BACKEND")) && *s && !is_one_of(s, backends))
		return env_refused("WEFT_BACKEND", s, "auto, uring or epoll");
	if ((s = getenv("WEFT_WAKE")) && *s && !is_one_of(s, wakes))
		return env_refused("WEFT_WAKE", s, "auto, msg_ring or eventfd");
	if ((s = getenv("WEFT_DISABLE_OPS")) && !is_op_list(s))
		return env_refused("WEFT_DISABLE_OPS", s,
				   "IORING_OP_* numbers separated by commas (e.g. 55,37)");
	return 0;
}

static int setup_backend(struct weft_loop *l);

int weft_loop_create(weft_loop **out, const weft_config *cfg)
{
	if (!out)
		return -EINVAL;
	weft__loop_note_failure(NULL, 0);

	int env = check_env();

	if (env < 0)
		return env;

	struct weft_loop *l = calloc(1, sizeof(*l));

	if (!l) {
		weft__loop_note_failure("malloc", -ENOMEM);
		return -ENOMEM;
	}
	if (cfg)
		l->cfg = *cfg;
	else
		weft_config_init(&l->cfg);

	int rc = check_config(&l->cfg);

	if (rc < 0) {
		weft__loop_note_failure("weft_config", rc);
		goto out_free;
	}
	weft__list_init(&l->all);
	l->owner = pthread_self();
	rc = setup_backend(l);
	if (rc < 0)
		goto out_free;
	weft__stacks_init(&l->stacks, &l->cfg);
	l->stats.stack_size = l->stacks.slot;
	weft__stack_segv_install();
	*out = l;
	return 0;

out_free:
	free(l);
	return rc;
}

/* What weft_loop_explain(0) says: this thread's last loop's backend, and why. */
static __thread char backend_sentence[400];

/*
 * io_uring, or epoll: as weft_config.backend asks, falling back from
 * io_uring to epoll only where io_uring is refused or missing.
 */
static int setup_backend(struct weft_loop *l)
{
	int rc;

	if (l->cfg.backend == WEFT_BACKEND_EPOLL) {
		l->be = &weft__backend_epoll;
		rc = l->be->setup(l);
		if (rc < 0)
			weft__loop_note_failure("epoll_create1", rc);
		else
			snprintf(backend_sentence, sizeof(backend_sentence),
				 "this loop runs on epoll, as weft_config.backend (or "
				 "WEFT_BACKEND=epoll) asks.");
		return rc;
	}
	l->be = &weft__backend_uring;
	rc = l->be->setup(l);
	if (rc == 0) {
		snprintf(backend_sentence, sizeof(backend_sentence), "this loop runs on io_uring.");
		return 0;
	}
	if (failed_err != rc)
		weft__loop_note_failure("io_uring_setup", rc);
	if (l->cfg.backend != WEFT_BACKEND_AUTO ||
	    (rc != -ENOSYS && rc != -EPERM && rc != -EACCES && rc != -ENOMEM) ||
	    strcmp(failed_call ? failed_call : "", "io_uring_setup"))
		return rc;

	/* io_uring is refused or missing here: say why, and run on epoll. */
	char why[300];

	snprintf(why, sizeof(why), "%s", weft_loop_explain(rc));
	l->be = &weft__backend_epoll;

	int erc = l->be->setup(l);

	if (erc < 0) {
		weft__loop_note_failure("epoll_create1", erc);
		return erc;
	}
	weft__loop_note_failure(NULL, 0);
	snprintf(backend_sentence, sizeof(backend_sentence),
		 "io_uring_setup failed with %s, so this loop runs on epoll. Why, and how to "
		 "run on io_uring: %s",
		 strerrorname_np(-rc), why);
	return 0;
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

void weft__loop_post_remote(struct weft_loop *l, struct weft__remote *r)
{
	struct weft__remote *head = atomic_load_explicit(&l->inbox, memory_order_relaxed);

	do
		r->next = head;
	while (!atomic_compare_exchange_weak_explicit(&l->inbox, &head, r, memory_order_release,
						      memory_order_relaxed));
	if (!head)
		l->be->wake(l); /* the first since the loop last looked: it must look again */
}

/* Run what other threads posted, oldest first. */
static void take_inbox(struct weft_loop *l)
{
	struct weft__remote *r = atomic_exchange_explicit(&l->inbox, NULL, memory_order_acquire);
	struct weft__remote *fifo = NULL;

	while (r) {
		struct weft__remote *next = r->next;

		r->next = fifo;
		fifo = r;
		r = next;
	}
	while (fifo) {
		struct weft__remote *next = fifo->next; /* run() may free it */

		fifo->run(l, fifo);
		fifo = next;
	}
}

/* Ticks until no fiber is alive and the backend owes nothing. */
static int run(struct weft_loop *l)
{
	for (;;) {
		weft__fiber_run_round(l);
		if (l->live == 0 && l->inflight == 0 && (!l->pool || weft__pool_idle(l)))
			return 0;

		/* Posts of its own (a fiber posted to this loop) need no wake: look before waiting.
		 */
		bool wait =
		    l->runq_head == NULL && !atomic_load_explicit(&l->inbox, memory_order_relaxed);
		int64_t next = weft__timers_next(l);

		if (wait && next == WEFT_FOREVER && l->inflight == 0 && l->remote_expected == 0)
			return -EDEADLK; /* every fiber waits for something that cannot happen */

		int rc = l->be->tick(l, wait, next);

		if (rc < 0)
			return rc;
		if (next != WEFT_FOREVER)
			weft__timers_fire(l, l->be->now(l));
		if (atomic_load_explicit(&l->inbox, memory_order_relaxed))
			take_inbox(l);
	}
}

int weft_loop_run(weft_loop *l)
{
	if (!l)
		return -EINVAL;
	if (weft__tls_loop || l->running)
		return -EBUSY;
	if (!pthread_equal(l->owner, pthread_self())) {
		/* Before its first run a loop moves to the thread that runs it; then it stays. */
		if (l->ran) {
			weft__loop_note_failure("weft_loop_run", -EXDEV);
			return -EXDEV;
		}
		l->owner = pthread_self();
	}
	l->ran = true;
	weft__tls_loop = l;
	l->running = true;
	learn_sched_stack(l);
	l->tsan_sched = weft__tsan_current();

	int rc = run(l);

	l->running = false;
	weft__tls_loop = NULL;
	return rc;
}

void weft_loop_destroy(weft_loop *l)
{
	if (!l)
		return;
	if (l->running)
		WEFT__BUG(l->cur, "weft_loop_destroy called on a running loop");
	/*
	 * Close the inbox: posts that got in before run (their fibers see the
	 * cancel below), later ones fail -ESHUTDOWN.
	 */
	atomic_store_explicit(&l->closed, true, memory_order_seq_cst);
	while (atomic_load_explicit(&l->posting, memory_order_seq_cst) > 0)
		sched_yield();
	/* Destroyed from a fiber of another loop: that loop is this thread's again after. */
	struct weft_loop *outer = weft__tls_loop;

	if (atomic_load_explicit(&l->inbox, memory_order_acquire)) {
		weft__tls_loop = l;
		take_inbox(l);
		weft__tls_loop = outer;
	}
	l->destroying = true;
	/*
	 * Cancel what is left and let it unwind. A fiber that ignores -ECANCELED
	 * and blocks again gets -ECANCELED again; one that spins without
	 * blocking keeps destroy waiting, as it would keep run waiting.
	 */
	for (int pass = 0; pass < 1000 && (l->live > 0 || l->inflight > 0); pass++) {
		struct weft__list *n;

		weft__list_for_each(n, &l->all)
		{
			weft__fiber_cancel(weft__container_of(n, struct weft_fiber, all));
		}
		weft__tls_loop = l;
		l->running = true;
		l->tsan_sched = weft__tsan_current();
		run(l);
		l->running = false;
		weft__tls_loop = outer;
	}
#if WEFT_STACK_CENSUS
	weft__census_report(l);
#endif
	weft__fiber_free_all(l);
	weft__offload_fini(l);
	l->be->teardown(l);
	weft__heap_fini(&l->timers);
	weft__stacks_fini(&l->stacks);
	free(l);
	weft__stack_segv_release();
}

void weft_loop_stats(weft_loop *l, weft_stats *out)
{
	if (!l || !out)
		return;
	*out = l->stats;
	out->fibers = l->live;
	out->inflight = l->inflight;
	out->stacks = l->stacks.mapped;
	out->stacks_guarded = l->stacks.guarded;
	out->stacks_trimmed = l->stacks.trimmed;
	out->timers = l->timers.len;
	l->be->stats(l, out);
}

weft_loop *weft_loop_current(void)
{
	return weft__tls_loop;
}

int weft_main(weft_fn fn, void *arg)
{
	weft_loop *l;
	weft_fiber *f;
	int result = 0;

	if (!fn)
		return -EINVAL;
	if (weft__tls_loop)
		return -EBUSY;

	int rc = weft_loop_create(&l, NULL);

	if (rc < 0)
		return rc;
	rc = weft_spawn(l, fn, arg, &f);
	if (rc == 0)
		rc = weft_loop_run(l);
	if (rc == 0) {
		result = f->result;
		weft__fiber_release(l, f);
	}
	weft_loop_destroy(l);
	return rc < 0 ? rc : result;
}

static int read_sysctl(const char *path)
{
	char buf[16] = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;

	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

const char *weft_loop_explain(int err)
{
	if (err < 0 && err == failed_err && failed_call && !strncmp(failed_call, "WEFT_", 5))
		return env_sentence;
	if (err < 0 && err == failed_err && failed_call && !strcmp(failed_call, "io_uring_enter")) {
		switch (err) {
		case -EPERM:
		case -EACCES:
		case -ENOSYS:
			return "io_uring_enter was refused after the ring was set up: a seccomp "
			       "profile or an LSM allows io_uring_setup but not io_uring_enter; "
			       "allow io_uring_setup, io_uring_enter and io_uring_register for "
			       "this program.";
		default:
			return "io_uring_enter failed after the ring was set up, and the loop "
			       "stopped; see io_uring_enter(2).";
		}
	}
	if (err == 0)
		return backend_sentence[0] ? backend_sentence
					   : "no loop has been created on this thread yet.";
	if (err != failed_err || !failed_call) {
		/*
		 * Not an error of this thread's last weft_loop_create or
		 * weft_loop_run: weft_main hands back the fiber's own result
		 * the same way, and it must not read as a set-up failure.
		 */
		const char *what = err < 0 ? strerrordesc_np(-err) : NULL;

		snprintf(plain_sentence, sizeof(plain_sentence),
			 "%s (error %d): not an error of setting up weft's loop, but of the "
			 "program's own work.",
			 what ? what : "unknown error", err);
		return plain_sentence;
	}
	if (err == -ENOMEM && !strcmp(failed_call, "vm.max_map_count"))
		return "no stack could get a guard page: here each guard page costs two memory "
		       "mappings (Linux before 6.13, or WEFT_GUARD_MARKERS=off) and "
		       "vm.max_map_count is nearly used; "
		       "raise it ('sysctl -w vm.max_map_count=1048576' as root), or set "
		       "weft_config.stack_guards to the number of guarded stacks wanted (the "
		       "others go unguarded) or to 0.";
	if (err == -EXDEV && !strcmp(failed_call, "weft_loop_run"))
		return "weft_loop_run was called on another thread than the one that first ran the "
		       "loop: a loop stays on the thread of its first run (its io_uring ring is "
		       "bound to that thread then), so run it there again, or use weft_pool_create "
		       "for a loop per thread.";
	if (err == -ENOMEM && !strcmp(failed_call, "malloc"))
		return "out of memory while setting up weft's loop.";
	switch (err) {
	case -ENOSYS:
		return "io_uring is not available: the kernel lacks it (CONFIG_IO_URING, or older "
		       "than 5.11) or a seccomp profile hides it (Docker 25+ and Kubernetes "
		       "RuntimeDefault do); run on Linux 6.1+ or allow io_uring_setup, "
		       "io_uring_enter "
		       "and io_uring_register in the profile.";
	case -EPERM:
	case -EACCES:
		switch (read_sysctl("/proc/sys/kernel/io_uring_disabled")) {
		case 2:
			return "io_uring is switched off by the sysctl kernel.io_uring_disabled=2; "
			       "run 'sysctl -w kernel.io_uring_disabled=0' as root.";
		case 1:
			return "io_uring is limited by kernel.io_uring_disabled=1 to the group in "
			       "kernel.io_uring_group; add this user to that group or run 'sysctl "
			       "-w "
			       "kernel.io_uring_disabled=0' as root.";
		default:
			return "io_uring_setup was refused by a security policy (seccomp in a "
			       "container, or an LSM such as SELinux); allow io_uring_setup, "
			       "io_uring_enter and io_uring_register for this program.";
		}
	case -ENOMEM:
		return "the io_uring ring could not be allocated: on kernels before 5.12 it is "
		       "charged to RLIMIT_MEMLOCK, so raise 'ulimit -l' (or LimitMEMLOCK= in "
		       "systemd), or use a smaller weft_config.sq_entries.";
	case -EINVAL:
		return "the weft_config is invalid (sq_entries must be a power of two from 2 to "
		       "32768, cq_entries at least twice that), or the kernel rejects the "
		       "requested "
		       "WEFT_RING_MODE; use WEFT_RING_MODE=auto.";
	case -EMFILE:
	case -ENFILE:
		return "no file descriptor is free for the io_uring ring; raise 'ulimit -n'.";
	default:
		return "io_uring set-up failed with an unexpected error; see io_uring_setup(2).";
	}
}
