/* index.c (binding): TODO */
#include "bind.h"

const luaL_Reg lt_index_methods[] = {{NULL, NULL}};
const luaL_Reg lt_index_functions[] = {{NULL, NULL}};
