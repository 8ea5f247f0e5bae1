/* common/schema.h — which feature fields a model uses, in which order.
 *
 * The field list fixes the layout of the towers' input (field f occupies
 * columns [f*dim, (f+1)*dim)).  "aliccp" names the 23 fields of the public
 * Ali-CCP data set; any comma-separated list of field ids can be given. */
#ifndef FN_SCHEMA_H
#define FN_SCHEMA_H

#include <stddef.h>

#define SCHEMA_MAX_FIELDS 256
#define SCHEMA_MAX_NAME 31

typedef struct {
    int n;
    char names[SCHEMA_MAX_FIELDS][SCHEMA_MAX_NAME + 1];
    /* open-addressing lookup by name: index+1, 0 = empty */
    unsigned short lut[1024];
} fn_schema;

extern const char *const SCHEMA_ALICCP;

/* Parses "aliccp" or "f1,f2,...".  FN_OK or FN_EUSAGE with the reason. */
int schema_parse(fn_schema *s, const char *spec);

/* The index of field name (len bytes), or -1 if not in the schema. */
int schema_find(const fn_schema *s, const char *name, size_t len);

/* Writes "f1,f2,..." into buf. */
void schema_format(const fn_schema *s, char *buf, size_t cap);

#endif
