/* SPDX-License-Identifier: MIT */
/* The asyncio demo in weft: two tasks gathered, 2 s of sleeping in 1 s of wall time. */
#include <weft.h>

#include <stdio.h>

struct greet {
	int64_t delay;
	const char *what;
};

static int say_after(void *arg)
{
	const struct greet *g = arg;
	int rc = weft_sleep(g->delay);

	if (rc < 0)
		return rc;
	printf("%s\n", g->what);
	return 0;
}

static int amain(void *arg)
{
	struct greet hello = { 1 * WEFT_SEC, "hello" };
	struct greet world = { 1 * WEFT_SEC, "world" };
	weft_call calls[] = { { say_after, &hello, 0 }, { say_after, &world, 0 } };
	int64_t t0 = weft_now();
	int rc;

	(void)arg;
	rc = weft_gather(calls, 2); /* both sleep at once */
	printf("finished in %.2f s\n", (double)(weft_now() - t0) / WEFT_SEC);
	return rc;
}

int main(void)
{
	int rc = weft_main(amain, NULL);

	if (rc < 0) {
		fprintf(stderr, "hello_gather: %s\n", weft_loop_explain(rc));
		return 1;
	}
	return 0;
}
