/* SPDX-License-Identifier: MIT */
/*
 * One sentence for a person per error (weft_loop_explain). Each thread
 * keeps the last thing of weft that failed on it (a system call, a
 * setting, an environment variable, an operation the backend lacks), so
 * that the sentence names the cause and its fix; an error weft did not note
 * is said to be the program's own. Nothing here calls the rest of weft.
 */
#include "explain.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static __thread const char *failed_call;
static __thread int failed_err;
static __thread bool failed_op; /* failed_call names an operation of the op table */
static __thread char env_sentence[200];
static __thread char plain_sentence[200];
static __thread char op_sentence[300];
static __thread char backend_sentence[400];

void weft__explain_note(const char *what, int err)
{
	failed_call = what;
	failed_err = err;
	failed_op = false;
}

const char *weft__explain_last(int *err)
{
	*err = failed_err;
	return failed_call;
}

int weft__explain_env(const char *name, const char *value, const char *accepted)
{
	snprintf(env_sentence, sizeof(env_sentence),
		 "the environment variable %s=%.40s is not understood: it takes %s; fix or "
		 "unset it.",
		 name, value, accepted);
	weft__explain_note(name, -EINVAL);
	return -EINVAL;
}

/* Edit distance of @a (its first @n bytes) and @b, or 99 for long names. */
static size_t distance(const char *a, size_t n, const char *b)
{
	size_t m = strlen(b), row[48];

	if (n >= 48 || m >= 48)
		return 99;
	for (size_t j = 0; j <= m; j++)
		row[j] = j;
	for (size_t i = 1; i <= n; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= m; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[m];
}

/* Whether @var (NAME=value) names one of @known (NULL-terminated). */
static bool is_known(const char *var, size_t n, const char *const *known, const char **near)
{
	size_t best = 3; /* a typo: two edits at most */

	for (; *known; known++) {
		size_t d = distance(var, n, *known);

		if (d == 0)
			return true;
		if (d < best) {
			best = d;
			*near = *known;
		}
	}
	return false;
}

void weft__explain_env_unknown(const char *const *known)
{
	extern char **environ;
	static atomic_bool said;
	char names[400] = "";
	size_t len = 0;

	for (char **e = environ; e && *e; e++) {
		const char *near = NULL;
		size_t n = strcspn(*e, "=");

		/* WEFT_TEST_*, WEFT_BUILD and WEFT_SRC belong to weft's tests and tools. */
		if (strncmp(*e, "WEFT_", 5) != 0 || !strncmp(*e, "WEFT_TEST_", 10) ||
		    !strncmp(*e, "WEFT_BUILD=", 11) || !strncmp(*e, "WEFT_SRC=", 9) ||
		    is_known(*e, n, known, &near))
			continue;
		if (atomic_exchange(&said, true))
			return;
		for (const char *const *k = known; *k && len < sizeof(names); k++)
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s",
						len ? ", " : "", *k);
		fprintf(stderr,
			"weft: warning: the environment variable %.*s is not one weft reads%s%s%s; "
			"it reads %s.\n",
			(int)(n > 60 ? 60 : n), *e, near ? " (did you mean " : "", near ? near : "",
			near ? "?)" : "", names);
		return;
	}
}

void weft__explain_unsupported(const char *op, const char *backend)
{
	snprintf(op_sentence, sizeof(op_sentence),
		 "the operation %s cannot run on this loop's %s backend: the kernel lacks its "
		 "opcode (or WEFT_DISABLE_OPS names it, or the one it falls back on) and weft has "
		 "no fallback for it there; run on a newer kernel, or unset WEFT_DISABLE_OPS.",
		 op, backend);
	weft__explain_note(op, -EOPNOTSUPP);
	failed_op = true;
}

void weft__explain_backend(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(backend_sentence, sizeof(backend_sentence), fmt, ap);
	va_end(ap);
}

static int read_sysctl(const char *path)
{
	char buf[16] = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;

	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

static bool noted(int err, const char *what)
{
	return err < 0 && err == failed_err && failed_call && !strcmp(failed_call, what);
}

/* The kernel refused io_uring_enter after the ring was set up. */
static const char *enter_refused(int err)
{
	switch (err) {
	case -EPERM:
	case -EACCES:
	case -ENOSYS:
		return "io_uring_enter was refused after the ring was set up: a seccomp "
		       "profile or an LSM allows io_uring_setup but not io_uring_enter; "
		       "allow io_uring_setup, io_uring_enter and io_uring_register for "
		       "this program.";
	default:
		return "io_uring_enter failed after the ring was set up, and the loop "
		       "stopped; see io_uring_enter(2).";
	}
}

/*
 * Not an error weft noted on this thread: weft_main hands back the fiber's
 * own result the same way, and it must not read as a set-up failure.
 */
static const char *not_ours(int err)
{
	const char *what = err < 0 && err > -4096 ? strerrordesc_np(-err) : NULL;

	snprintf(plain_sentence, sizeof(plain_sentence),
		 "%s (error %d): not an error of setting up weft's loop, but of the "
		 "program's own work.",
		 what ? what : "unknown error", err);
	return plain_sentence;
}

/* Failures of weft's own making, other than io_uring's set-up. */
static const char *weft_cause(int err)
{
	if (noted(err, "vm.max_map_count"))
		return "no stack could get a guard page, and weft_config.stack_guards is "
		       "WEFT_STACK_GUARDS_ALL (every stack guarded, or none spawned): here each "
		       "guard page costs two memory mappings (Linux before 6.13, or "
		       "WEFT_GUARD_MARKERS=off) and vm.max_map_count is nearly used; "
		       "raise it ('sysctl -w vm.max_map_count=1048576' as root), or leave "
		       "stack_guards at its default, WEFT_STACK_GUARDS_AUTO (the stacks past the "
		       "budget go unguarded, with a red zone), or set it to the number of guarded "
		       "stacks wanted or to 0.";
	if (noted(err, "weft_loop_run"))
		return "weft_loop_run was called on another thread than the one that first ran the "
		       "loop: a loop stays on the thread of its first run (its io_uring ring is "
		       "bound to that thread then), so run it there again, or use weft_pool_create "
		       "for a loop per thread.";
	if (noted(err, "malloc"))
		return "out of memory while setting up weft's loop.";
	if (noted(err, "pthread_create"))
		return "a thread for one of the pool's loops could not be created: the process "
		       "is at its limit of threads (ulimit -u, kernel.threads-max, a container's "
		       "pids limit) or of memory; create fewer loops, or raise the limit.";
	if (noted(err, "weft_spawn"))
		return "the first fiber of a loop could not be spawned: out of memory (a stack "
		       "could not be mapped, or its control block allocated); lower "
		       "weft_config.stack_size or free memory.";
	return NULL;
}

/* io_uring_setup's errors (weft_loop_create). */
static const char *setup_cause(int err)
{
	switch (err) {
	case -ENOSYS:
		return "io_uring is not available: the kernel lacks it (CONFIG_IO_URING, or older "
		       "than 5.11) or a seccomp profile hides it (Docker 25+ and Kubernetes "
		       "RuntimeDefault do); run on Linux 6.1+ or allow io_uring_setup, "
		       "io_uring_enter and io_uring_register in the profile.";
	case -EPERM:
	case -EACCES:
		switch (read_sysctl("/proc/sys/kernel/io_uring_disabled")) {
		case 2:
			return "io_uring is switched off by the sysctl kernel.io_uring_disabled=2; "
			       "run 'sysctl -w kernel.io_uring_disabled=0' as root.";
		case 1:
			return "io_uring is limited by kernel.io_uring_disabled=1 to the group in "
			       "kernel.io_uring_group; add this user to that group or run 'sysctl "
			       "-w kernel.io_uring_disabled=0' as root.";
		default:
			return "io_uring_setup was refused by a security policy (seccomp in a "
			       "container, or an LSM such as SELinux); allow io_uring_setup, "
			       "io_uring_enter and io_uring_register for this program.";
		}
	case -ENOMEM:
		return "the io_uring ring could not be allocated: on kernels before 5.12 it is "
		       "charged to RLIMIT_MEMLOCK, so raise 'ulimit -l' (or LimitMEMLOCK= in "
		       "systemd), or use a smaller weft_config.sq_entries.";
	case -EINVAL:
		return "the weft_config is invalid (sq_entries must be a power of two from 2 to "
		       "32768, cq_entries at least twice that), or the kernel rejects the "
		       "requested WEFT_RING_MODE; use WEFT_RING_MODE=auto.";
	case -EMFILE:
	case -ENFILE:
		return "no file descriptor is free for the io_uring ring; raise 'ulimit -n'.";
	default:
		return "io_uring set-up failed with an unexpected error; see io_uring_setup(2).";
	}
}

const char *weft_loop_explain(int err)
{
	const char *s;

	if (err == 0)
		return backend_sentence[0] ? backend_sentence
					   : "no loop has been created on this thread yet.";
	if (err < 0 && err == failed_err && failed_call && !strncmp(failed_call, "WEFT_", 5))
		return env_sentence;
	if (noted(err, "io_uring_enter"))
		return enter_refused(err);
	if (err == -EOPNOTSUPP && err == failed_err && failed_op)
		return op_sentence;
	if (err != failed_err || !failed_call)
		return not_ours(err);
	s = weft_cause(err);
	return s ? s : setup_cause(err);
}

/* What an -errno means when weft returns it: weft's own reasons first, then the system's. */
static const struct {
	int err;
	const char *what;
} meanings[] = {
	{ EPERM, "not called from a fiber (weft's blocking calls need one), or the system refused "
		 "the operation" },
	{ EXDEV, "called from another thread than the one whose loop owns the loop, channel, "
		 "mutex, semaphore or group (or, from the file system, a cross-device link)" },
	{ ETIMEDOUT, "the fiber's deadline passed (weft_set_deadline, weft_set_timeout), or a "
		     "connection timed out" },
	{ ECANCELED,
	  "the fiber was cancelled (weft_cancel, its group's failure or its loop's end), "
	  "or the operation was ended by a close of its fd" },
	{ EDEADLK, "the fibers left can never be woken (every one waits on another of its loop), "
		   "or the caller already holds the mutex" },
	{ ESHUTDOWN, "the loop or pool is shutting down and takes no more work" },
	{ EOPNOTSUPP, "this backend or kernel cannot run the operation (weft_loop_explain names "
		      "which and why)" },
	{ EBUSY, "a loop already runs on this thread, or the mutex or resource is taken" },
	{ EAGAIN, "it would have to wait (a try_ call, MSG_DONTWAIT), or a resource is short for "
		  "now" },
	{ EPIPE, "the channel is closed, or the peer has closed its end" },
};

const char *weft_strerror(int err)
{
	const char *d;

	if (err < 0)
		err = -err;
	if (err == 0)
		return "success";
	for (size_t i = 0; i < sizeof(meanings) / sizeof(meanings[0]); i++)
		if (meanings[i].err == err)
			return meanings[i].what;
	d = strerrordesc_np(err);
	return d ? d : "an error number the system does not know";
}
