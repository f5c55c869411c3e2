/* hex.h - the value of one hexadecimal digit, for the percent-decoders (route.c, sigv4.c,
 * ec2sim's query.c). */
#ifndef EBSD_HEX_H
#define EBSD_HEX_H

/* 0..15 for [0-9a-fA-F], -1 for any other character. */
static inline int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
