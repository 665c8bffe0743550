/* SPDX-License-Identifier: MIT */
/* The command line, buffers and result line of bench/gather's workloads. */
#define _GNU_SOURCE
#include "workload.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct w_opts w = { .d_ms = 100, .rounds = 10, .stack = 64 * 1024, .guards = -1 };
int w_file_fd = -1;
long long w_file_slices;
char *w_arena;
char w_wbuf[W_WRITE];
long w_kernel_before, w_kernel_mid = -1;

static const char *const kinds[] = { "sleep", "read", "write", "socket", "mixed", NULL };

static void usage(FILE *f, const char *prog, const char *const *modes)
{
	fprintf(f,
		"usage: %s WORKLOAD MODE N [--ms D] [--file PATH] [--direct] [--dir DIR]\n"
		"         [--port P] [--rounds K] [--stack BYTES] [--guards N]\n"
		"         [--timers heap|kernel] [--log FILE]\n"
		"  WORKLOAD: sleep read write socket mixed\n  MODE:",
		prog);
	for (const char *const *m = modes; *m; m++)
		fprintf(f, " %s", *m);
	fprintf(f, "\n");
}

__attribute__((format(printf, 3, 4))) static int bad(const char *prog, const char *const *modes,
						     const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr, prog, modes);
	return 2;
}

int w_parse(int argc, char **argv, const char *prog, const char *const *modes)
{
	const char *pos[3];
	int npos = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		long long *num = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout, prog, modes);
			exit(0);
		}
		if (!strcmp(a, "--direct")) {
			w.direct = true;
			continue;
		}
		if (a[0] != '-' || (a[1] >= '0' && a[1] <= '9')) { /* -5: a (bad) number */
			if (npos == 3)
				return bad(prog, modes, "unexpected argument '%s'", a);
			pos[npos++] = a;
			continue;
		}
		if (!v)
			return bad(prog, modes, "%s needs a value", a);
		i++;
		if (!strcmp(a, "--file"))
			w.file = v;
		else if (!strcmp(a, "--dir"))
			w.dir = v;
		else if (!strcmp(a, "--log"))
			w.log = v;
		else if (!strcmp(a, "--timers")) {
			if (strcmp(v, "heap") && strcmp(v, "kernel"))
				return bad(prog, modes, "--timers: heap or kernel, not '%s'", v);
			w.kernel_timers = !strcmp(v, "kernel");
		} else if (!strcmp(a, "--ms"))
			num = &w.d_ms;
		else if (!strcmp(a, "--rounds"))
			num = &w.rounds;
		else if (!strcmp(a, "--stack"))
			num = &w.stack;
		else if (!strcmp(a, "--guards"))
			num = &w.guards;
		else if (!strcmp(a, "--port")) {
			long long p = b_parse_count(v, "--port");

			if (p < 1 || p > 65535)
				return bad(prog, modes, "--port: 1 to 65535, not '%s'", v);
			w.port = (int)p;
		} else
			return bad(prog, modes, "unknown option '%s'", a);
		if (num && (*num = b_parse_count(v, a)) < 0)
			return 2;
	}
	if (npos != 3)
		return bad(prog, modes, "%s", "expected WORKLOAD MODE N");
	w.workload = pos[0];
	w.mode = pos[1];
	int k = 0;

	while (kinds[k] && strcmp(kinds[k], w.workload))
		k++;
	if (!kinds[k])
		return bad(prog, modes, "unknown workload '%s'", w.workload);
	w.kind = (enum w_kind)k;
	const char *const *m = modes;

	while (*m && strcmp(*m, w.mode))
		m++;
	if (!*m)
		return bad(prog, modes, "unknown mode '%s'", w.mode);
	if ((w.n = b_parse_count(pos[2], "N")) < 0)
		return 2;
	if (w.stack < 4096 || (w.guards > UINT32_MAX))
		return bad(prog, modes, "%s", "--stack: at least 4096; --guards: at most 2^32-1");
	if (w.rounds < 1)
		return bad(prog, modes, "%s", "--rounds: at least 1");
	if ((w.kind == W_READ || w.kind == W_MIXED) && !w.file)
		return bad(prog, modes, "workload '%s' needs --file", w.workload);
	if (w.kind == W_WRITE_FSYNC && !w.dir)
		return bad(prog, modes, "workload '%s' needs --dir", w.workload);
	if ((w.kind == W_SOCKET || w.kind == W_MIXED) && !w.port)
		return bad(prog, modes, "workload '%s' needs --port (the echo server's)",
			   w.workload);
	return 0;
}

long long w_ops_per_task(void)
{
	switch (w.kind) {
	case W_SLEEP:
	case W_READ:
		return 1;
	case W_WRITE_FSYNC:
		return 5;
	case W_SOCKET:
		return 2 * w.rounds + 2;
	case W_MIXED:
		return 6;
	}
	return 1;
}

int w_prepare(void)
{
	if (w.kind == W_READ || w.kind == W_MIXED) {
		struct stat st;

		w_file_fd = open(w.file, O_RDONLY | O_CLOEXEC | (w.direct ? O_DIRECT : 0));
		if (w_file_fd < 0) {
			int e = errno;

			fprintf(stderr, "%s: open %s%s: %s\n", w.mode, w.file,
				w.direct ? " with O_DIRECT" : "", strerror(e));
			return -e;
		}
		if (fstat(w_file_fd, &st) < 0 || st.st_size < W_SLICE) {
			fprintf(stderr, "%s: %s is smaller than one 64 KiB slice\n", w.mode,
				w.file);
			return -EINVAL;
		}
		w_file_slices = st.st_size / W_SLICE;
		/*
		 * One 64 KiB buffer per task, as a server has one per request;
		 * huge pages so that first touches do not dominate (a 4 KiB page
		 * fault costs ~12 us in a VM with shadow paging).
		 */
		size_t len = (size_t)(w.n ? w.n : 1) * W_SLICE;

		w_arena =
		    mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w_arena == MAP_FAILED) {
			w_arena = NULL;
			return -ENOMEM;
		}
		(void)madvise(w_arena, len, MADV_HUGEPAGE);
	}
	memset(w_wbuf, 'w', sizeof(w_wbuf));
	return 0;
}

/*
 * DIR/tN, without snprintf: the printf family takes about 2 KiB of stack,
 * half of a one-page fiber's (the weft-4k mode runs this in fibers).
 */
void w_task_path(char *out, size_t size, long long i)
{
	char digits[24];
	size_t nd = 0;
	size_t len = strlen(w.dir);
	unsigned long long v = i < 0 ? 0 : (unsigned long long)i;

	do
		digits[nd++] = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	if (len + 2 + nd + 1 > size) {
		out[0] = '\0';
		return;
	}
	memcpy(out, w.dir, len);
	out[len++] = '/';
	out[len++] = 't';
	while (nd > 0)
		out[len++] = digits[--nd];
	out[len] = '\0';
}

void w_server_addr(struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)w.port);
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

void w_result(const char *status, long long done, double wall, const char *extra)
{
	char line[1536];
	FILE *mem = fmemopen(line, sizeof(line), "w");

	if (!mem)
		return;
	fprintf(mem,
		"bench=gather workload=%s mode=%s n=%lld ops=%lld status=%s done=%lld wall_s=%.4f",
		w.workload, w.mode, w.n, w.n * w_ops_per_task(), status, done, wall);
	if (w.kind == W_SLEEP || w.kind == W_MIXED)
		fprintf(mem, " d_ms=%lld", w.d_ms);
	b_print_rusage(mem);
	if (w_kernel_mid >= 0)
		fprintf(mem, " kernel_kb=%ld", w_kernel_mid - w_kernel_before);
	fprintf(mem, "%s", extra);
	fclose(mem);
	puts(line);
	fflush(stdout);
	if (w.log) {
		FILE *f = fopen(w.log, "a");

		if (f) {
			fprintf(f, "%s\n", line);
			fclose(f);
		}
	}
}

/* The blocking file parts of a task, shared by the baselines and the epoll peer. */
int w_pread_slice(long long i)
{
	char *buf = w_buf(i);
	size_t got = 0;

	while (got < W_SLICE) {
		ssize_t n = pread(w_file_fd, buf + got, W_SLICE - got, w_slice_off(i) + (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		got += (size_t)n;
	}
	return 0;
}

int w_write_own_file(long long i)
{
	char path[4096];
	int fd;
	int rc = 0;

	w_task_path(path, sizeof(path), i);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, w_wbuf, W_WRITE) != W_WRITE)
		rc = errno ? -errno : -EIO;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (unlink(path) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

void w_nap_ms(long long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
