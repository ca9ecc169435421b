/* Run-time version of the linked library. */
#include "internal.h"

unsigned fp8_version_number(void) { return FP8_VERSION_NUMBER; }

#define FP8_STR2_(x) #x
#define FP8_STR_(x) FP8_STR2_(x)
const char *fp8_version_string(void)
{
    return FP8_STR_(FP8_VERSION_MAJOR) "." FP8_STR_(FP8_VERSION_MINOR) "." FP8_STR_(FP8_VERSION_PATCH);
}
