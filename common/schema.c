/* common/schema.c — see schema.h. */
#include "schema.h"

#include <stdio.h>
#include <string.h>

#include "fn_error.h"
#include "hash.h"

const char *const SCHEMA_ALICCP =
    "101,121,122,124,125,126,127,128,129,205,206,207,210,216,508,509,702,853,301,"
    "109_14,110_14,127_14,150_14";

static unsigned slot_of(const char *name, size_t len) { return (unsigned)(fn_hash64(name, len, 7) & 1023); }

int schema_find(const fn_schema *s, const char *name, size_t len)
{
    for (unsigned h = slot_of(name, len);; h = (h + 1) & 1023) {
        int v = s->lut[h];
        if (!v) return -1;
        const char *cand = s->names[v - 1];
        if (strlen(cand) == len && !memcmp(cand, name, len)) return v - 1;
    }
}

int schema_parse(fn_schema *s, const char *spec)
{
    memset(s, 0, sizeof *s);
    if (!strcmp(spec, "aliccp")) spec = SCHEMA_ALICCP;
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len > SCHEMA_MAX_NAME)
            return fn_fail(FN_EUSAGE, "--fields: field id %d is empty or longer than %d characters", s->n + 1, SCHEMA_MAX_NAME);
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == ',')
                return fn_fail(FN_EUSAGE, "--fields: field id %d has a control character", s->n + 1);
        if (s->n >= SCHEMA_MAX_FIELDS) return fn_fail(FN_EUSAGE, "--fields: more than %d fields", SCHEMA_MAX_FIELDS);
        if (schema_find(s, p, len) >= 0) return fn_fail(FN_EUSAGE, "--fields: field '%.*s' listed twice", (int)len, p);
        memcpy(s->names[s->n], p, len);
        s->names[s->n][len] = 0;
        unsigned h = slot_of(p, len);
        while (s->lut[h]) h = (h + 1) & 1023;
        s->lut[h] = (unsigned short)(s->n + 1);
        s->n++;
        if (!e) break;
        p = e + 1;
        if (!*p) return fn_fail(FN_EUSAGE, "--fields: trailing comma");
    }
    if (s->n == 0) return fn_fail(FN_EUSAGE, "--fields: no field given");
    return FN_OK;
}

void schema_format(const fn_schema *s, char *buf, size_t cap)
{
    size_t used = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < s->n && used < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? "," : "", s->names[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}
