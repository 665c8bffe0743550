/* SPDX-License-Identifier: MIT */
/*
 * Setting an io_uring ring up for a loop: the best ring mode the kernel
 * takes (DEFER_TASKRUN, then COOP_TASKRUN, then plain; older kernels answer
 * -EINVAL to flags they do not know), the features weft cannot do without
 * (NODROP, EXT_ARG), the opcodes this kernel has (the op table's rows it
 * can run itself), the caps on io-wq workers, and the eventfd that other
 * threads wake the loop with, whose poll completes in wake_done.
 */
#include "uring_setup.h"
#include "bufs.h"

#include <sys/mman.h>
#include "explain.h"
#include "opdef.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Each mode's flags, best first; SUBMIT_ALL (5.18) is dropped on the way down. */
static const struct {
	uint32_t mode;
	uint32_t flags;
} modes[] = {
	{ WEFT_RING_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
				       IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED },
	{ WEFT_RING_COOP_TASKRUN,
	  IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL },
	{ WEFT_RING_PLAIN, IORING_SETUP_SUBMIT_ALL },
	{ WEFT_RING_PLAIN, 0 },
};

static int try_setup(struct weft_loop *l, struct uring *u, uint32_t flags)
{
	struct io_uring_params p;

	memset(&p, 0, sizeof(p));
	p.flags = flags | IORING_SETUP_CQSIZE;
	p.cq_entries = l->cfg.cq_entries;
	if (flags & IORING_SETUP_SQPOLL)
		p.sq_thread_idle = l->cfg.sqpoll_idle_ms;

	int rc = io_uring_queue_init_params(l->cfg.sq_entries, &u->ring, &p);

	if (rc == 0 && !(p.features & IORING_FEAT_NODROP)) {
		/* Before Linux 5.5 a full CQ drops completions: not safe for weft. */
		io_uring_queue_exit(&u->ring);
		return -ENOSYS;
	}
	if (rc == 0 && !(p.features & IORING_FEAT_EXT_ARG)) {
		/* Before Linux 5.11 enter cannot take a timeout; weft needs it. */
		io_uring_queue_exit(&u->ring);
		return -ENOSYS;
	}
	if (rc == 0)
		/* A forked child must not share (and corrupt) the parent's rings. */
		(void)io_uring_ring_dontfork(&u->ring);
	return rc;
}

/*
 * The ring in the requested mode, or, for WEFT_RING_AUTO, in the best mode
 * the kernel accepts (an older kernel answers -EINVAL to flags it does not
 * know). Any other error is the reason io_uring cannot be used here.
 */
static int setup_ring(struct weft_loop *l, struct uring *u)
{
	int rc = -EINVAL;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		uint32_t flags = modes[i].flags;

		if (l->cfg.ring_mode != WEFT_RING_AUTO && l->cfg.ring_mode != modes[i].mode)
			continue;
		if (l->cfg.flags & WEFT_CONFIG_SQPOLL) {
			/*
			 * The SQ thread is the one submitter: no DEFER_TASKRUN,
			 * and the kernel refuses COOP_TASKRUN beside SQPOLL.
			 */
			if (flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN))
				continue;
			flags |= IORING_SETUP_SQPOLL;
		}
		rc = try_setup(l, u, flags);
		if (rc == 0) {
			u->mode = modes[i].mode;
			u->flags = flags;
			return 0;
		}
		if (rc != -EINVAL)
			return rc;
	}
	return rc;
}

/* Which opcodes this kernel has (Linux 5.6); without a probe, those up to SHUTDOWN (5.11). */
static void probe_ops(struct weft_loop *l, struct uring *u)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);

	if (probe) {
		for (unsigned i = 0; i < probe->ops_len && i < 128; i++)
			if (probe->ops[i].flags & IO_URING_OP_SUPPORTED)
				u->probe[i / 64] |= (uint64_t)1 << (i % 64);
		io_uring_free_probe(probe);
	} else {
		u->probe[0] = ((uint64_t)1 << IORING_OP_SHUTDOWN) * 2 - 1;
	}
	/*
	 * WEFT_DISABLE_OPS=55,37 makes weft act as if the kernel lacked those
	 * IORING_OP_* numbers (a work-around for a kernel bug in one opcode,
	 * and how the fallbacks are tested).
	 */
	const char *off = getenv("WEFT_DISABLE_OPS");

	while (off && *off) {
		char *end;
		unsigned long op = strtoul(off, &end, 10);

		if (end == off)
			break;
		if (op < 128)
			u->probe[op / 64] &= ~((uint64_t)1 << (op % 64));
		off = *end == ',' ? end + 1 : end;
	}
	l->ops = 0;
	for (unsigned c = 0; c < WEFT__OP_COUNT; c++) {
		unsigned k = weft__opdef(c)->uring_op;

		assert(c == WEFT__OP_NOP || k != IORING_OP_NOP);
		if (u->probe[k / 64] >> (k % 64) & 1)
			l->ops |= (uint64_t)1 << c;
	}
}

/* The wake eventfd became readable: reset it; the loop then takes its inbox. */
static void wake_done(struct weft__op *op, int res, uint32_t flags)
{
	struct uring *u = weft__container_of(op, struct uring, wake_op);
	uint64_t count;

	(void)res;
	(void)flags;
	op->state = WEFT__OP_DONE;
	u->wake_armed = false;
	/*
	 * A read(2) of the counter, not an IORING_OP_READ of the eventfd:
	 * Linux 6.15.4 broke eventfd reads through io_uring (ghostty PR#7731),
	 * polls were not affected.
	 */
	if (read(u->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		WEFT__BUG(NULL, "read of the wake eventfd failed");
}

/* What the kernel's ops allow beyond the op table, and what the environment turns off. */
static void pick_features(struct weft_loop *l, struct uring *u)
{
	const char *w = getenv("WEFT_WAKE");

	u->msg_ring = (u->probe[IORING_OP_MSG_RING / 64] >> (IORING_OP_MSG_RING % 64)) & 1;
	if (w && !strcmp(w, "eventfd"))
		u->msg_ring = false;
	w = getenv("WEFT_POLL_FIRST");
	/* Linux 5.19, as IORING_OP_SOCKET: an older kernel refuses the flag. */
	u->poll_first = ((u->probe[0] >> IORING_OP_SOCKET) & 1) && !(w && !strcmp(w, "off"));
	/*
	 * Multishot accept is Linux 5.19 too (accept.c also falls back
	 * where a kernel refuses it); WEFT_MULTISHOT_ACCEPT=off, for
	 * comparisons, keeps the plain accept.
	 */
	w = getenv("WEFT_MULTISHOT_ACCEPT");
	if (!((u->probe[0] >> IORING_OP_SOCKET) & 1) || (w && !strcmp(w, "off")))
		l->ops &= ~((uint64_t)1 << WEFT__OP_ACCEPT_MULTI);
	/*
	 * Multishot receive is Linux 6.0, as IORING_OP_SEND_ZC (recvmulti.c
	 * also falls back where a kernel refuses it), and asked for:
	 * WEFT_CONFIG_MULTISHOT_RECV, or WEFT_MULTISHOT_RECV=on (=off wins).
	 */
	w = getenv("WEFT_MULTISHOT_RECV");
	if (!((u->probe[0] >> IORING_OP_SEND_ZC) & 1) || (w && !strcmp(w, "off")) ||
	    !((l->cfg.flags & WEFT_CONFIG_MULTISHOT_RECV) || (w && !strcmp(w, "on"))))
		l->ops &= ~((uint64_t)1 << WEFT__OP_RECV_MULTI);
}

int weft__uring_setup(struct weft_loop *l)
{
	struct uring *u = calloc(1, sizeof(*u));
	int rc;

	if (!u)
		return -ENOMEM;
	u->deferred_tail = &u->deferred;
	u->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->wake_fd < 0) {
		rc = -errno;
		free(u);
		return rc;
	}
	rc = setup_ring(l, u);
	if (rc < 0) {
		weft__explain_note("io_uring_setup", rc);
		goto fail;
	}
	u->sqpoll = u->flags & IORING_SETUP_SQPOLL;
	u->disabled = u->flags & IORING_SETUP_R_DISABLED;
	u->defer = u->flags & IORING_SETUP_DEFER_TASKRUN;
	probe_ops(l, u);
	pick_features(l, u);
	if (l->cfg.iowq_bounded || l->cfg.iowq_unbounded) {
		unsigned vals[2] = { l->cfg.iowq_bounded, l->cfg.iowq_unbounded };

		rc = io_uring_register_iowq_max_workers(&u->ring, vals);
		if (rc < 0) {
			io_uring_queue_exit(&u->ring);
			goto fail; /* -EINVAL before 5.15: the caps cannot be kept */
		}
	}
#if WEFT_HAVE_VALGRIND_H
	u->valgrind = RUNNING_ON_VALGRIND;
#endif
	u->wake_op = (struct weft__op){ .code = WEFT__OP_POLL,
					.fd = u->wake_fd,
					.op_flags = POLLIN,
					.deadline = WEFT_FOREVER,
					.complete = wake_done };
	l->be_data = u;
	return 0;
fail:
	close(u->wake_fd);
	free(u);
	return rc;
}

/* ---- the lent buffers' ring ---------------------------------------------------------- */

/* Buffer @bid back at the ring's tail, for the kernel to pick again. */
static void ring_put(struct weft__bufs *b, uint32_t bid)
{
	struct io_uring_buf_ring *br = b->ring;

	io_uring_buf_ring_add(br, b->slab + (size_t)bid * b->size, b->size, (unsigned short)bid,
			      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(br, 1);
}

static void ring_free(struct weft__bufs *b)
{
	munmap(b->ring, (size_t)b->count * sizeof(struct io_uring_buf));
	b->ring = NULL;
}

/*
 * Register @b's buffers as group 0 of the loop's provided-buffer ring
 * (IORING_REGISTER_PBUF_RING, Linux 5.19). liburing 2.3 has no
 * io_uring_setup_buf_ring: the ring is mapped and filled here.
 */
int weft__uring_bufs_ring(struct weft_loop *l, struct weft__bufs *b)
{
	struct uring *u = U(l);
	size_t len = (size_t)b->count * sizeof(struct io_uring_buf);
	struct io_uring_buf_ring *br =
	    mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct io_uring_buf_reg reg = { .ring_entries = b->count, .bgid = 0 };
	int rc;

	if (!weft__op_native(l, WEFT__OP_RECV_BUF)) {
		if (br != MAP_FAILED)
			munmap(br, len);
		return -EOPNOTSUPP; /* no RECV here (WEFT_DISABLE_OPS): bufs.c lends them */
	}
	if (br == MAP_FAILED)
		return -ENOMEM;
	reg.ring_addr = (uint64_t)(uintptr_t)br;
	io_uring_buf_ring_init(br);
	rc = u->fatal ? u->fatal : io_uring_register_buf_ring(&u->ring, &reg, 0);
	if (rc < 0) {
		munmap(br, len);
		l->ops &= ~((uint64_t)1 << WEFT__OP_RECV_BUF);
		weft__explain_note("IORING_REGISTER_PBUF_RING", rc);
		return rc;
	}
	b->ring = br;
	b->ring_put = ring_put;
	b->ring_free = ring_free;
	for (uint32_t i = 0; i < b->count; i++)
		io_uring_buf_ring_add(br, b->slab + (size_t)i * b->size, b->size, (unsigned short)i,
				      io_uring_buf_ring_mask(b->count), (int)i);
	io_uring_buf_ring_advance(br, (int)b->count);
	return 0;
}

void weft__uring_teardown(struct weft_loop *l)
{
	struct uring *u = U(l);

	io_uring_queue_exit(&u->ring);
	close(u->wake_fd);
	weft__fdtable_fini(&u->fds);
	free(u->nonempty);
	free(u);
	l->be_data = NULL;
}
