/* SPDX-License-Identifier: MIT */
/*
 * The workloads of bench/gather, shared by every C program that runs them
 * (bench_tasks: weft, threads, sequential; peer_epoll): the command line,
 * what one task does, and the one result line.
 *
 *   PROGRAM WORKLOAD MODE N [--ms D] [--file PATH] [--direct] [--dir DIR]
 *           [--port P] [--rounds K] [--stack BYTES] [--guards N]
 *           [--timers heap|kernel] [--log FILE]
 *
 * Workloads (N tasks, gathered):
 *   sleep   each task sleeps D ms                                  1 op
 *   read    each task reads its 64 KiB slice of --file (slices wrap
 *           around the file; --direct opens it O_DIRECT)           1 op
 *   write   each task creates its own file in --dir, writes 4 KiB,
 *           fsyncs, closes and unlinks it                          5 ops
 *   socket  each task connects to the echo server on 127.0.0.1:--port
 *           and makes K round trips of 64 bytes, then closes      2K+2 ops
 *   mixed   sleep D ms, read a slice, one round trip (connect, send,
 *           receive, close), as a request handler would            6 ops
 *
 * Result line (stdout, and appended to --log FILE):
 *   bench=gather workload=read mode=weft n=1000 ops=1000 status=ok done=1000
 *   wall_s=… user_s=… sys_s=… maxrss_kb=… … plus mode-specific fields.
 * A run that fails prints status=<ERRNO name> done=<tasks that completed>
 * and exits 3; bad arguments exit 2 with a message.
 */
#ifndef WEFT_BENCH_WORKLOAD_H
#define WEFT_BENCH_WORKLOAD_H

#include "common.h"

#include <stdbool.h>
#include <netinet/in.h>
#include <sys/types.h>

#define W_SLICE (64 * 1024) /* bytes each read task reads */
#define W_WRITE 4096	    /* bytes each write task writes */
#define W_MSG 64	    /* bytes of one echo round trip */

enum w_kind { W_SLEEP, W_READ, W_WRITE_FSYNC, W_SOCKET, W_MIXED };

struct w_opts {
	const char *workload;
	enum w_kind kind;
	const char *mode;
	long long n;
	long long d_ms;
	const char *file;
	bool direct;
	const char *dir;
	int port;
	long long rounds;
	long long stack;
	long long guards; /* -1: the library's default */
	bool kernel_timers;
	const char *log;
};

extern struct w_opts w;

/* Set up by w_prepare() for the tasks. */
extern int w_file_fd;		/* --file, opened once and shared by all tasks */
extern long long w_file_slices; /* whole 64 KiB slices in it */
extern char *w_arena;		/* one 64 KiB buffer per task, page aligned */
extern char w_wbuf[W_WRITE];	/* what write tasks write */
extern long w_kernel_before, w_kernel_mid;

/*
 * Parse argv (after the program name); @modes is a NULL-terminated list of
 * the modes this program knows. Returns 0, or 2 after printing why.
 */
int w_parse(int argc, char **argv, const char *prog, const char *const *modes);
/* Operations one task makes in this workload. */
long long w_ops_per_task(void);
/* Open the file, map the buffers; a negative errno (printed) on failure. */
int w_prepare(void);
/* Offset of task @i's slice. */
static inline off_t w_slice_off(long long i)
{
	return (off_t)(i % w_file_slices) * W_SLICE;
}
static inline char *w_buf(long long i)
{
	return w_arena + (size_t)i * W_SLICE;
}
/* Path of task @i's own file for the write workload, in @out. */
void w_task_path(char *out, size_t size, long long i);
/* The loopback address of the echo server. */
void w_server_addr(struct sockaddr_in *sa);
/*
 * Print the result line (and append it to --log). @status "ok" or an
 * errno name; @extra: more " key=value" fields or "".
 */
void w_result(const char *status, long long done, double wall, const char *extra);
/* Task @i's file work with blocking calls: 0 or -errno. */
int w_pread_slice(long long i);
int w_write_own_file(long long i);
/* nanosleep(@ms) through EINTR. */
void w_nap_ms(long long ms);

/* bench/baseline/blocking.c: a thread per task, and one task after another. */
int w_run_threads(void);
int w_run_sequential(void);

#endif
