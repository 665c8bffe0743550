// SPDX-License-Identifier: MIT
//
// peer_switch_boost: Boost.Context's raw context switch (jump_fcontext, the
// assembly under boost::context and boost::fiber), two contexts jumping to
// each other, for bench_switch to compare weft_yield with. Prints the median
// of 7 runs, in ns per switch:
//   bench=switch_boost n=N boost_ns=X
#include <boost/context/detail/fcontext.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace ctx = boost::context::detail;

static double now_ns()
{
	timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

// The other side: jump back to whoever jumped here, for ever.
static void partner(ctx::transfer_t t)
{
	for (;;)
		t = ctx::jump_fcontext(t.fctx, nullptr);
}

int main(int argc, char **argv)
{
	char *end = nullptr;
	long long n = argc > 1 ? std::strtoll(argv[1], &end, 10) : 10000000;

	if (argc > 2 || (argc == 2 && (*end || n < 1))) {
		std::fprintf(stderr, "usage: peer_switch_boost [SWITCH_PAIRS]\n");
		return 2;
	}

	static char stack[64 * 1024];
	double runs[7];

	for (double &r : runs) {
		ctx::fcontext_t other =
		    ctx::make_fcontext(stack + sizeof(stack), sizeof(stack), partner);
		double t0 = now_ns();

		for (long long i = 0; i < n; i++)
			other =
			    ctx::jump_fcontext(other, nullptr).fctx; // there and back: 2 switches
		r = (now_ns() - t0) / double(2 * n);
	}
	std::sort(runs, runs + 7);
	std::printf("bench=switch_boost n=%lld boost_ns=%.2f boost_min_ns=%.2f\n", n, runs[3],
		    runs[0]);
	return 0;
}
