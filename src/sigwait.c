/* SPDX-License-Identifier: MIT */
/*
 * weft_signal_wait: a fiber waits for a signal.
 *
 * Each loop has one signalfd, used only as a readiness source: its mask is
 * the union of the sets its waiters wait for now (a count per signal), so
 * that a pending signal nobody waits for does not keep it readable. A
 * waiter takes its signal with sigtimedwait(2) and a zero timeout, which
 * dequeues only signals of its own set, from the process or its thread:
 * several waiters, on one loop or many, never take each other's signal,
 * and one signal goes to one waiter. Woken without one of its own (another
 * took it, or it is another waiter's), a waiter polls again.
 *
 * A signal must be blocked in every thread, or the kernel delivers it to a
 * thread where it is not (main, typically) and the default action kills the
 * process. weft's own threads start with every signal blocked but the
 * faults (weft__thread_start), the waiter blocks its set in its thread, and
 * for the threads weft does not control a handler takes over signals whose
 * action was SIG_DFL or SIG_IGN: run on a thread where the signal is not
 * blocked, it blocks it there for good (in the mask the kernel restores on
 * return from the handler) and queues the signal to the process again,
 * where a waiter finds it. Should it land on that thread again (valgrind
 * does not honour a handler's change of uc_sigmask, and the signal came back
 * to the same thread for ever), the handler queues it to the thread of a
 * loop where a fiber waits for it, which blocks it: there it stays pending
 * until the waiter takes it. Not the first choice, because a fiber's poll of
 * the signalfd on an SQPOLL ring is armed by the kernel's SQ thread, which
 * sees the signals pending for the process but not those of the loop's
 * thread.
 */
#include "sigwait.h"
#include "base.h"
#include "backend.h"
#include "fiber.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define SQPOLL_RECHECK_NS (10 * WEFT_MSEC)

struct weft__sigloop {
	int fd;			    /* the signalfd, -1 until the first wait */
	sigset_t mask;		    /* its mask: what is waited for now */
	unsigned refs[_NSIG + 1];   /* waiters per signal; under handlers_mu */
	pid_t tid;		    /* the loop's thread, set by its waiters */
	struct weft__sigloop *next; /* in sigloops, under handlers_mu */
};

static pthread_mutex_t handlers_mu = PTHREAD_MUTEX_INITIALIZER;
static sigset_t handled;	       /* signals whose action is weft's handler */
static struct weft__sigloop *sigloops; /* every loop's, under handlers_mu */
/* Per signal, the thread id of a loop where a fiber waits for it, or 0. */
static _Atomic pid_t hand_to[_NSIG + 1];
/* The signals this thread's handler has blocked here and handed on. */
static __thread uint64_t handed_here[(_NSIG + 64) / 64] __attribute__((tls_model("initial-exec")));

/*
 * Queue @sig with @si to thread @tid of process @pid (the process when @tid
 * is 0). Only the main thread, whose id is the process's, may queue a
 * kernel or kill(2) siginfo (si_code >= 0); from another the copy says
 * SI_QUEUE, keeping the sender's pid, uid and value.
 */
static int requeue(pid_t pid, pid_t tid, int sig, const siginfo_t *si)
{
	siginfo_t c = *si;

	for (int i = 0; i < 2; i++) {
		long rc = tid ? syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &c)
			      : syscall(SYS_rt_sigqueueinfo, pid, sig, &c);

		if (rc == 0)
			return 0;
		if (errno != EPERM)
			break;
		c.si_code = SI_QUEUE;
	}
	return tid ? (int)syscall(SYS_tgkill, pid, tid, sig) : kill(pid, sig);
}

/*
 * The signal landed on a thread where it is not blocked: block it there
 * from now on (the kernel restores uc_sigmask when the handler returns)
 * and queue it to the process again, with its siginfo where the kernel
 * allows that (only the main thread, whose id is the process's, may queue
 * a kernel or kill(2) siginfo to its process); otherwise as a kill.
 */
static void hand_on(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	int saved = errno;
	pid_t pid = getpid();
	uint64_t bit = 1ull << (sig % 64);
	pid_t to = 0;

	if (handed_here[sig / 64] & bit) /* blocked here before, yet here again */
		to = atomic_load_explicit(&hand_to[sig], memory_order_relaxed);
	handed_here[sig / 64] |= bit;
	sigaddset(&uc->uc_sigmask, sig);
	if (to <= 0 || to == (pid_t)syscall(SYS_gettid) || requeue(pid, to, sig, si) != 0)
		requeue(pid, 0, sig, si);
	errno = saved;
}

/* Give each signal of @set weft's handler, unless the program has its own. */
static int take_over(const sigset_t *set)
{
	int rc = 0;

	pthread_mutex_lock(&handlers_mu);
	for (int sig = 1; sig <= _NSIG && rc == 0; sig++) {
		struct sigaction old;

		if (sigismember(set, sig) != 1 || sigismember(&handled, sig) == 1)
			continue;
		if (sigaction(sig, NULL, &old) != 0) {
			rc = -errno;
			break;
		}
		/* sa_handler and sa_sigaction share storage: SIG_DFL with SA_SIGINFO is SIG_DFL. */
		if (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN) {
			struct sigaction sa = { .sa_sigaction = hand_on };

			sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
			/* Keep what the old action meant for children: SIG_IGN reaps them. */
			sa.sa_flags |= old.sa_flags & (SA_NOCLDSTOP | SA_NOCLDWAIT);
			if (sig == SIGCHLD && old.sa_handler == SIG_IGN)
				sa.sa_flags |= SA_NOCLDWAIT;
			sigemptyset(&sa.sa_mask);
			if (sigaction(sig, &sa, NULL) != 0)
				rc = -errno;
		}
		sigaddset(&handled, sig); /* weft's now, or the program's: leave it */
	}
	pthread_mutex_unlock(&handlers_mu);
	return rc;
}

/* -EINVAL for an empty set or one with a signal no fiber may wait for. */
static int check_set(const sigset_t *set)
{
	static const int refused[] = { SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
				       SIGILL,	SIGFPE,	 SIGTRAP, SIGSYS };
	bool any = false;

	if (!set)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (sigismember(set, refused[i]) == 1)
			return -EINVAL;
	for (int sig = 1; sig <= _NSIG && !any; sig++)
		any = sigismember(set, sig) == 1;
	return any ? 0 : -EINVAL;
}

static struct weft__sigloop *sigloop(struct weft_loop *l)
{
	if (!l->sig) {
		l->sig = calloc(1, sizeof(*l->sig));
		if (!l->sig)
			return NULL;
		l->sig->fd = -1;
		sigemptyset(&l->sig->mask);
		pthread_mutex_lock(&handlers_mu);
		l->sig->next = sigloops;
		sigloops = l->sig;
		pthread_mutex_unlock(&handlers_mu);
	}
	return l->sig;
}

/* Under handlers_mu: the thread of a loop with a waiter for @sig, or 0. */
static pid_t other_waiting_loop(int sig)
{
	for (const struct weft__sigloop *q = sigloops; q; q = q->next)
		if (q->refs[sig] > 0)
			return q->tid;
	return 0;
}

/*
 * Count @set's waiter in (@d = 1) or out (-1), name this thread (@tid) the
 * one to hand its signals to while it has waiters, and give the signalfd
 * the new mask.
 */
static int count(struct weft__sigloop *s, const sigset_t *set, int d, pid_t tid)
{
	sigemptyset(&s->mask);
	pthread_mutex_lock(&handlers_mu);
	s->tid = tid;
	for (int sig = 1; sig <= _NSIG; sig++) {
		if (sigismember(set, sig) == 1) {
			s->refs[sig] += (unsigned)d;
			if (d > 0)
				atomic_store(&hand_to[sig], tid);
			else if (s->refs[sig] == 0 && atomic_load(&hand_to[sig]) == tid)
				atomic_store(&hand_to[sig], other_waiting_loop(sig));
		}
		if (s->refs[sig] > 0)
			sigaddset(&s->mask, sig);
	}
	pthread_mutex_unlock(&handlers_mu);

	if (s->fd < 0 && d < 0)
		return 0;

	int fd = signalfd(s->fd, &s->mask, SFD_NONBLOCK | SFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	s->fd = fd;
	return 0;
}

/* Take a pending signal of @set: its number, 0 if none is pending, or -errno. */
static int take(const sigset_t *set, siginfo_t *info)
{
	static const struct timespec zero = { 0, 0 };
	siginfo_t si;
	int sig = sigtimedwait(set, &si, &zero);

	if (sig > 0) {
		if (info)
			*info = si;
		return sig;
	}
	return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

int weft_signal_wait(const sigset_t *set, siginfo_t *info)
{
	struct weft_loop *l = weft__tls_loop;
	int rc = check_set(set);

	if (rc < 0)
		return rc;
	if (!l || !l->cur)
		return -EPERM;
	if (l->cur->cancelled)
		return -ECANCELED;
	if (l->cur->deadline != WEFT_FOREVER && weft_now() >= l->cur->deadline)
		return -ETIMEDOUT; /* as every op at its start */
	rc = take_over(set);
	if (rc < 0)
		return rc;
	pthread_sigmask(SIG_BLOCK, set, NULL);

	struct weft__sigloop *s = sigloop(l);

	if (!s)
		return -ENOMEM;
	pid_t tid = (pid_t)syscall(SYS_gettid);

	rc = count(s, set, 1, tid);
	if (rc < 0) {
		count(s, set, -1, tid);
		return rc;
	}
	/*
	 * On an SQPOLL ring the SQ thread arms and re-checks the poll, and
	 * signalfd_poll() looks at current's pending signals: those sent to this
	 * thread (pthread_kill, tgkill) wake the poll but never complete it.
	 * There each poll is bounded, so that take() runs again on this thread.
	 */
	const bool bounded = (l->cfg.flags & WEFT_CONFIG_SQPOLL) && l->be == &weft__backend_uring;

	while (rc == 0) {
		rc = take(set, info);
		if (rc == 0) {
			int64_t outer = weft_deadline();
			int64_t tick = weft_now() + SQPOLL_RECHECK_NS;
			bool cut = bounded && (outer == WEFT_FOREVER || tick < outer);

			if (cut)
				weft_set_deadline(tick);
			int ev = weft_poll(s->fd, POLLIN);

			if (cut) {
				weft_set_deadline(outer);
				if (ev == -ETIMEDOUT)
					ev = 0; /* the bound, not the fiber's deadline */
			}
			rc = ev < 0 ? ev : 0;
		}
	}
	count(s, set, -1, tid); /* a smaller mask: the signalfd stays, it cannot fail */
	return rc;
}

void weft__sigwait_fini(struct weft_loop *l)
{
	if (!l->sig)
		return;
	pthread_mutex_lock(&handlers_mu);
	for (struct weft__sigloop **q = &sigloops; *q; q = &(*q)->next)
		if (*q == l->sig) {
			*q = l->sig->next;
			break;
		}
	pthread_mutex_unlock(&handlers_mu);
	if (l->sig->fd >= 0)
		close(l->sig->fd);
	free(l->sig);
	l->sig = NULL;
}
