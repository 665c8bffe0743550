/* SPDX-License-Identifier: MIT */
/*
 * Copy a file with several reads and writes in flight: a few fibers each
 * take the next chunk, read it and write it at the same offset. The copy is
 * fsynced and then renamed into place, so DST is never half written.
 *
 *   weft_cp SRC DST
 */
#define _GNU_SOURCE
#include <weft.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK (256 * 1024)
#define WORKERS 8

struct copy {
	const char *src;
	const char *dst;
	char tmp[4096];
	int in;
	int out;
	int64_t size;
	int64_t next; /* next offset to take; fibers share it without locks (one thread) */
	const char *what;
	const char *path; /* the path @what was done to */
	int started;	  /* amain ran: an error is the copy's, not weft's set-up */
};

static int worker(void *arg)
{
	struct copy *c = arg;
	char *buf = malloc(CHUNK);

	if (!buf)
		return -ENOMEM;
	while (c->next < c->size) {
		int64_t off = c->next;
		size_t want = (size_t)(c->size - off < CHUNK ? c->size - off : CHUNK);

		c->next += (int64_t)want;
		for (size_t done = 0; done < want;) {
			ssize_t n = weft_read(c->in, buf + done, want - done, off + (int64_t)done);

			if (n <= 0) {
				c->what = "read";
				c->path = c->src;
				free(buf);
				return n < 0 ? (int)n : -EIO; /* 0: the file shrank under us */
			}
			done += (size_t)n;
		}
		for (size_t done = 0; done < want;) {
			ssize_t n =
			    weft_write(c->out, buf + done, want - done, off + (int64_t)done);

			if (n < 0) {
				c->what = "write";
				c->path = c->tmp;
				free(buf);
				return (int)n;
			}
			done += (size_t)n;
		}
	}
	free(buf);
	return 0;
}

static int amain(void *arg)
{
	struct copy *c = arg;
	struct statx st;
	weft_call calls[WORKERS];
	int rc;

	c->started = 1;
	c->path = c->src;
	c->in = weft_open(c->src, O_RDONLY | O_CLOEXEC, 0);
	if (c->in < 0) {
		c->what = "open";
		return c->in;
	}
	rc = weft_statx(c->in, "", AT_EMPTY_PATH, STATX_SIZE | STATX_MODE, &st);
	if (rc < 0) {
		c->what = "stat";
		return rc;
	}
	if (!S_ISREG(st.stx_mode)) {
		c->what = S_ISDIR(st.stx_mode)	 ? "copy a directory:"
			  : S_ISCHR(st.stx_mode) ? "copy a character device:"
			  : S_ISBLK(st.stx_mode) ? "copy a block device:"
						 : "copy a pipe or socket:";
		weft_close(c->in);
		return -EINVAL;
	}
	c->path = c->tmp;
	c->size = (int64_t)st.stx_size;
	snprintf(c->tmp, sizeof(c->tmp), "%s.weft-cp-tmp", c->dst);
	c->out = weft_open(c->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.stx_mode & 07777);
	if (c->out < 0) {
		c->what = "create";
		return c->out;
	}
	if (c->size > 0 && weft_fallocate(c->out, 0, 0, c->size) == -ENOSPC) {
		c->what = "allocate";
		rc = -ENOSPC;
		goto fail;
	}
	for (int i = 0; i < WORKERS; i++)
		calls[i] = (weft_call){ worker, c, 0 };
	rc = weft_gather(calls, WORKERS);
	if (rc == 0 && (rc = weft_fsync(c->out)) < 0)
		c->what = "fsync";
	if (rc < 0)
		goto fail;
	weft_close(c->in);
	if ((rc = weft_close(c->out)) < 0) {
		c->what = "close";
		goto fail_closed;
	}
	if ((rc = weft_rename(c->tmp, c->dst)) < 0) {
		c->what = "rename into place";
		c->path = c->dst;
		goto fail_closed;
	}
	return 0;
fail:
	weft_close(c->out);
	weft_close(c->in);
fail_closed:
	weft_unlink(c->tmp, 0);
	return rc;
}

int main(int argc, char **argv)
{
	struct copy c = { .what = "copy", .path = "" };

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: weft_cp SRC DST\ncopies the regular file SRC to DST (written beside "
		       "it, "
		       "fsynced, then renamed into place)\n");
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: weft_cp SRC DST\n");
		return 2;
	}
	c.src = argv[1];
	c.dst = argv[2];

	int rc = weft_main(amain, &c);

	if (rc < 0) {
		if (!c.started) /* the loop could not be set up */
			fprintf(stderr, "weft_cp: %s\n", weft_loop_explain(rc));
		else if (rc == -EINVAL && !strncmp(c.what, "copy a", 6))
			fprintf(stderr, "weft_cp: cannot %s %s (weft_cp copies regular files)\n",
				c.what, c.path);
		else
			fprintf(stderr, "weft_cp: cannot %s %s: %s\n", c.what, c.path,
				strerror(-rc));
		return 1;
	}
	return 0;
}
