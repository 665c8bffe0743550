/* SPDX-License-Identifier: MIT */
/*
 * The report of a fault in a guard page: a SIGSEGV handler, installed while
 * any loop exists, that names the running fiber (its id and name) when the
 * fault lies just below its stack, and chains every other fault to the
 * handler that was there before. It runs on an alternate signal stack,
 * because the stack that overflowed cannot hold its frame; it calls only
 * async-signal-safe functions (write, abort, sigaction).
 */
#include "stackfault.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sigaction old_segv;

static void put_str(const char *s)
{
	ssize_t rc = write(STDERR_FILENO, s, strlen(s));

	(void)rc;
}

static void put_uint(uint64_t v)
{
	char buf[24];
	char *p = buf + sizeof(buf);

	*--p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_str(p);
}

/*
 * SIGSEGV on the alternate stack: if the address is just below the running
 * fiber's stack, name the fiber and abort. Any other fault belongs to the
 * handler that was there before weft's: call it; if that was the default
 * action (or SIG_IGN, which cannot ignore a fault), put it back and return,
 * so the fault repeats and takes its normal course.
 */
static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
	struct weft_loop *l = weft__tls_loop;
	struct weft_fiber *f = l ? l->cur : NULL;
	char *addr = si->si_addr;

	if (f && addr < f->stack_lo && addr >= f->stack_lo - 64 * 1024) {
		put_str("weft: fiber ");
		put_uint(f->id);
		if (f->name[0]) {
			put_str(" \"");
			put_str(f->name);
			put_str("\"");
		}
		put_str(" overflowed its stack of ");
		put_uint((uint64_t)(f->stack_top - f->stack_lo));
		put_str(f->guarded ? " bytes (fault in the guard page below it)"
				   : " bytes (fault below it; it has no guard page)");
		put_str(f->pool ? "; raise its weft_spawn_opts.stack_size\n"
				: "; raise weft_config.stack_size\n");
		abort();
	}
	if (old_segv.sa_flags & SA_SIGINFO) {
		old_segv.sa_sigaction(sig, si, uctx);
		return;
	}
	if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
		old_segv.sa_handler(sig);
		return;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
}

static bool segv_is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == segv_handler;
}

/* Loops alive in the process: the handler stays installed while there is one. */
static pthread_mutex_t segv_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long segv_users;

/* Each thread's alternate signal stack, freed when the thread exits. */
static pthread_key_t altstack_key;
static pthread_once_t altstack_once = PTHREAD_ONCE_INIT;

static void altstack_free(void *mem)
{
	stack_t ss = { .ss_flags = SS_DISABLE };
	stack_t cur;

	/* Only if it is still ours: a program may have put its own since. */
	if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == mem && !(cur.ss_flags & SS_ONSTACK))
		sigaltstack(&ss, NULL);
	free(mem);
}

static void altstack_key_make(void)
{
	(void)pthread_key_create(&altstack_key, altstack_free);
}

/*
 * At loop creation: install the guard-page reporter in front of whatever
 * SIGSEGV handler the process has (it is chained to, see segv_handler), and
 * an alternate signal stack on this thread if it has none (the handler
 * cannot run on the stack that just overflowed).
 */
void weft__stack_segv_install(void)
{
	struct sigaction cur;
	stack_t ss;

	pthread_mutex_lock(&segv_mu);
	segv_users++;
	if (sigaction(SIGSEGV, NULL, &cur) == 0 && !segv_is_ours(&cur)) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = segv_handler;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		old_segv = cur;
		(void)sigaction(SIGSEGV, &sa, NULL);
	}
	pthread_mutex_unlock(&segv_mu);

	pthread_once(&altstack_once, altstack_key_make);
	if (pthread_getspecific(altstack_key) || sigaltstack(NULL, &ss) != 0 ||
	    !(ss.ss_flags & SS_DISABLE))
		return;

	size_t size = 64 * 1024;
	void *mem = malloc(size);

	if (!mem)
		return;
	ss = (stack_t){ .ss_sp = mem, .ss_size = size, .ss_flags = 0 };
	if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(altstack_key, mem) != 0) {
		ss.ss_flags = SS_DISABLE;
		sigaltstack(&ss, NULL);
		free(mem);
	}
}

/* At loop destruction: the last loop of the process puts the old handler back. */
void weft__stack_segv_release(void)
{
	struct sigaction cur;

	pthread_mutex_lock(&segv_mu);
	if (segv_users > 0 && --segv_users == 0 && sigaction(SIGSEGV, NULL, &cur) == 0 &&
	    segv_is_ours(&cur))
		(void)sigaction(SIGSEGV, &old_segv, NULL);
	pthread_mutex_unlock(&segv_mu);
}
