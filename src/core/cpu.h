/*
 * cpu.h: the platform #ifs of the C core, all of them: whether this build can carry x86 SIMD
 * kernels, how a function is compiled for an instruction set the rest of the module does not
 * assume, how the CPU is asked what it supports, the instruction-set levels of the kernels, and a
 * spin-wait hint. Platform #ifs live here, not in function bodies: other files use these macros,
 * and guard code written with x86 intrinsics as a whole section with `#if MG_CPU_X86`.
 *
 * No -m flags anywhere: the module runs on any CPU of its architecture, and each SIMD kernel is
 * compiled for its instruction set by a target attribute and called only after a run-time check.
 */
#ifndef MG_CPU_H
#define MG_CPU_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
/* x86 with GCC or clang: target attributes, libgcc's CPU model and the intrinsics are there */
#define MG_CPU_X86 1
#include <immintrin.h>
/* compiles one function for instruction set `isa`, e.g. MG_TARGET("avx2,fma") */
#define MG_TARGET(isa) __attribute__((target(isa)))
/* asked of libgcc's CPU model (it is filled once at load time: no state of ours) */
#define MG_CPU_HAS_AVX2_FMA() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
#define MG_CPU_HAS_AVX512() (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && \
                             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
/* in a spin-wait (x86 `pause`): a sibling hyperthread keeps running at speed */
#define MG_CPU_PAUSE() __builtin_ia32_pause()
#else
#define MG_CPU_X86 0
#define MG_TARGET(isa)
#define MG_CPU_HAS_AVX2_FMA() 0
#define MG_CPU_HAS_AVX512() 0
#define MG_CPU_PAUSE() ((void)0)
#endif

/* ---- instruction-set levels: each hot kernel is compiled once per level ---------------------
 * A ctx's level (ctx->isa) is chosen when the ctx is created (mg_ctx_init: what the CPU has, capped
 * by MOONGRAD_ISA=baseline|avx2|avx512) and indexes the kernel tables: no global state, and a
 * spec can force each level in turn. Every level gives the same bits: the kernels' files are
 * compiled with -ffp-contract=off (no a * b + c fused where the baseline rounds twice), sums keep
 * their order (no -ffast-math), and libm is called the same way (SIMD only where a loop
 * vectorizes exactly: + - * / sqrt, compares, conversions).
 *
 *   MG_ISA_STAMP(DEF, args...)  DEF(isa, args...) once per level; isa is the token base, avx2 or
 *                               avx512. DEF writes `static MG_ISA_FN(name, isa)(...) { body }`.
 *   MG_ISA_FN(name, isa)        the target attribute of level isa and the name name_isa, aligned
 *                               to 64 bytes: every level's loops sit alike in the cache lines
 *                               (unaligned, an identical avx2 loop of max ran 1.5x slower)
 *   MG_ISA_ROW(M, args...)      {M(args..., base), M(args..., avx2), M(args..., avx512)}: a table
 *                               row indexed by ctx->isa (M gives one entry or a nested row)
 *   MG_ISA_PICK(isa, name)      the function name_<level> for a run-time level (direct calls)
 * Elsewhere than x86 only the baseline is compiled and every level names it. */
typedef enum mg_isa { MG_ISA_BASELINE, MG_ISA_AVX2, MG_ISA_AVX512, MG_NISA } mg_isa;
#define MG_ISA_FN(name, isa) MG_ISA_TARGET_##isa __attribute__((aligned(64))) name##_##isa
#define MG_ISA_TARGET_base
#if MG_CPU_X86
#define MG_ISA_TARGET_avx2 MG_TARGET("avx2,fma")
#define MG_ISA_TARGET_avx512 MG_TARGET("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")
#define MG_ISA_STAMP(DEF, ...) DEF(base, __VA_ARGS__) DEF(avx2, __VA_ARGS__) DEF(avx512, __VA_ARGS__)
#define MG_ISA_ROW(M, ...) {M(__VA_ARGS__, base), M(__VA_ARGS__, avx2), M(__VA_ARGS__, avx512)}
#define MG_ISA_PICK(isa, name)                                                                 \
    ((isa) >= MG_ISA_AVX512 ? name##_avx512 : (isa) == MG_ISA_AVX2 ? name##_avx2 : name##_base)
/* the highest level this CPU runs */
#define MG_CPU_ISA()                                                                           \
    (!MG_CPU_HAS_AVX2_FMA() ? MG_ISA_BASELINE : MG_CPU_HAS_AVX512() ? MG_ISA_AVX512 : MG_ISA_AVX2)
#else
#define MG_ISA_STAMP(DEF, ...) DEF(base, __VA_ARGS__)
#define MG_ISA_ROW(M, ...) {M(__VA_ARGS__, base), M(__VA_ARGS__, base), M(__VA_ARGS__, base)}
#define MG_ISA_PICK(isa, name) ((void)(isa), name##_base)
#define MG_CPU_ISA() MG_ISA_BASELINE
#endif

#endif
