/* bench_vary: several settings of a per-call library knob in one benchmark process (bench_vary.h). */
#include "bench_vary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool bench_vary_parse(bench_vary *v, const char *arg)
{
    bench_vary t = {0};
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof t.name) return false;
    memcpy(t.name, arg, (size_t)(eq - arg));
    for (const char *p = eq + 1;;) {
        const char *end = strchr(p, '/');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len >= sizeof t.values[0] || t.count == BENCH_VARY_MAX) return false;
        memcpy(t.values[t.count++], p, len);
        if (!end) break;
        p = end + 1;
    }
    const char *now = getenv(t.name);
    if (now && strlen(now) >= sizeof t.saved) return false;
    t.had = now != NULL;
    if (now) strcpy(t.saved, now);
    *v = t;
    return true;
}

int bench_vary_count(const bench_vary *v) { return v->count ? v->count : 1; }

void bench_vary_apply(const bench_vary *v, int i)
{
    if (!v->count) return;
    if (strcmp(v->values[i], "default") == 0) unsetenv(v->name);
    else setenv(v->name, v->values[i], 1);
}

const char *bench_vary_label(const bench_vary *v, int i, char *buf, int size)
{
    if (!v->count) return "";
    snprintf(buf, (size_t)size, "%s=%s", v->name, v->values[i]);
    return buf;
}

void bench_vary_restore(const bench_vary *v)
{
    if (!v->count) return;
    if (v->had) setenv(v->name, v->saved, 1);
    else unsetenv(v->name);
}
