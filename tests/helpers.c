/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

int t_on_uring(void)
{
	static int known = -1;
	weft_loop *l;
	weft_stats st;

	if (known >= 0)
		return known;
	if (weft_loop_create(&l, NULL) < 0)
		return known = 0;
	weft_loop_stats(l, &st);
	weft_loop_destroy(l);
	known = st.backend == WEFT_BACKEND_URING;
	if (!known)
		print_message("io_uring-only checks skipped: loops here run on %s\n",
			      weft_loop_explain(0));
	return known;
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

size_t t_rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

int t_seccomp_refuse(const int *nrs, int n, int err)
{
	struct sock_filter prog[2 + 2 * 16 + 1];
	int k = 0;

	if (n > 16)
		return -EINVAL;
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, nr));
	for (int i = 0; i < n; i++) {
		prog[k++] =
		    (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[i], 0, 1);
		prog[k++] = (struct sock_filter)BPF_STMT(
		    BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & 0xffff));
	}
	prog[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

	struct sock_fprog fp = { .len = (unsigned short)k, .filter = prog };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) != 0)
		return -errno;
	return 0;
}

int t_under_valgrind(void)
{
	const char *v = getenv("WEFT_TEST_VALGRIND");

	return v && *v && strcmp(v, "0") != 0;
}

int t_tcp_pair(int sv[2])
{
	int l = weft_tcp_listen("127.0.0.1", 0, 4, 0);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (l < 0)
		return l;
	if (getsockname(l, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	sv[0] = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sv[0] < 0 || weft_connect(sv[0], (struct sockaddr *)&ss, len) < 0)
		return -EIO;
	sv[1] = weft_accept4(l, NULL, NULL, SOCK_CLOEXEC);
	weft_close(l);
	return sv[1] < 0 ? sv[1] : 0;
}

void t_assert_overflow(void (*child)(void), const char *how, const char *name)
{
	static char err[1 << 20]; /* an ASan report of 80 frames, read whole: no SIGPIPE */
	char quoted[64];
	int status;

	if (t_under_valgrind())
		skip(); /* valgrind reports the fault itself */
	status = t_fork(child, err, sizeof(err));
	print_message("child stderr: %s", err);
#if defined(WEFT_TEST_SANITIZED)
	/* ASan may see the overflow first, as a write into a poisoned redzone. */
	if (strstr(err, "AddressSanitizer: stack-buffer") && WIFEXITED(status) &&
	    WEXITSTATUS(status) != 0)
		return;
#endif
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	assert_non_null(strstr(err, "overflow"));
	assert_non_null(strstr(err, how));
	if (!name) {
		assert_non_null(strstr(err, "fiber"));
		assert_non_null(strstr(err, "stack_size"));
		return;
	}
	snprintf(quoted, sizeof(quoted), "\"%s\"", name);
	assert_non_null(strstr(err, quoted));
	assert_non_null(strstr(err, "weft_spawn_opts.stack_size"));
}
