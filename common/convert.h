/* common/convert.h — `funnel convert`: Ali-CCP text to the binary format
 * (common/binfmt.h).  See convert.c. */
#ifndef FN_CONVERT_H
#define FN_CONVERT_H

/* argv[0] is "convert".  Returns the process exit code (0 ok, 1 failed,
 * 2 usage). */
int convert_main(int argc, char **argv);

#endif
