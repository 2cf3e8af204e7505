/* random.c (binding): TODO */
#include "bind.h"

const luaL_Reg lt_random_methods[] = {{NULL, NULL}};
const luaL_Reg lt_random_functions[] = {{NULL, NULL}};
