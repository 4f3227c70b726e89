/* test_json.c - the JSON reader. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <string.h>

static void
setup(void)
{
  gsl_set_error_handler_off();
}

TestSuite(json, .init = setup);

static qtl_json *
parse_ok(const char *text)
{
  qtl_json *j = NULL;
  quantal_diag d;
  cr_assert_eq(qtl_json_parse(text, strlen(text), "t", &j, &d), QUANTAL_OK,
               "%s", d.reason);
  return j;
}

Test(json, objects_arrays_and_scalars)
{
  qtl_json *j = parse_ok(
      " {\"a\": {\"b\": [1, 2.5e1, -3]}, \"s\": \"x\\ty\\u0041\\\"\","
      " \"t\": true, \"f\": false, \"n\": null, \"e\": {}, \"z\": []}\n");
  const qtl_json *b = qtl_json_path(j, "a.b");
  cr_assert_eq(qtl_json_kind(b), QTL_JSON_ARRAY);
  cr_assert_eq(qtl_json_size(b), 3);
  cr_assert_eq(qtl_json_number(qtl_json_at(b, 1)), 25.0);
  cr_assert_eq(qtl_json_number(qtl_json_at(b, 2)), -3.0);
  cr_assert_null(qtl_json_at(b, 3));
  cr_assert_str_eq(qtl_json_string(qtl_json_get(j, "s")), "x\tyA\"");
  cr_assert_eq(qtl_json_number(qtl_json_get(j, "t")), 1.0);
  cr_assert_eq(qtl_json_number(qtl_json_get(j, "f")), 0.0);
  cr_assert(isnan(qtl_json_number(qtl_json_get(j, "n"))));
  cr_assert_eq(qtl_json_kind(qtl_json_get(j, "n")), QTL_JSON_NULL);
  cr_assert_eq(qtl_json_size(qtl_json_get(j, "e")), 0);
  cr_assert_null(qtl_json_path(j, "a.c"));
  cr_assert_null(qtl_json_path(j, "s.x"));
  cr_assert_str_eq(qtl_json_key(qtl_json_at(j, 1)), "s");
  qtl_json_free(j);
}

Test(json, malformed_text_is_refused_with_the_line)
{
  static const char *bad[] = {"",        "{",         "[1,]",     "{\"a\" 1}",
                              "[1 2]",   "\"abc",     "tru",      "{\"a\":1}x",
                              "[-]",     "\"\\q\"",   "{1: 2}",   "[\"\\u12\"]"};
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    qtl_json *j = NULL;
    quantal_diag d;
    cr_assert_eq(qtl_json_parse(bad[i], strlen(bad[i]), "f.json", &j, &d),
                 QUANTAL_EFORMAT, "accepted '%s'", bad[i]);
    cr_assert_null(j);
    cr_assert(strncmp(d.reason, "not valid JSON: line 1: ", 24) == 0, "%s",
              d.reason);
  }
}

Test(json, deep_nesting_is_bounded)
{
  char text[400];
  qtl_json *j = NULL;
  quantal_diag d;
  memset(text, '[', 200);
  memset(text + 200, ']', 200);
  cr_assert_eq(qtl_json_parse(text, 400, "deep", &j, &d), QUANTAL_EFORMAT);
  cr_assert(strstr(d.reason, "nested more than") != NULL, "%s", d.reason);
}
