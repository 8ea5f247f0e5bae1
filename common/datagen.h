/* common/datagen.h — `funnel datagen`: synthetic Ali-CCP-format worlds with
 * known click and conversion probabilities.  See datagen.c for the model. */
#ifndef FN_DATAGEN_H
#define FN_DATAGEN_H

/* argv[0] is "datagen".  Returns the process exit code (0 ok, 2 usage). */
int datagen_main(int argc, char **argv);

#endif
