/* SPDX-License-Identifier: MIT */
/*
 * The stack pool: fiber stacks come in slabs (one mmap each, growing
 * geometrically) and are reused through a free list, never unmapped before
 * the loop is destroyed. Each stack's control block sits at its top (see
 * struct weft_fiber). The invariant: a stack on the free list belongs to no
 * fiber and no SQE.
 *
 * Overflow detection:
 *   - Guard pages. On Linux 6.13 and later a guard page is a marker in the
 *     page table (MADV_GUARD_INSTALL): it costs no memory mapping, so every
 *     stack gets one, installed 1024 at a time with process_madvise(). On
 *     older kernels a guard page is an mprotect()ed page that splits the
 *     mapping, and vm.max_map_count (65530 by default) stops that near 32k
 *     stacks, so only the first weft_config.stack_guards stacks get one. A
 *     fault in a guard page is reported naming the fiber (if the process has
 *     no SIGSEGV handler of its own).
 *   - Canaries. Every stack has a canary at its lowest usable word, and every
 *     switch checks it and the stack pointer. Every slab has a guard page
 *     below it, so an overflow never runs into memory that is not a stack.
 *   - One-page stacks (stack_size 4096, the million-fiber set-up) past the
 *     first stack_guards go unguarded into slabs backed by transparent huge
 *     pages, because a guard would break up the huge page (see below).
 *
 * Page costs on the virtual machines weft is measured on (bench/pagecost):
 * a first-touch fault of a 4 KiB page costs ~10-13 us; MADV_POPULATE_WRITE
 * costs ~2.5 us a page one call per page, ~0.8 us a page batched through
 * process_madvise(), and the first touch after it still ~1.7-5 us (the
 * hypervisor fills its own tables); a transparent huge page costs ~0.23 us
 * per 4 KiB once the host has backed the memory. So a new slab pre-faults the
 * top page of every stack in batches, and a slab of one-page stacks asks for
 * huge pages instead; reuse faults nothing.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* Linux 5.3, same number on every architecture */
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440 /* Linux 5.10 */
#endif
#define BATCH 1024 /* UIO_MAXIOV */

#define FIRST_SLAB 16
#define HUGE ((size_t)2 << 20) /* a transparent huge page on x86-64 and 4K-page aarch64 */
#define MAX_SLAB 4096

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

int weft__stacks_init(struct weft__stacks *s, const weft_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->page = (size_t)sysconf(_SC_PAGESIZE);
	s->slot = round_up(cfg->stack_size, s->page);
	if (s->slot < sizeof(struct weft_fiber) + 1024)
		s->slot = round_up(sizeof(struct weft_fiber) + 1024, s->page);
	s->guards_left = cfg->stack_guards;
	s->guards_wanted = cfg->stack_guards > 0;
	s->next_slab = FIRST_SLAB;
	s->populate = true;
	s->iov = malloc(BATCH * sizeof(*s->iov));
	s->batch = s->iov != NULL;
	s->markers = true; /* until the first slab's probe says otherwise */
	s->thp = s->page == 4096;
	s->canary = 0x5741524e5f574654ull ^ (uint64_t)(uintptr_t)s ^ (uint64_t)getpid() << 17;
	return 0;
}

/*
 * Give @advice for @count pages, one at @base + i * @stride + @off each:
 * through process_madvise() in batches where the kernel allows it (one
 * system call per 1024 pages), else one madvise() per page. 0 or -errno.
 */
static int advise_each(struct weft__stacks *s, char *base, size_t count, size_t stride, size_t off,
		       int advice)
{
	if (s->batch) {
		int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
		/* Made at loop creation: this may run on a one-page fiber stack. */
		struct iovec *iov = s->iov;
		size_t done = 0;

		while (pidfd >= 0 && iov && done < count) {
			size_t n = count - done < BATCH ? count - done : BATCH;

			for (size_t i = 0; i < n; i++) {
				iov[i].iov_base = base + (done + i) * stride + off;
				iov[i].iov_len = s->page;
			}
			if (syscall(SYS_process_madvise, pidfd, iov, n, advice, 0) !=
			    (long)(n * s->page))
				break;
			done += n;
		}
		if (pidfd >= 0)
			close(pidfd);
		if (done == count)
			return 0;
		/* Before 5.10, under seccomp, or an advice it does not take: go one by one. */
		s->batch = done > 0;
		base += done * stride;
		count -= done;
	}
	for (size_t i = 0; i < count; i++)
		if (madvise(base + i * stride + off, s->page, advice) != 0)
			return -errno;
	return 0;
}

/* Pre-fault the top page of each stack, where a fiber starts. Failure only costs faults. */
static void populate(struct weft__stacks *s, char *base, size_t count, size_t slot)
{
	if (!s->populate)
		return;
	if (slot == s->page) {
		if (madvise(base, count * slot, MADV_POPULATE_WRITE) != 0)
			s->populate = false; /* EINVAL before Linux 5.14 */
		return;
	}
	if (advise_each(s, base, count, slot, slot - s->page, MADV_POPULATE_WRITE) < 0)
		s->populate = false;
}

/* Carve @count stacks out of @base and push them on the free list. */
static void carve(struct weft__stacks *s, char *base, size_t count, size_t slot, bool guarded)
{
	for (size_t i = count; i-- > 0;) {
		char *lo = base + i * slot;
		char *end = lo + slot;
		struct weft_fiber *f =
		    (struct weft_fiber *)((uintptr_t)(end - sizeof(struct weft_fiber)) &
					  ~(uintptr_t)63);

		if (guarded)
			lo += s->page;
		memset(f, 0, sizeof(*f));
		f->stack_lo = lo;
		f->stack_top = (char *)((uintptr_t)f & ~(uintptr_t)15);
		f->guarded = guarded;
		f->vg_id = weft__vg_stack_register(lo, f->stack_top);
		/* A guarded stack needs no canary, and writing one would fault its page in. */
		if (!guarded)
			*(uint64_t *)lo = s->canary;
		f->next = s->free;
		s->free = f;
	}
}

/* Map a new slab; -ENOMEM if the kernel refuses. */
static void probe_markers(struct weft__stacks *s)
{
	char *p = mmap(NULL, s->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	s->markers = p != MAP_FAILED && madvise(p, s->page, MADV_GUARD_INSTALL) == 0;
	if (p != MAP_FAILED)
		munmap(p, s->page);
	s->probed = true;
}

/* Make the first page of each of @count slots of @base a guard page. */
static int install_guards(struct weft__stacks *s, char *base, size_t count, size_t slot)
{
	if (s->markers)
		return advise_each(s, base, count, slot, 0, MADV_GUARD_INSTALL);
	for (size_t i = 0; i < count; i++)
		if (mprotect(base + i * slot, s->page, PROT_NONE) != 0)
			return -ENOMEM; /* out of map count */
	return 0;
}

/* Map a new slab; -ENOMEM if the kernel refuses. */
static int grow(struct weft__stacks *s)
{
	if (!s->probed)
		probe_markers(s);

	/* Guard markers cost no mapping: every stack of more than a page gets one. */
	bool unlimited = s->markers && s->slot > s->page && s->guards_wanted;
	bool guarded = unlimited || s->guards_left > 0;
	size_t count = s->next_slab;
	size_t slot = s->slot + (guarded ? s->page : 0);

	if (guarded && !unlimited && count > s->guards_left)
		count = s->guards_left;

	/*
	 * Unguarded one-page stacks go into huge pages: whole ones, so the slab
	 * is a multiple of HUGE bytes and starts on a HUGE boundary (a
	 * misaligned slab leaves up to 2 MiB at each end in small pages).
	 */
	bool huge = !guarded && slot == s->page && s->thp;
	size_t per_huge = HUGE / slot;

	if (huge)
		count = round_up(count, per_huge);

	/* One extra page below the slab: the guard of its lowest stack. */
	size_t len = count * slot + s->page;
	size_t extra = huge ? HUGE : 0;
	char *map = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);

	if (map == MAP_FAILED)
		return -ENOMEM;
	if (huge) {
		/* Trim to [aligned - page, aligned + count * slot). */
		char *aligned = (char *)round_up((uintptr_t)map + s->page, HUGE);
		size_t head = (size_t)(aligned - s->page - map);

		if (head)
			munmap(map, head);
		if (extra - head)
			munmap(aligned + count * slot, extra - head);
		map = aligned - s->page;
	}

	struct weft__slab *slab = malloc(sizeof(*slab));

	if (!slab) {
		munmap(map, len);
		return -ENOMEM;
	}
	char *base = map + s->page;

	if (mprotect(map, s->page, PROT_NONE) != 0)
		goto out_unmap;
	if (guarded && install_guards(s, base, count, slot) < 0)
		goto out_unmap;

	*slab = (struct weft__slab){ .next = s->slabs, .base = map, .len = len, .count = count };
	s->slabs = slab;
	s->mapped += count;
	if (guarded) {
		s->guards_left -= unlimited || count > s->guards_left ? s->guards_left : count;
		s->guarded += count;
	}
	do
		s->next_slab *= 2;
	while (s->next_slab <= count && s->next_slab < MAX_SLAB);
	if (s->next_slab > MAX_SLAB)
		s->next_slab = MAX_SLAB;
	if (huge && madvise(base, count * slot, MADV_HUGEPAGE) == 0)
		s->huge += count; /* one fault per 2 MiB instead of one per stack */
	else {
		s->thp = s->thp && !huge; /* THP off in this kernel: no more aligning */
		populate(s, base, count, slot);
	}
	carve(s, base, count, slot, guarded);
	return 0;

out_unmap:
	munmap(map, len);
	free(slab);
	if (guarded && !unlimited) {
		/* The map count ran out: no more guard pages, fall back to canaries. */
		s->guards_left = 0;
		return grow(s);
	}
	if (guarded && s->markers) {
		s->markers = false; /* refused after the probe (seccomp?): use mprotect */
		return grow(s);
	}
	return -ENOMEM;
}

/*
 * Take a stack from the pool. Its control block is zeroed except for the
 * stack bounds, the guard flag and the valgrind id. NULL when out of memory.
 */
struct weft_fiber *weft__stack_alloc(struct weft__stacks *s)
{
	if (WEFT__UNLIKELY(!s->free) && grow(s) < 0)
		return NULL;

	struct weft_fiber *f = s->free;

	s->free = f->next;
	assert(f->state == WEFT__FIBER_FREE);
	char *lo = f->stack_lo;
	char *top = f->stack_top;
	unsigned vg_id = f->vg_id;
	bool guarded = f->guarded;

	memset(f, 0, offsetof(struct weft_fiber, stack_lo));
	f->stack_lo = lo;
	f->stack_top = top;
	f->vg_id = vg_id;
	f->guarded = guarded;
	f->asan_fake = NULL;
	weft__asan_unpoison(lo, (size_t)(top - lo));
#if WEFT_STACK_CENSUS
	memset(lo + 8, 0xa5, (size_t)(top - lo) - 8);
#endif
	return f;
}

/* Give a stack back. Its fiber must be DONE and owe the kernel nothing. */
void weft__stack_free(struct weft__stacks *s, struct weft_fiber *f)
{
	assert(f->state == WEFT__FIBER_DONE);
	f->state = WEFT__FIBER_FREE;
	f->next = s->free;
	s->free = f;
}

void weft__stacks_fini(struct weft__stacks *s)
{
	struct weft__slab *slab = s->slabs;

	while (slab) {
		struct weft__slab *next = slab->next;

		/*
		 * Clear what ASan knows of frames left on these stacks: whatever
		 * is mapped here next (an io_uring ring, mapped by a system call
		 * ASan does not see) must not inherit their redzones.
		 */
		weft__asan_unpoison(slab->base, slab->len);
		munmap(slab->base, slab->len);
		free(slab);
		slab = next;
	}
	s->slabs = NULL;
	s->free = NULL;
	free(s->iov);
	s->iov = NULL;
}

/*
 * Called when @f switches away: its canary must be intact and the stack
 * pointer inside its stack. A broken one means memory below the stack has
 * been written; nothing can be trusted after that, so abort.
 */
void weft__stack_check(const struct weft__stacks *s, const struct weft_fiber *f)
{
	char *sp = __builtin_frame_address(0);

	if (WEFT__UNLIKELY(!f->guarded && *(const uint64_t *)f->stack_lo != s->canary))
		WEFT__BUG(f,
			  "stack overflow: the canary at the bottom of its stack was overwritten; "
			  "raise weft_config.stack_size");
	if (WEFT__UNLIKELY(sp < f->stack_lo || sp > f->stack_top))
		WEFT__BUG(f, "stack overflow: the stack pointer left its stack; "
			     "raise weft_config.stack_size");
}

/* ---- reporting a fault in a guard page ---------------------------------- */

static struct sigaction old_segv;

static void put_str(const char *s)
{
	ssize_t rc = write(STDERR_FILENO, s, strlen(s));

	(void)rc;
}

static void put_uint(uint64_t v)
{
	char buf[24];
	char *p = buf + sizeof(buf);

	*--p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_str(p);
}

/*
 * SIGSEGV on the alternate stack: if the address is just below the running
 * fiber's stack, name the fiber and abort. Any other fault belongs to the
 * handler that was there before weft's: call it; if that was the default
 * action (or SIG_IGN, which cannot ignore a fault), put it back and return,
 * so the fault repeats and takes its normal course.
 */
static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *f = l ? l->cur : NULL;
	char *addr = si->si_addr;

	if (f && addr < f->stack_lo && addr >= f->stack_lo - 64 * 1024) {
		put_str("weft: fiber ");
		put_uint(f->id);
		put_str(" overflowed its stack of ");
		put_uint((uint64_t)(f->stack_top - f->stack_lo));
		put_str(
		    " bytes (fault in the guard page below it); raise weft_config.stack_size\n");
		abort();
	}
	if (old_segv.sa_flags & SA_SIGINFO) {
		old_segv.sa_sigaction(sig, si, uctx);
		return;
	}
	if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
		old_segv.sa_handler(sig);
		return;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
}

static bool segv_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == segv_handler;
}

/* Loops alive in the process: the handler stays installed while there is one. */
static pthread_mutex_t segv_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long segv_users;

/* Each thread's alternate signal stack, freed when the thread exits. */
static pthread_key_t altstack_key;
static pthread_once_t altstack_once = PTHREAD_ONCE_INIT;

static void altstack_free(void *mem)
{
	stack_t ss = { .ss_flags = SS_DISABLE };
	stack_t cur;

	/* Only if it is still ours: a program may have put its own since. */
	if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == mem && !(cur.ss_flags & SS_ONSTACK))
		sigaltstack(&ss, NULL);
	free(mem);
}

static void altstack_key_make(void)
{
	(void)pthread_key_create(&altstack_key, altstack_free);
}

/*
 * At loop creation: install the guard-page reporter in front of whatever
 * SIGSEGV handler the process has (it is chained to, see segv_handler), and
 * an alternate signal stack on this thread if it has none (the handler
 * cannot run on the stack that just overflowed).
 */
void weft__stack_segv_install(void)
{
	struct sigaction cur;
	stack_t ss;

	pthread_mutex_lock(&segv_mu);
	segv_users++;
	if (sigaction(SIGSEGV, NULL, &cur) == 0 && !segv_is_ours(&cur)) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = segv_handler;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		old_segv = cur;
		(void)sigaction(SIGSEGV, &sa, NULL);
	}
	pthread_mutex_unlock(&segv_mu);

	pthread_once(&altstack_once, altstack_key_make);
	if (pthread_getspecific(altstack_key) || sigaltstack(NULL, &ss) != 0 ||
	    !(ss.ss_flags & SS_DISABLE))
		return;

	size_t size = 64 * 1024;
	void *mem = malloc(size);

	if (!mem)
		return;
	ss = (stack_t){ .ss_sp = mem, .ss_size = size, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(altstack_key, mem) != 0) {
		ss.ss_flags = SS_DISABLE;
		sigaltstack(&ss, NULL);
		free(mem);
	}
}

/* At loop destruction: the last loop of the process puts the old handler back. */
void weft__stack_segv_release(void)
{
	struct sigaction cur;

	pthread_mutex_lock(&segv_mu);
	if (segv_users > 0 && --segv_users == 0 && sigaction(SIGSEGV, NULL, &cur) == 0 &&
	    segv_is_ours(&cur))
		(void)sigaction(SIGSEGV, &old_segv, NULL);
	pthread_mutex_unlock(&segv_mu);
}

#if WEFT_STACK_CENSUS
#include <stdio.h>

/* Bytes of @f's stack that were touched: the pattern stops at the deepest. */
void weft__census_record(struct weft_loop *l, const struct weft_fiber *f)
{
	const unsigned char *p = (const unsigned char *)f->stack_lo + 8;

	while (p < (const unsigned char *)f->stack_top && *p == 0xa5)
		p++;

	size_t used = (size_t)((const unsigned char *)f->stack_top - p);

	for (size_t i = 0; i < sizeof(l->census) / sizeof(l->census[0]); i++) {
		if (l->census[i].fn && l->census[i].fn != f->fn)
			continue;
		l->census[i].fn = f->fn;
		l->census[i].fibers++;
		if (used > l->census[i].deepest)
			l->census[i].deepest = used;
		return;
	}
}

void weft__census_report(struct weft_loop *l)
{
	for (size_t i = 0; i < sizeof(l->census) / sizeof(l->census[0]) && l->census[i].fn; i++)
		fprintf(stderr,
			"weft census: fn %p: %llu fibers, deepest stack use %zu of %zu bytes\n",
			(void *)(uintptr_t)l->census[i].fn, (unsigned long long)l->census[i].fibers,
			l->census[i].deepest, l->stacks.slot);
}
#endif
