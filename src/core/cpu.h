/*
 * cpu.h: the platform #ifs of the C core, all of them: whether this build can carry x86 SIMD
 * kernels, how a function is compiled for an instruction set the rest of the module does not
 * assume, how the CPU is asked what it supports, and a spin-wait hint. Platform #ifs live here,
 * not in function bodies: other files use these macros, and guard code written with x86
 * intrinsics as a whole section with `#if MG_CPU_X86`.
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
/* asked of libgcc's CPU model at each call (it is filled once at load time: no state of ours) */
#define MG_CPU_HAS_AVX2_FMA() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
#define MG_CPU_HAS_AVX512_FMA() (__builtin_cpu_supports("avx512f") && MG_CPU_HAS_AVX2_FMA())
/* in a spin-wait (x86 `pause`): a sibling hyperthread keeps running at speed */
#define MG_CPU_PAUSE() __builtin_ia32_pause()
#else
#define MG_CPU_X86 0
#define MG_TARGET(isa)
#define MG_CPU_HAS_AVX2_FMA() 0
#define MG_CPU_HAS_AVX512_FMA() 0
#define MG_CPU_PAUSE() ((void)0)
#endif

/* A function compiled three times (AVX-512, AVX2, baseline), the dynamic loader picking the one
 * for this CPU (GCC's target_clones, an ifunc: x86-64 GCC only). Elsewhere compiled once. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define MG_CLONES_AVX __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MG_CLONES_AVX
#endif

#endif
