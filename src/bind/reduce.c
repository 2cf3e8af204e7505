/* reduce.c (binding): TODO */
#include "bind.h"

const luaL_Reg lt_reduce_methods[] = {{NULL, NULL}};
const luaL_Reg lt_reduce_functions[] = {{NULL, NULL}};
