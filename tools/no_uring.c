/* SPDX-License-Identifier: MIT */
/*
 * no_uring: run a command where io_uring is refused, as a container's
 * default seccomp profile does (Docker 25+, containerd, Kubernetes
 * RuntimeDefault): io_uring_setup, io_uring_enter and io_uring_register fail
 * with EPERM (or the errno given), every other system call is allowed. The
 * filter is inherited by every child, so `no_uring tools/test` runs the
 * whole suite that way.
 *
 *   no_uring [--errno EPERM|ENOSYS|ENOMEM|EACCES] [--] CMD [ARG...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr, "usage: no_uring [--errno EPERM|ENOSYS|ENOMEM|EACCES] [--] CMD [ARG...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int err;
	} errs[] = {
		{ "EPERM", EPERM }, { "ENOSYS", ENOSYS }, { "ENOMEM", ENOMEM }, { "EACCES", EACCES }
	};
	int err = EPERM;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage();
			return 0;
		}
		if (strcmp(argv[i], "--errno") || i + 1 == argc) {
			fprintf(stderr, "no_uring: unknown option '%s'\n", argv[i]);
			return usage();
		}
		i++;
		err = 0;
		for (size_t k = 0; k < sizeof(errs) / sizeof(errs[0]); k++)
			if (!strcmp(argv[i], errs[k].name))
				err = errs[k].err;
		if (!err) {
			fprintf(
			    stderr,
			    "no_uring: --errno takes EPERM, ENOSYS, ENOMEM or EACCES, not '%s'\n",
			    argv[i]);
			return 2;
		}
	}
	if (i == argc)
		return usage();

	const unsigned ret = SECCOMP_RET_ERRNO | (unsigned)err;
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, ret),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, ret),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, ret),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fp = { .len = sizeof(prog) / sizeof(prog[0]), .filter = prog };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) != 0) {
		fprintf(stderr, "no_uring: cannot install the seccomp filter: %s\n",
			strerror(errno));
		return 1;
	}
	execvp(argv[i], argv + i);
	fprintf(stderr, "no_uring: cannot run '%s': %s\n", argv[i], strerror(errno));
	return 127;
}
