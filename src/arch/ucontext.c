/* SPDX-License-Identifier: MIT */
/*
 * Fallback context switch over makecontext/swapcontext, for CPUs without an
 * assembly switch. swapcontext saves and restores the signal mask with a
 * system call on every switch, so it is two orders of magnitude slower.
 */
#include "switch.h"

#include <stdlib.h>
#include <string.h>

const char weft__ctx_impl[] = "ucontext";

/* makecontext passes int arguments only: split the two pointers. */
static void entry(unsigned fn_hi, unsigned fn_lo, unsigned arg_hi, unsigned arg_lo)
{
	void (*fn)(void *) =
	    (void (*)(void *))(uintptr_t)(((uint64_t)fn_hi << 32) | (uint64_t)fn_lo);
	void *arg = (void *)(uintptr_t)(((uint64_t)arg_hi << 32) | (uint64_t)arg_lo);

	fn(arg);
	abort();
}

void weft__ctx_make(struct weft__ctx *ctx, void *stack_lo, void *stack_top, void (*fn)(void *),
		    void *arg)
{
	uint64_t f = (uint64_t)(uintptr_t)fn;
	uint64_t a = (uint64_t)(uintptr_t)arg;

	memset(ctx, 0, sizeof(*ctx));
	getcontext(&ctx->uc);
	ctx->uc.uc_stack.ss_sp = stack_lo;
	ctx->uc.uc_stack.ss_size = (size_t)((char *)stack_top - (char *)stack_lo);
	ctx->uc.uc_link = NULL;
	makecontext(&ctx->uc, (void (*)(void))entry, 4, (unsigned)(f >> 32), (unsigned)f,
		    (unsigned)(a >> 32), (unsigned)a);
}

void weft__ctx_jump(struct weft__ctx *from, const struct weft__ctx *to)
{
	swapcontext(&from->uc, &to->uc);
}
