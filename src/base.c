/* SPDX-License-Identifier: MIT */
/*
 * The little that belongs to no module: the thread-local words every layer
 * reads, the report of a broken invariant, and the version.
 */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>

__thread struct weft_loop *weft__tls_loop __attribute__((tls_model("initial-exec")));
__thread char weft__thread_tag __attribute__((tls_model("initial-exec")));

_Noreturn void weft__bug(uint32_t id, const void *fn, const char *file, int line, const char *what)
{
	if (id)
		fprintf(stderr, "weft: BUG in fiber %u (fn %p) at %s:%d: %s\n", id, fn, file, line,
			what);
	else
		fprintf(stderr, "weft: BUG in the scheduler at %s:%d: %s\n", file, line, what);
	abort();
}

const char *weft_version(void)
{
	return WEFT_VERSION_STRING;
}
