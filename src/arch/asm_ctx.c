/* SPDX-License-Identifier: MIT */
/*
 * weft__ctx_make for the assembly switches: lay out a fresh context so that
 * the first weft__ctx_jump to it lands in weft__ctx_entry (switch.S).
 */
#include "switch.h"

#include <string.h>

void weft__ctx_entry(void);

#if defined(__x86_64__)
const char weft__ctx_impl[] = "asm x86_64";

void weft__ctx_make(struct weft__ctx *ctx, void *stack_lo, void *stack_top, void (*fn)(void *),
		    void *arg)
{
	(void)stack_lo;
	memset(ctx, 0, sizeof(*ctx));
	ctx->rsp = (uint64_t)(uintptr_t)stack_top & ~(uint64_t)15;
	ctx->rip = (uint64_t)(uintptr_t)weft__ctx_entry;
	ctx->r12 = (uint64_t)(uintptr_t)arg;
	ctx->r13 = (uint64_t)(uintptr_t)fn;
	/* The new context starts with the control words of its creator. */
	__asm__ volatile("stmxcsr %0" : "=m"(ctx->mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(ctx->x87_cw));
}
#elif defined(__aarch64__)
const char weft__ctx_impl[] = "asm aarch64";

void weft__ctx_make(struct weft__ctx *ctx, void *stack_lo, void *stack_top, void (*fn)(void *),
		    void *arg)
{
	uint64_t fpcr;

	(void)stack_lo;
	memset(ctx, 0, sizeof(*ctx));
	ctx->sp = (uint64_t)(uintptr_t)stack_top & ~(uint64_t)15;
	ctx->pc = (uint64_t)(uintptr_t)weft__ctx_entry;
	ctx->x19_28[0] = (uint64_t)(uintptr_t)arg;
	ctx->x19_28[1] = (uint64_t)(uintptr_t)fn;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	ctx->fpcr = fpcr;
}
#endif
