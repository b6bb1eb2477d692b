/*
 * Backend settings for the backend tests: the TWILL_* environment a test set
 * with setenv(), read the way twilld reads it (be_settings_from_env), for init.
 */
#ifndef TWILL_TESTS_BE_TESTENV_H
#define TWILL_TESTS_BE_TESTENV_H

#include <criterion/criterion.h>

#include "backends/backend.h"

static inline const struct be_settings *env_settings(void)
{
	static struct be_settings set;
	char err[256];

	cr_assert_eq(be_settings_from_env(&set, err, sizeof(err)), 0, "%s", err);
	return &set;
}

#endif
