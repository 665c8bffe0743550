/* SPDX-License-Identifier: MIT */
/*
 * Hooks that tell AddressSanitizer and valgrind about fiber stacks. Without
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
