#include "mantactl.h"
int cmd_top(int argc, char **argv) { (void)argc; (void)argv; return CTL_FAIL; }
