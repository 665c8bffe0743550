/* SPDX-License-Identifier: MIT */
/*
 * The stack pool: fiber stacks come in slabs (one mmap each, growing
 * geometrically) and are reused last in, first out through a free list, so
 * the stack a fiber gets is the one most recently warm. There is one pool
 * for the loop's stack_size and one per size class of weft_spawn_opts
 * (one page << k), each with its own slabs and free list; a stack goes back
 * to the pool it came from. A slab's fiber control blocks live in a
 * separate array, never in a stack slot: an overflow can reach memory below
 * its stack, never another fiber's saved registers. The invariant: a stack
 * on a free list belongs to no fiber and no SQE.
 *
 * Overflow detection (the rule the header states for stack_guards):
 *   - Guard pages. Every stack gets one unless stack_guards is 0. On Linux
 *     6.13 and later a guard page is a marker in the page table
 *     (MADV_GUARD_INSTALL): it costs no memory mapping, and markers are
 *     installed 1024 at a time with process_madvise(). On older kernels a
 *     guard page is an mprotect()ed page that splits the mapping in two, so
 *     guards are limited by a budget taken from vm.max_map_count (see
 *     map_budget), shared by every pool. Past it: with
 *     WEFT_STACK_GUARDS_ALL weft_spawn fails -ENOMEM; with the default
 *     (WEFT_STACK_GUARDS_AUTO) the later stacks go unguarded, counted in
 *     unguarded and said once per process on stderr; with a number N the
 *     stacks past N go unguarded by the program's choice. A fault in a
 *     guard page is reported naming the fiber (stackfault.c).
 *   - Red zones. An unguarded stack has REDZONE bytes of a canary just below
 *     it, checked with the stack pointer at every switch away from it. The
 *     red zone lies in the top page of the slot below (or a page of its own
 *     under the slab's lowest stack), a page that is touched anyway: the
 *     canary costs no page of its own, so unguarded and guarded stacks cost
 *     the same memory. A frame larger than the red zone can skip it without
 *     writing it: without a guard page that overflow writes into the top of
 *     the stack below, and is found only if it also breaks the canary or the
 *     stack pointer is still out of bounds at the next switch.
 *   - Every slab has an inaccessible page below it, so an overflow never
 *     runs into memory that is not a stack.
 *   - One-page stacks without guards (stack_size 4096, stack_guards 0: the
 *     million-fiber set-up) go into slabs backed by transparent huge pages,
 *     which a guard marker would break up.
 *
 * Memory: a stack costs the pages its fiber touched. The TRIM_WARM stacks
 * freed most recently (of any pool) keep them; once more than TRIM_WARM +
 * TRIM_BATCH freed stacks hold pages below their top page, the oldest are
 * trimmed back to their top page with MADV_DONTNEED (batched through
 * process_madvise where the kernel takes it), so a burst of deep fibers
 * does not hold its memory for ever.
 *
 * Page costs (bench_fibercost measures them in one run): the first touch
 * of a fresh 4 KiB page costs 1.4-2 us here, most of it the kernel zeroing
 * the page, and that is most of what a fiber that sleeps costs. Pre-faulting
 * the top page of each new stack in batches (MADV_POPULATE_WRITE through
 * process_madvise) was measured slower than the fibers' own faults
 * (fiber_ns 4153-4315 against 3004-3930, three turns each), so slabs are
 * not pre-faulted. A transparent huge page costs ~0.23 us per 4 KiB once the
 * host has backed the memory, hence the huge slabs of unguarded one-page
 * stacks.
 */
#include "stack.h"
#include "explain.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

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
#define REDZONE 64	       /* bytes of canary below an unguarded stack */
#define TRIM_WARM 64	       /* freed stacks kept with all their pages */
#define TRIM_BATCH 256	       /* cold stacks trimmed together */
#define HUGE ((size_t)2 << 20) /* a transparent huge page on x86-64 and 4K-page aarch64 */
#define MAX_SLAB 4096
#define CLASS_SLAB_BYTES ((size_t)256 << 20) /* a size class's largest slab, in bytes */

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

/* A pool of @slot-byte stacks whose slabs hold at most @max_slab stacks. */
static void pool_init(struct weft__stackpool *p, size_t slot, size_t max_slab)
{
	p->slot = slot;
	p->max_slab = max_slab < 1 ? 1 : max_slab;
	p->next_slab = FIRST_SLAB < p->max_slab ? FIRST_SLAB : p->max_slab;
}

void weft__stacks_init(struct weft__stacks *s, const weft_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->page = (size_t)sysconf(_SC_PAGESIZE);

	size_t slot = round_up(cfg->stack_size, s->page);

	if (slot < 1024 + REDZONE)
		slot = round_up(1024 + REDZONE, s->page);
	pool_init(&s->pools[0], slot, MAX_SLAB);
	/* The classes' slabs stay under CLASS_SLAB_BYTES: a 1 GiB class maps one stack at a time.
	 */
	for (size_t k = 0; k < WEFT__STACK_CLASSES; k++)
		pool_init(&s->pools[1 + k], s->page << k, CLASS_SLAB_BYTES / (s->page << k));
	s->guards_wanted = cfg->stack_guards > 0;
	s->guards_all = cfg->stack_guards == WEFT_STACK_GUARDS_ALL;
	s->guards_auto = cfg->stack_guards == WEFT_STACK_GUARDS_AUTO;
	s->guards_left = s->guards_all || s->guards_auto ? SIZE_MAX : cfg->stack_guards;
	s->iov = malloc(BATCH * sizeof(*s->iov));
	s->batch = s->iov != NULL;
	s->markers = true; /* until the first slab's probe says otherwise */
	s->thp = s->page == 4096;
	s->canary = 0x5741524e5f574654ull ^ (uint64_t)(uintptr_t)s ^ (uint64_t)getpid() << 17;
	weft__list_init(&s->cold);
	/* Tests of the mprotect path on kernels that have markers (loop.c checks the value). */
	const char *env = getenv("WEFT_GUARD_MARKERS");

	s->markers_off = env && !strcmp(env, "off");
}

/*
 * The pool for stacks of @size bytes (weft_spawn_opts.stack_size): 0 and the
 * loop's own size (in whole pages) are pool 0; any other size goes to the
 * class of the next power of two of pages. Return: the pool's index, or
 * -EINVAL past WEFT_STACK_SIZE_MAX.
 */
int weft__stack_pool_for(const struct weft__stacks *s, size_t size)
{
	if (size > WEFT_STACK_SIZE_MAX)
		return -EINVAL;
	if (size == 0 || round_up(size, s->page) == s->pools[0].slot)
		return 0;

	size_t pages = round_up(size, s->page) / s->page;
	int k = 0;

	while (((size_t)1 << k) < pages)
		k++;
	/* pages <= 2^30 / page, so the class is at most WEFT_STACK_SIZE_MAX too. */
	assert(k < WEFT__STACK_CLASSES);
	return 1 + k;
}

/*
 * Give @advice for the @n ranges of @iov (n <= BATCH): with one
 * process_madvise() where the kernel takes it (Linux 5.10; any advice for
 * the calling process since 6.13), else one madvise() each. 0 or -errno.
 */
static int advise_iov(struct weft__stacks *s, const struct iovec *iov, size_t n, int advice)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (s->batch) {
		int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
		long rc = pidfd < 0 ? -1 : syscall(SYS_process_madvise, pidfd, iov, n, advice, 0);

		if (pidfd >= 0)
			close(pidfd);
		if (rc == (long)total)
			return 0;
		/* Before 5.10, under seccomp, or an advice it does not take: go one by one. */
		if (rc <= 0)
			s->batch = false;
	}
	for (size_t i = 0; i < n; i++)
		if (madvise(iov[i].iov_base, iov[i].iov_len, advice) != 0)
			return -errno;
	return 0;
}

/* Give @advice for @count pages, one at @base + i * @stride + @off each. 0 or -errno. */
static int advise_each(struct weft__stacks *s, char *base, size_t count, size_t stride, size_t off,
		       int advice)
{
	/* Made at loop creation: this may run on a one-page fiber stack. */
	struct iovec *iov = s->iov;
	size_t done = 0;

	if (!iov) {
		for (size_t i = 0; i < count; i++)
			if (madvise(base + i * stride + off, s->page, advice) != 0)
				return -errno;
		return 0;
	}
	while (done < count) {
		size_t n = count - done < BATCH ? count - done : BATCH;
		int rc;

		for (size_t i = 0; i < n; i++) {
			iov[i].iov_base = base + (done + i) * stride + off;
			iov[i].iov_len = s->page;
		}
		rc = advise_iov(s, iov, n, advice);
		if (rc < 0)
			return rc;
		done += n;
	}
	return 0;
}

/* Carve the @count stacks of @slab (at @base), of pool @pool, and push them on its free list. */
static void carve(struct weft__stacks *s, unsigned pool, struct weft__slab *slab, char *base,
		  size_t slot, bool guarded)
{
	struct weft__stackpool *p = &s->pools[pool];

	for (size_t i = slab->count; i-- > 0;) {
		struct weft_fiber *f = &slab->fibers[i];
		char *lo = base + i * slot;
		char *end = lo + slot;

		if (guarded)
			lo += s->page;
		else
			end -= REDZONE; /* the red zone of the stack above */
		f->stack_lo = lo;
		f->stack_top = end;
		f->guarded = guarded;
		f->pool = (uint8_t)pool;
		f->vg_id = weft__vg_stack_register(lo, end);
		if (!guarded) /* in the page below, which is touched anyway */
			for (size_t w = 0; w < REDZONE / 8; w++)
				((uint64_t *)lo)[-1 - (ptrdiff_t)w] = s->canary;
		f->next = p->free;
		p->free = f;
	}
}

static void probe_markers(struct weft__stacks *s)
{
	char *p = mmap(NULL, s->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	s->markers =
	    !s->markers_off && p != MAP_FAILED && madvise(p, s->page, MADV_GUARD_INSTALL) == 0;
	if (p != MAP_FAILED)
		munmap(p, s->page);
	s->probed = true;
}

/* Read a small decimal file (a sysctl); -1 if it cannot be. */
static long read_long(const char *path)
{
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	long v = 0;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		v = v * 10 + (buf[i] - '0');
	return v;
}

/* Memory mappings the process has now (lines of /proc/self/maps); -1 if unknown. */
static long maps_in_use(struct weft__stacks *s)
{
	/* The iov array doubles as the buffer: this may run on a one-page stack. */
	char *buf = (char *)s->iov;
	size_t cap = BATCH * sizeof(*s->iov);
	int fd = buf ? open("/proc/self/maps", O_RDONLY | O_CLOEXEC) : -1;
	long lines = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, cap)) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	return n < 0 ? -1 : lines;
}

/*
 * How many more stacks may get an mprotect()ed guard page: each costs two
 * mappings (the guard splits the slab), and weft leaves the program an
 * eighth of vm.max_map_count (at least 4096) for its own mappings, of which
 * a stock kernel allows 65530: about 28,000 guarded stacks in all (28,628
 * measured here, with WEFT_GUARD_MARKERS=off).
 */
static size_t map_budget(struct weft__stacks *s)
{
	long max = read_long("/proc/sys/vm/max_map_count");
	long used = maps_in_use(s);
	long keep;

	if (max <= 0 || used < 0)
		return 0;
	keep = max / 8 > 4096 ? max / 8 : 4096;
	return max - keep - used > 4 ? (size_t)(max - keep - used - 4) / 2 : 0;
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

/* ---- telling a person, without printf (this may run on a one-page stack) ---- */

/* Append @str to the text at *@p, up to @end (one byte is kept for the NUL). */
static void cat(char **p, char *end, const char *str)
{
	while (*str && *p < end - 1)
		*(*p)++ = *str++;
	**p = '\0';
}

static void cat_uint(char **p, char *end, uint64_t v)
{
	char buf[24];
	char *d = buf + sizeof(buf);

	*--d = '\0';
	do {
		*--d = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	cat(p, end, d);
}

/*
 * The one line, once per process, that says the default config went past
 * the guard budget: what, why, and the two ways out. One write(2), so it
 * stays one line among other threads' output.
 */
static void say_unguarded_once(const struct weft__stacks *s)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	static char line[640];
	char *p = line;
	char *end = line + sizeof(line);
	long max = read_long("/proc/sys/vm/max_map_count");

	if (atomic_flag_test_and_set(&said))
		return;
	cat(&p, end, "weft: no memory mappings left for guard pages after ");
	cat_uint(&p, end, s->guarded);
	cat(&p, end,
	    " guarded fiber stacks: before Linux 6.13 each guard page costs two "
	    "mappings, and vm.max_map_count is ");
	cat_uint(&p, end, max > 0 ? (uint64_t)max : 0);
	cat(&p, end,
	    "; further stacks have no guard page, only a red zone checked at each "
	    "switch (counted in weft_stats.stacks_unguarded); raise the limit "
	    "('sysctl -w vm.max_map_count=1048576' as root), or set "
	    "weft_config.stack_guards = WEFT_STACK_GUARDS_ALL to make weft_spawn fail "
	    "-ENOMEM instead\n");

	ssize_t rc = write(STDERR_FILENO, line, (size_t)(p - line));

	(void)rc;
}

/*
 * No guard page is left in the map-count budget (or the kernel refused
 * one): -ENOMEM with WEFT_STACK_GUARDS_ALL; else the stacks from here on
 * are unguarded (*@guarded false), and with the default that is said once.
 */
static int past_budget(struct weft__stacks *s, bool *guarded)
{
	if (s->guards_all) {
		weft__explain_note("vm.max_map_count", -ENOMEM);
		return -ENOMEM;
	}
	*guarded = false;
	s->guards_spent = true;
	if (s->guards_auto)
		say_unguarded_once(s);
	return 0;
}

/*
 * Whether the next slab is guarded, and at most how many stacks it may
 * hold: the rule of weft_config.stack_guards. -ENOMEM when every stack must
 * be guarded and the map-count budget has none left.
 */
static int plan_guards(struct weft__stacks *s, bool *guarded, size_t *count)
{
	size_t budget;

	*guarded = false;
	if (!s->guards_wanted || s->guards_left == 0)
		return 0; /* stack_guards 0, or past the number the program asked for */
	*guarded = true;
	if (s->markers)
		return 0;
	budget = s->guards_spent ? 0 : map_budget(s);
	if (budget > s->guards_left)
		budget = s->guards_left;
	if (budget == 0)
		return past_budget(s, guarded);
	if (*count > budget)
		*count = budget;
	return 0;
}

/*
 * Map @count slots of @slot bytes and the two pages below them (an
 * inaccessible one, then the lowest red zone's). Unguarded one-page stacks
 * go into huge pages (@huge): whole ones, so the slots start on a HUGE
 * boundary (a misaligned slab leaves up to 2 MiB at each end in small
 * pages). Return: the mapping, or NULL; *@len its length.
 */
static char *map_slab(struct weft__stacks *s, size_t count, size_t slot, bool huge, size_t *len)
{
	size_t below = 2 * s->page;
	size_t extra = huge ? HUGE : 0;
	char *map;

	*len = count * slot + below;
	map = mmap(NULL, *len + extra, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return NULL;
	if (huge) {
		/* Trim to [aligned - below, aligned + count * slot). */
		char *aligned = (char *)round_up((uintptr_t)map + below, HUGE);
		size_t head = (size_t)(aligned - below - map);

		if (head)
			munmap(map, head);
		if (extra - head)
			munmap(aligned + count * slot, extra - head);
		map = aligned - below;
	}
	return map;
}

/* Account a slab of pool @pool that was mapped and guarded, and carve its stacks. */
static void add_slab(struct weft__stacks *s, unsigned pool, struct weft__slab *slab, size_t slot,
		     bool guarded, bool huge)
{
	struct weft__stackpool *p = &s->pools[pool];
	char *base = slab->base + 2 * s->page;

	slab->next = p->slabs;
	p->slabs = slab;
	s->mapped += slab->count;
	if (guarded) {
		if (!s->markers && !s->guards_all && !s->guards_auto)
			s->guards_left -= slab->count;
		s->guarded += slab->count;
	} else if (s->guards_wanted && s->guards_spent) {
		/* Wanted a guard, got none: up to the number asked for (all, by default). */
		size_t n = slab->count < s->guards_left ? slab->count : s->guards_left;

		s->unguarded += n;
		if (!s->guards_auto)
			s->guards_left -= n;
	}
	do
		p->next_slab *= 2;
	while (p->next_slab <= slab->count && p->next_slab < p->max_slab);
	if (p->next_slab > p->max_slab)
		p->next_slab = p->max_slab;
	/* One fault per 2 MiB instead of one per stack; else THP is off here: no more aligning. */
	if (!huge || madvise(base, slab->count * slot, MADV_HUGEPAGE) != 0)
		s->thp = s->thp && !huge;
	carve(s, pool, slab, base, slot, guarded);
}

/*
 * The guards of a new slab were refused: plan again without what failed.
 * Return: -EAGAIN to try again, or -ENOMEM.
 */
static int guards_refused(struct weft__stacks *s)
{
	if (s->markers) {
		s->markers = false; /* refused after the probe (seccomp?): use mprotect */
		return -EAGAIN;
	}
	if (!s->guards_all) {
		/* The map count ran out before the budget said: plan_guards goes past it. */
		s->guards_spent = true;
		return -EAGAIN;
	}
	weft__explain_note("vm.max_map_count", -ENOMEM);
	return -ENOMEM;
}

/* One try at a new slab for pool @pool. Return: 0, -ENOMEM, or -EAGAIN (plan again). */
static int grow_once(struct weft__stacks *s, unsigned pool)
{
	bool guarded;
	size_t count = s->pools[pool].next_slab;
	size_t len;
	int rc = plan_guards(s, &guarded, &count);

	if (rc < 0)
		return rc;

	size_t slot = s->pools[pool].slot + (guarded ? s->page : 0);
	bool huge = !guarded && slot == s->page && s->thp;

	if (huge)
		count = round_up(count, HUGE / slot);

	char *map = map_slab(s, count, slot, huge, &len);
	struct weft__slab *slab = malloc(sizeof(*slab));
	struct weft_fiber *fibers = aligned_alloc(64, count * sizeof(*fibers));

	if (!map || !slab || !fibers) {
		rc = -ENOMEM;
		goto out_free;
	}
	memset(fibers, 0, count * sizeof(*fibers));
	if (mprotect(map, s->page, PROT_NONE) != 0) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (guarded && install_guards(s, map + 2 * s->page, count, slot) < 0) {
		rc = guards_refused(s);
		goto out_free;
	}
	*slab = (struct weft__slab){ .base = map, .len = len, .count = count, .fibers = fibers };
	add_slab(s, pool, slab, slot, guarded, huge);
	return 0;

out_free:
	if (map)
		munmap(map, len);
	free(slab);
	free(fibers);
	return rc;
}

/* Map a new slab for pool @pool; -ENOMEM if the kernel refuses. */
static int grow(struct weft__stacks *s, unsigned pool)
{
	int rc;

	if (!s->probed)
		probe_markers(s);
	/* Each retry has one way fewer to guard the stacks: it ends. */
	while ((rc = grow_once(s, pool)) == -EAGAIN)
		;
	return rc;
}

/*
 * Take a stack from pool @pool, the one freed last. Its control block is
 * zeroed (its name too) except for the stack bounds, the guard flag, the
 * pool and the valgrind id. NULL when out of memory.
 */
struct weft_fiber *weft__stack_alloc(struct weft__stacks *s, unsigned pool)
{
	struct weft__stackpool *p = &s->pools[pool];

	assert(pool < sizeof(s->pools) / sizeof(s->pools[0]));
	if (WEFT__UNLIKELY(!p->free) && grow(s, pool) < 0)
		return NULL;

	struct weft_fiber *f = p->free;

	p->free = f->next;
	assert(f->state == WEFT__FIBER_FREE && f->pool == pool);
	if (f->cold) {
		weft__list_del(&f->all);
		s->cold_count--;
	}
	/* Everything below stack_lo; the stack's own fields after it survive reuse. */
	memset(f, 0, offsetof(struct weft_fiber, stack_lo));
	f->cold = false;
	f->asan_fake = NULL;
	weft__asan_unpoison(f->stack_lo, (size_t)(f->stack_top - f->stack_lo));
#if WEFT_STACK_CENSUS
	memset(f->stack_lo, 0xa5, (size_t)(f->stack_top - f->stack_lo));
#endif
	return f;
}

/* The bytes of @f's stack below its top page: what a trim gives back. */
static size_t below_top_page(const struct weft__stacks *s, const struct weft_fiber *f)
{
	uintptr_t top_page = ((uintptr_t)f->stack_top - 1) & ~(uintptr_t)(s->page - 1);

	return top_page > (uintptr_t)f->stack_lo ? top_page - (uintptr_t)f->stack_lo : 0;
}

/* Trim the oldest freed stacks back to their top page, until TRIM_WARM hold more. */
static void trim_cold(struct weft__stacks *s)
{
	size_t n = 0;

	while (s->cold_count > TRIM_WARM) {
		struct weft_fiber *f = weft__container_of(s->cold.next, struct weft_fiber, all);

		weft__list_del(&f->all);
		f->cold = false;
		s->cold_count--;
		s->iov[n].iov_base = f->stack_lo;
		s->iov[n].iov_len = below_top_page(s, f);
		s->trimmed++;
		if (++n == BATCH || s->cold_count == TRIM_WARM) {
			(void)advise_iov(s, s->iov, n,
					 MADV_DONTNEED); /* failure costs memory only */
			n = 0;
		}
	}
}

/* Give a stack back to its pool. Its fiber must be DONE and owe the kernel nothing. */
void weft__stack_free(struct weft__stacks *s, struct weft_fiber *f)
{
	struct weft__stackpool *p = &s->pools[f->pool];

	assert(f->state == WEFT__FIBER_DONE);
	f->state = WEFT__FIBER_FREE;
	f->next = p->free;
	p->free = f;
	if (s->iov && below_top_page(s, f) > 0) {
		/* Newest last: trimming starts from the stacks freed longest ago. */
		f->cold = true;
		weft__list_add_before(&s->cold, &f->all);
		if (++s->cold_count > TRIM_WARM + TRIM_BATCH)
			trim_cold(s);
	}
}

/* Unmap every slab of @p. */
static void pool_fini(struct weft__stackpool *p)
{
	struct weft__slab *slab = p->slabs;

	while (slab) {
		struct weft__slab *next = slab->next;

		/*
		 * Clear what ASan knows of frames left on these stacks: whatever
		 * is mapped here next (an io_uring ring, mapped by a system call
		 * ASan does not see) must not inherit their redzones.
		 */
		weft__asan_unpoison(slab->base, slab->len);
#ifdef WEFT_TSAN
		for (size_t i = 0; i < slab->count; i++)
			if (slab->fibers[i].tsan_fiber)
				weft__tsan_destroy(slab->fibers[i].tsan_fiber);
#endif
		munmap(slab->base, slab->len);
		free(slab->fibers);
		free(slab);
		slab = next;
	}
	p->slabs = NULL;
	p->free = NULL;
}

void weft__stacks_fini(struct weft__stacks *s)
{
	for (size_t i = 0; i < sizeof(s->pools) / sizeof(s->pools[0]); i++)
		pool_fini(&s->pools[i]);
	weft__list_init(&s->cold);
	s->cold_count = 0;
	free(s->iov);
	s->iov = NULL;
}

/*
 * Abort for an overflow of @f's stack: @what happened; the message names
 * the fiber (and its name, if it has one) and the size to raise.
 */
static _Noreturn void overflowed(const struct weft_fiber *f, const char *what)
{
	static char msg[256];
	char *p = msg;
	char *end = msg + sizeof(msg);

	cat(&p, end, "stack overflow: ");
	cat(&p, end, what);
	if (f->name[0]) {
		cat(&p, end, " (fiber \"");
		cat(&p, end, f->name);
		cat(&p, end, "\")");
	}
	cat(&p, end,
	    f->pool ? "; raise its weft_spawn_opts.stack_size" : "; raise weft_config.stack_size");
	WEFT__BUG(f, msg);
}

/*
 * Called when @f switches away: the red zone below an unguarded stack must
 * be intact and the stack pointer inside its stack. A broken one means
 * memory below the stack has been written; nothing can be trusted after
 * that, so abort.
 */
void weft__stack_check(const struct weft__stacks *s, const struct weft_fiber *f)
{
	char *sp = __builtin_frame_address(0);
	const uint64_t *rz = (const uint64_t *)f->stack_lo - REDZONE / 8;
	uint64_t diff = 0;

	if (!f->guarded)
		for (size_t w = 0; w < REDZONE / 8; w++)
			diff |= rz[w] ^ s->canary;
	if (WEFT__UNLIKELY(diff))
		overflowed(f, "the red zone below its stack was overwritten");
	if (WEFT__UNLIKELY(sp < f->stack_lo || sp > f->stack_top))
		overflowed(f, "the stack pointer left its stack");
}

#if WEFT_STACK_CENSUS
#include <stdio.h>

/* Bytes of @f's stack that were touched: the pattern stops at the deepest. */
void weft__census_record(struct weft_loop *l, const struct weft_fiber *f)
{
	const unsigned char *p = (const unsigned char *)f->stack_lo;

	while (p < (const unsigned char *)f->stack_top && *p == 0xa5)
		p++;

	size_t used = (size_t)((const unsigned char *)f->stack_top - p);

	if (used > l->stats.stack_deepest)
		l->stats.stack_deepest = used;

	for (size_t i = 0; i < sizeof(l->census) / sizeof(l->census[0]); i++) {
		if (l->census[i].fn && l->census[i].fn != f->fn)
			continue;
		l->census[i].fn = f->fn;
		l->census[i].fibers++;
		if ((size_t)(f->stack_top - f->stack_lo) > l->census[i].size)
			l->census[i].size = (size_t)(f->stack_top - f->stack_lo);
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
			l->census[i].deepest, l->census[i].size);
}
#endif
