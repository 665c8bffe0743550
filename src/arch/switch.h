/* SPDX-License-Identifier: MIT */
/*
 * The context switch interface. A weft__ctx holds the callee-saved registers
 * of a context that is not running; weft__ctx_jump saves the running one into
 * @from and resumes @to. Everything caller-saved is dead across the call, so
 * the compiler has already spilled what it needs.
 */
#ifndef WEFT_ARCH_SWITCH_H
#define WEFT_ARCH_SWITCH_H

#include <stddef.h>
#include <stdint.h>

#if defined(WEFT_SWITCH_UCONTEXT)
#include <ucontext.h>
struct weft__ctx {
	ucontext_t uc;
};
#elif defined(__x86_64__)
/* Offsets are used by arch/x86_64/switch.S; keep both in step. */
struct weft__ctx {
	uint64_t rsp;	 /* 0: stack pointer after the return */
	uint64_t rip;	 /* 8: where to resume */
	uint64_t rbx;	 /* 16 */
	uint64_t rbp;	 /* 24 */
	uint64_t r12;	 /* 32: on a fresh context, the entry argument */
	uint64_t r13;	 /* 40: on a fresh context, the entry function */
	uint64_t r14;	 /* 48 */
	uint64_t r15;	 /* 56 */
	uint32_t mxcsr;	 /* 64: SSE control and status */
	uint16_t x87_cw; /* 68: x87 control word */
	uint16_t pad;
};
_Static_assert(offsetof(struct weft__ctx, mxcsr) == 64, "switch.S layout");
_Static_assert(offsetof(struct weft__ctx, x87_cw) == 68, "switch.S layout");
#elif defined(__aarch64__)
/* Offsets are used by arch/aarch64/switch.S; keep both in step. */
struct weft__ctx {
	uint64_t sp;	     /* 0 */
	uint64_t pc;	     /* 8: where to resume (the saved x30) */
	uint64_t x19_28[10]; /* 16: x19 is the entry argument, x20 the entry function */
	uint64_t x29;	     /* 96: frame pointer */
	uint64_t d8_15[8];   /* 104: low halves of v8-v15 */
	uint64_t fpcr;	     /* 168 */
};
_Static_assert(offsetof(struct weft__ctx, fpcr) == 168, "switch.S layout");
#else
#error "no assembly context switch for this CPU: configure with -Dswitch=ucontext"
#endif

/*
 * Prepare @ctx so that the first jump to it calls @fn(@arg) on the stack
 * whose highest usable address is @stack_top. @fn must never return.
 */
void weft__ctx_make(struct weft__ctx *ctx, void *stack_lo, void *stack_top, void (*fn)(void *),
		    void *arg);

/* Save the running context into @from and resume @to. */
void weft__ctx_jump(struct weft__ctx *from, const struct weft__ctx *to);

/* Name of the implementation, for the build summary and tools. */
extern const char weft__ctx_impl[];

#endif
