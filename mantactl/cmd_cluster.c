#include "mantactl.h"
int cmd_cluster(int argc, char **argv) { (void)argc; (void)argv; return CTL_FAIL; }
