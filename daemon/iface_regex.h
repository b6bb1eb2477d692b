/*
 * --iface-regex takes Go (RE2) syntax, as flanneld does; twill matches with
 * POSIX regcomp()/regexec(), so each pattern is translated into ERE first, with
 * RE2's limits and a bound on what glibc would build from it. Pure: no I/O, no
 * logging.
 */
#ifndef TWILL_DAEMON_IFACE_REGEX_H
#define TWILL_DAEMON_IFACE_REGEX_H

#include <regex.h>
#include <stddef.h>

/* Limits on an --iface-regex (see iface_regex_translate). */
#define IFACE_REGEX_MAX_LEN    1024  /* bytes */
#define IFACE_REGEX_MAX_REPEAT 1000  /* a repeat count, and nested counts multiplied (RE2's) */
#define IFACE_REGEX_MAX_STATES 10000 /* the estimated size of the compiled expression */

/*
 * Translate a Go (RE2) regular expression into POSIX ERE for regcomp(): \d \w \s
 * and their negations become bracket expressions, "(?:" becomes "(", a leading
 * "(?i)" sets *@ret_icase, a '{' RE2 reads as a literal becomes "\{". Rejects
 * what RE2 rejects here (counts above IFACE_REGEX_MAX_REPEAT, stacked
 * repetition operators such as "a**" or "a{2}{3}", a repetition without an
 * argument, unbalanced parentheses, backreferences), what ERE cannot express,
 * patterns longer than IFACE_REGEX_MAX_LEN, and those whose compiled form
 * (glibc copies every repetition) is estimated above IFACE_REGEX_MAX_STATES.
 * 0, or -EINVAL (also when @len is too small), -ENOMEM.
 */
int iface_regex_translate(const char *re2, char *buf, size_t len, int *ret_icase);

/*
 * Check an --iface-regex as iface_choose() will use it (translation, limits,
 * regcomp), without compiling anything large. 0, or -EINVAL with
 * "--iface-regex \"RE\": PROBLEM" in @err (IFACE_ERR_MAX is enough), -ENOMEM.
 */
int iface_regex_check(const char *re2, char *err, size_t errlen);

/*
 * Translate and compile @re2 into @re (regfree() it after a success) as
 * iface_choose() matches with it: REG_EXTENDED | REG_NOSUB, REG_ICASE for a
 * leading "(?i)". 0, or -EINVAL with the reason in @err, -ENOMEM.
 */
int iface_regex_compile(const char *re2, regex_t *re, char *err, size_t errlen);

#endif
