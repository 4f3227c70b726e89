#include <criterion/criterion.h>
Test(recording, placeholder) { cr_assert(1); }
