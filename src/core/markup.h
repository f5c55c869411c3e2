/* markup.h - the entity that escapes one character in XML or HTML text and attribute values,
 * for the page (page.c) and ec2sim's XML writer (xmlw.c). */
#ifndef EBSD_MARKUP_H
#define EBSD_MARKUP_H

/* The entity for c, or NULL when c stands as it is. apos: the entity for a single quote
 * ("&apos;" in XML; HTML 4 lacks it, so the page uses "&#39;"). */
static inline const char *markup_entity(char c, const char *apos)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return apos;
    default: return NULL;
    }
}

#endif
