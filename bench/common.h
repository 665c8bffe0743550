/* SPDX-License-Identifier: MIT */
/* Shared by the benchmark programs: process figures and argument parsing. */
#ifndef WEFT_BENCH_COMMON_H
#define WEFT_BENCH_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static inline int64_t b_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Kernel memory the whole machine spends now, in KiB: KernelStack +
 * PageTables + SUnreclaim from /proc/meminfo. Threads' kernel stacks and
 * every process's page tables live here, not in RSS. System-wide, so the
 * caller takes a difference over a short window.
 */
static inline long b_kernel_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long sum = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		long v;

		if (sscanf(line, "KernelStack: %ld", &v) == 1 ||
		    sscanf(line, "PageTables: %ld", &v) == 1 ||
		    sscanf(line, "SUnreclaim: %ld", &v) == 1)
			sum += v;
	}
	fclose(f);
	return sum;
}

/* A whole, non-negative number from @s, or -1 (with a message naming @what). */
static inline long long b_parse_count(const char *s, const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "%s must be a whole number >= 0, not '%s'\n", what, s);
		return -1;
	}
	return v;
}

/* The common tail of every result line: CPU, memory, context switches. */
static inline void b_print_rusage(FILE *out)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	fprintf(out, " user_s=%.3f sys_s=%.3f maxrss_kb=%ld nvcsw=%ld nivcsw=%ld minflt=%ld",
		(double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
		(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
		ru.ru_nvcsw, ru.ru_nivcsw, ru.ru_minflt);
}

/* CPU time (user+sys) of the whole process so far, in ns. */
static inline int64_t b_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* The number after " KEY=" (or "KEY=" at the start) in a key=value line, or -1. */
static inline double b_field(const char *line, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(line, pat);
	if (!p && !strncmp(line, pat + 1, strlen(pat + 1)))
		p = line - 1;
	return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The word after " KEY=" in a key=value line, copied into @buf, or "?". */
static inline const char *b_word(const char *line, const char *key, char *buf, size_t len)
{
	char pat[64];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), " %s=", key);
	p = strstr(line, pat);
	if (!p)
		return "?";
	p += strlen(pat);
	while (p[n] && p[n] != ' ' && p[n] != '\n' && n + 1 < len)
		n++;
	memcpy(buf, p, n);
	buf[n] = 0;
	return buf;
}

#endif
