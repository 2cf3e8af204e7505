/* factory.c (binding): TODO */
#include "bind.h"

const luaL_Reg lt_factory_functions[] = {{NULL, NULL}};
