/* SPDX-License-Identifier: MIT */
/*
 * What weft says to a person (explain.c): each thread remembers the last
 * system call or setting of weft that failed, and weft_loop_explain turns
 * an error into one sentence naming that cause and its fix. A leaf.
 */
#ifndef WEFT_EXPLAIN_H
#define WEFT_EXPLAIN_H

#include "base.h"

#pragma GCC visibility push(hidden)

/*
 * Remember that @what (a system call, a setting, a variable) failed with
 * @err on this thread; NULL forgets. @what must be a string that lives for
 * ever (a literal, an op table name).
 */
void weft__explain_note(const char *what, int err);
/* This thread's last note: its cause (NULL if none), *@err its error. */
const char *weft__explain_last(int *err);
/* The environment variable @name=@value is not understood: note it. Return: -EINVAL. */
int weft__explain_env(const char *name, const char *value, const char *accepted);
/*
 * Say once per process, on stderr, that the environment holds a WEFT_*
 * variable that is none of @known (NULL-terminated), naming the nearest
 * and the known ones: a misspelt name would otherwise change nothing.
 */
void weft__explain_env_unknown(const char *const *known);
/* @op cannot run on this loop's backend @backend, and has no fallback: note it. */
void weft__explain_unsupported(const char *op, const char *backend);
/* What weft_loop_explain(0) says: the sentence on this thread's last loop's backend. */
void weft__explain_backend(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#pragma GCC visibility pop

#endif
