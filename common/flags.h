/* common/flags.h — command-line flags from a table.
 *
 * Each subcommand declares its flags as an array of flag_spec (name, type,
 * destination, accepted range or choices, help) ending with {0}.
 * flags_parse() fills the destinations and refuses, with one line naming the
 * flag and the accepted range, any unknown flag, missing value, value out of
 * range or missing required flag. */
#ifndef FN_FLAGS_H
#define FN_FLAGS_H

#include <stdio.h>
#include <string.h>

typedef enum { FLAG_INT, FLAG_DOUBLE, FLAG_STRING, FLAG_BOOL, FLAG_CHOICE } flag_type;

typedef struct {
    const char *name;     /* without the leading "--" */
    flag_type type;
    void *dst;            /* long*, double*, const char**, int* (bool), const char** (choice) */
    double min, max;      /* FLAG_INT / FLAG_DOUBLE: accepted closed range */
    const char *choices;  /* FLAG_CHOICE: "a|b|c" */
    const char *help;
    int required;
    int seen;             /* set by flags_parse */
} flag_spec;

enum { FLAGS_HELP = -1 };

/* Parses argv[1..argc-1] (argv[0] is the subcommand name).  Returns FN_OK,
 * FLAGS_HELP when --help/-h was given, or FN_EUSAGE with the reason in
 * fn_err_msg(). */
int flags_parse(flag_spec *specs, int argc, char **argv);

/* Prints "usage: funnel SYNOPSIS" and every flag with its help and range. */
void flags_usage(FILE *f, const char *synopsis, const flag_spec *specs);

/* Whether flag `name` was given on the command line. */
int flags_seen(const flag_spec *specs, const char *name);

/* printf arguments that quote a value from the command line in an error
 * message ("'%.*s%s'"): at most FLAGS_QUOTE_MAX bytes of it, then "...", so
 * that a pasted-in megabyte does not become the message. */
#define FLAGS_QUOTE_MAX 64
#define FLAGS_QUOTE(v) \
    (int)(strlen(v) > FLAGS_QUOTE_MAX ? FLAGS_QUOTE_MAX : strlen(v)), (v), strlen(v) > FLAGS_QUOTE_MAX ? "..." : ""

/* Parses a comma-separated list of positive ints ("200,80") into out[cap].
 * Returns the count, or -1 if malformed or longer than cap. */
int flags_int_list(const char *s, int *out, int cap);

#endif
