/* SPDX-License-Identifier: MIT */
/*
 * The bare context switch (src/arch), without a loop: two contexts ping-pong
 * many times while keeping callee-saved integer and floating-point values
 * live across every switch, and each keeps its own floating-point rounding
 * mode. A plain C program (no cmocka), so that it can also be cross-built for
 * another CPU and run under qemu-user (tests/check_switch_cross.sh).
 * Exit status 0 when every check holds.
 */
#include "arch/switch.h"

#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static struct weft__ctx main_ctx, a_ctx, b_ctx;
static volatile int failures;
static const int rounds = 100000;

static void check(int ok, const char *what)
{
	if (!ok) {
		failures++;
		fprintf(stderr, "switch_selftest: %s\n", what);
	}
}

/* Many values live across the switch: the compiler keeps them in callee-saved registers. */
static void body(struct weft__ctx *self, struct weft__ctx *other, int mode, uint64_t seed)
{
	uint64_t r1 = seed, r2 = seed * 3, r3 = seed * 5, r4 = seed * 7, r5 = seed * 11;
	uint64_t r6 = seed * 13, r7 = seed * 17;
	double d1 = (double)seed, d2 = d1 * 0.5, d3 = d1 * 0.25, d4 = d1 + 1.5;
	double d5 = d1 + 2.5, d6 = d1 + 3.5, d7 = d1 + 4.5, d8 = d1 + 5.5;

	fesetround(mode);
	for (int i = 0; i < rounds; i++) {
		weft__ctx_jump(self, other);
		r1 += 1, r2 += 2, r3 += 3, r4 += 4, r5 += 5, r6 += 6, r7 += 7;
		d1 += 1, d2 += 2, d3 += 3, d4 += 4, d5 += 5, d6 += 6, d7 += 7, d8 += 8;
		if (fegetround() != mode) {
			check(0, "the rounding mode leaked between contexts");
			break;
		}
	}
	uint64_t n = (uint64_t)rounds;

	check(r1 == seed + n && r2 == seed * 3 + 2 * n && r3 == seed * 5 + 3 * n &&
		  r4 == seed * 7 + 4 * n && r5 == seed * 11 + 5 * n && r6 == seed * 13 + 6 * n &&
		  r7 == seed * 17 + 7 * n,
	      "an integer register was not preserved");
	check(d1 == (double)seed + n && d2 == (double)seed * 0.5 + 2.0 * n &&
		  d3 == (double)seed * 0.25 + 3.0 * n && d4 == (double)seed + 1.5 + 4.0 * n &&
		  d5 == (double)seed + 2.5 + 5.0 * n && d6 == (double)seed + 3.5 + 6.0 * n &&
		  d7 == (double)seed + 4.5 + 7.0 * n && d8 == (double)seed + 5.5 + 8.0 * n,
	      "a floating-point register was not preserved");
}

static void run_a(void *arg)
{
	(void)arg;
	body(&a_ctx, &b_ctx, FE_TONEAREST, 1000);
	weft__ctx_jump(&a_ctx, &b_ctx); /* let b finish its last round */
	abort();
}

static void run_b(void *arg)
{
	(void)arg;
#ifdef FE_UPWARD
	body(&b_ctx, &a_ctx, FE_UPWARD, 77);
#else
	body(&b_ctx, &a_ctx, FE_TONEAREST, 77);
#endif
	fesetround(FE_TONEAREST);
	weft__ctx_jump(&b_ctx, &main_ctx);
	abort();
}

int main(void)
{
	size_t size = 256 * 1024;
	char *sa = aligned_alloc(16, size), *sb = aligned_alloc(16, size);

	if (!sa || !sb)
		return 1;
	weft__ctx_make(&a_ctx, sa, sa + size, run_a, NULL);
	weft__ctx_make(&b_ctx, sb, sb + size, run_b, NULL);
	weft__ctx_jump(&main_ctx, &a_ctx);
	check(fegetround() == FE_TONEAREST, "the main context's rounding mode changed");
	printf("switch_selftest (%s): %s\n", weft__ctx_impl, failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
