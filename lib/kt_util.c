#include <config.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kt_util.h"

char *kt_strdup_or_null(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

static int kt_leading_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int kt_trailing_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void kt_trim_span(const char **start, const char **end)
{
    while (*start < *end && kt_leading_blank(**start))
        (*start)++;
    while (*end > *start && kt_trailing_blank((*end)[-1]))
        (*end)--;
}

char *kt_trim(char *s)
{
    const char *start = s, *end = s + strlen(s);

    kt_trim_span(&start, &end);
    s[end - s] = '\0';
    return s + (start - s);
}

bool kt_has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

uint64_t kt_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t kt_uri_scheme_len(const char *s)
{
    size_t i = 0;

    if (s == NULL || !isalpha((unsigned char)s[0]))
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return s[i] == ':' ? i : 0;
}
