/* linalg.c (binding): TODO */
#include "bind.h"

const luaL_Reg lt_linalg_methods[] = {{NULL, NULL}};
const luaL_Reg lt_linalg_functions[] = {{NULL, NULL}};
