/* SPDX-License-Identifier: MIT */
/*
 * AArch64 (AAPCS64) context switch. Saves x19-x29, the return address, sp,
 * the low halves of v8-v15 (d8-d15) and FPCR of the running context, loads
 * the next one's, and enters it with ret: as on x86-64 (see its switch.S for
 * the figures), the return predictor's top entry is the one our own bl to
 * weft__ctx_jump pushed, which is where a fiber parked through the same call
 * site resumes, and a ret needs no BTI landing pad where a br would.
 *
 * struct weft__ctx (see arch/switch.h):
 *
 *     0 sp    8 pc   16 x19 x20 x21 x22 x23 x24 x25 x26 x27 x28
 *    96 x29 104 d8 d9 d10 d11 d12 d13 d14 d15  168 fpcr
 *
 * A fresh context: sp = stack_top (16-byte aligned), pc = weft__ctx_entry,
 * x19 = arg, x20 = fn. fn never returns (brk catches it if it does).
 * Checked under qemu-user by tests/check_switch_cross.sh (no arm64 machine
 * here to time it on).
 */
	.text

/* void weft__ctx_jump(struct weft__ctx *from, const struct weft__ctx *to) */
	.globl	weft__ctx_jump
	.hidden	weft__ctx_jump
	.type	weft__ctx_jump, %function
	.p2align 4
weft__ctx_jump:
	.cfi_startproc
	mov	x9, sp
	str	x9, [x0, #0]
	str	x30, [x0, #8]
	stp	x19, x20, [x0, #16]
	stp	x21, x22, [x0, #32]
	stp	x23, x24, [x0, #48]
	stp	x25, x26, [x0, #64]
	stp	x27, x28, [x0, #80]
	str	x29, [x0, #96]
	stp	d8, d9, [x0, #104]
	stp	d10, d11, [x0, #120]
	stp	d12, d13, [x0, #136]
	stp	d14, d15, [x0, #152]
	mrs	x9, fpcr
	str	x9, [x0, #168]

	ldr	x9, [x1, #168]
	msr	fpcr, x9
	ldp	x19, x20, [x1, #16]
	ldp	x21, x22, [x1, #32]
	ldp	x23, x24, [x1, #48]
	ldp	x25, x26, [x1, #64]
	ldp	x27, x28, [x1, #80]
	ldr	x29, [x1, #96]
	ldp	d8, d9, [x1, #104]
	ldp	d10, d11, [x1, #120]
	ldp	d12, d13, [x1, #136]
	ldp	d14, d15, [x1, #152]
	ldr	x9, [x1, #0]
	mov	sp, x9
	ldr	x30, [x1, #8]
	ret
	.cfi_endproc
	.size	weft__ctx_jump, .-weft__ctx_jump

/* First code of a fresh context: fn(arg) from x20(x19). */
	.globl	weft__ctx_entry
	.hidden	weft__ctx_entry
	.type	weft__ctx_entry, %function
	.p2align 4
weft__ctx_entry:
	.cfi_startproc
	.cfi_undefined x30
	mov	x29, #0
	mov	x0, x19
	blr	x20
	brk	#0
	.cfi_endproc
	.size	weft__ctx_entry, .-weft__ctx_entry

	.section .note.GNU-stack, "", %progbits
