/* unary.c (binding): TODO */
#include "bind.h"

const luaL_Reg lt_unary_methods[] = {{NULL, NULL}};
const luaL_Reg lt_unary_functions[] = {{NULL, NULL}};
const luaL_Reg lt_unary_metamethods[] = {{NULL, NULL}};
