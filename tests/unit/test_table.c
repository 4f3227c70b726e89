#include <criterion/criterion.h>
Test(table, placeholder) { cr_assert(1); }
