/* common/mkdirs.h — `mkdir -p`: a directory and its missing parents.
 *
 * The one helper for every output directory a command is given (train's
 * run directory, datagen's world, convert's parts), so `--out a/b/c` works
 * alike everywhere. */
#ifndef FN_MKDIRS_H
#define FN_MKDIRS_H

/* Creates path and any missing parents (mode 0777 less the umask, as
 * mkdir(1)); a path that exists as a directory is fine.  Returns FN_OK, or
 * FN_EINVAL / FN_EIO with fn_err_msg() naming the part that failed and why
 * (the caller adds which flag it came from). */
int fn_mkdirs(const char *path);

#endif
