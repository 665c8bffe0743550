/* SPDX-License-Identifier: MIT */
/*
 * Hooks that tell AddressSanitizer, ThreadSanitizer and valgrind about
 * fiber stacks. Without
 * them ASan reports false stack-buffer overflows after a switch (and misses
 * real ones), and valgrind takes a switch for a wild stack-pointer move.
 * Each is a no-op in a build without the tool.
 */
#ifndef WEFT_SANITIZE_H
#define WEFT_SANITIZE_H

#include "config.h"

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif

#ifdef WEFT_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
				     size_t *size_old);
#define weft__asan_start(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define weft__asan_finish(save, bottom_old, size_old)                                              \
	__sanitizer_finish_switch_fiber(save, bottom_old, size_old)
/*
 * A fiber that returns leaves the redzones of the frames it never unwound
 * (the switch out of fiber_exit) poisoned; the next fiber on that stack
 * must start from clean shadow.
 */
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
#define weft__asan_unpoison(addr, size) __asan_unpoison_memory_region(addr, size)
#else
#define weft__asan_unpoison(addr, size) ((void)(addr), (void)(size))
#define weft__asan_start(save, bottom, size) ((void)(save), (void)(bottom), (void)(size))
#define weft__asan_finish(save, bottom_old, size_old)                                              \
	((void)(save), (void)(bottom_old), (void)(size_old))
#endif

#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

#ifdef WEFT_TSAN
/*
 * ThreadSanitizer keeps a shadow of each thread's stack and its
 * happens-before clock: every fiber is a TSan fiber of its own, and every
 * switch says where it goes, or TSan takes a fiber's frames for another's.
 */
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#define weft__tsan_current() __tsan_get_current_fiber()
#define weft__tsan_create() __tsan_create_fiber(0)
#define weft__tsan_destroy(f) __tsan_destroy_fiber(f)
#define weft__tsan_switch(f) __tsan_switch_to_fiber((f), 0)
#else
#define weft__tsan_current() ((void *)0)
#define weft__tsan_create() ((void *)0)
#define weft__tsan_destroy(f) ((void)(f))
#define weft__tsan_switch(f) ((void)(f))
#endif

#if WEFT_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define weft__vg_stack_register(lo, hi) VALGRIND_STACK_REGISTER(lo, hi)
#define weft__vg_stack_deregister(id) VALGRIND_STACK_DEREGISTER(id)
#else
#define weft__vg_stack_register(lo, hi) ((void)(lo), (void)(hi), 0u)
#define weft__vg_stack_deregister(id) ((void)(id))
#endif

#endif
