/* functional.c (binding): mg.F, the functional kernels (src/ops/loss.c). */
#include "bind.h"

const luaL_Reg lt_functional_functions[] = {{NULL, NULL}};
