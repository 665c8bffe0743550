/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int t_io_uring_usable(void)
{
	weft_loop *l;
	int rc = weft_loop_create(&l, NULL);

	if (rc < 0) {
		fprintf(stderr, "skipping: %s\n", weft_loop_explain(rc));
		return 0;
	}
	weft_loop_destroy(l);
	return 1;
}

struct t_main {
	weft_fn fn;
	void *arg;
	int result;
};

static int t_main_fiber(void *p)
{
	struct t_main *m = p;

	m->result = m->fn(m->arg);
	return m->result;
}

int t_run_cfg(const weft_config *cfg, weft_fn fn, void *arg, weft_stats *stats)
{
	struct t_main m = { .fn = fn, .arg = arg, .result = -12345 };
	weft_loop *l;
	int rc = weft_loop_create(&l, cfg);

	if (rc < 0)
		return rc;
	rc = weft_spawn(l, t_main_fiber, &m, NULL);
	if (rc == 0)
		rc = weft_loop_run(l);
	if (stats)
		weft_loop_stats(l, stats);
	weft_loop_destroy(l);
	return rc < 0 ? rc : m.result;
}

int t_run(weft_fn fn, void *arg)
{
	return t_run_cfg(NULL, fn, arg, NULL);
}

int t_fork(void (*child)(void), char *err, size_t errlen)
{
	int pipefd[2];
	int status = -1;

	if (pipe(pipefd) != 0)
		return -1;

	pid_t pid = fork();

	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		child();
		_exit(0);
	}
	close(pipefd[1]);

	size_t got = 0;
	ssize_t n;

	while (got + 1 < errlen && (n = read(pipefd[0], err + got, errlen - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return status;
}
