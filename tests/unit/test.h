/* test.h - the smallest test harness that tells you what failed.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *   int main(void) { RUN(name); return test_done(); }
 */
#ifndef MF_TEST_H
#define MF_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_checks;
static int test_passed, test_failed;
static const char *test_current;

#define TEST(name) static void name(void)
#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__,    \
				__LINE__, test_current, #cond);                       \
			test_failed_checks++;                                         \
		}                                                                     \
	} while (0)
#define CHECK_INT(a, b)                                                               \
	do {                                                                          \
		long long va_ = (long long)(a), vb_ = (long long)(b);                 \
		if (va_ != vb_) {                                                     \
			fprintf(stderr, "%s:%d: %s: %s == %lld, expected %lld\n",     \
				__FILE__, __LINE__, test_current, #a, va_, vb_);      \
			test_failed_checks++;                                         \
		}                                                                     \
	} while (0)
#define CHECK_STR(a, b)                                                               \
	do {                                                                          \
		const char *sa_ = (a), *sb_ = (b);                                    \
		if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                          \
			fprintf(stderr, "%s:%d: %s: %s == \"%s\", expected \"%s\"\n", \
				__FILE__, __LINE__, test_current, #a,                 \
				sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");          \
			test_failed_checks++;                                         \
		}                                                                     \
	} while (0)
#define RUN(name)                                                                     \
	do {                                                                          \
		int before_ = test_failed_checks;                                     \
		test_current = #name;                                                 \
		name();                                                               \
		if (test_failed_checks == before_) {                                  \
			test_passed++;                                                \
		} else {                                                              \
			test_failed++;                                                \
			fprintf(stderr, "FAIL %s\n", #name);                          \
		}                                                                     \
	} while (0)

static inline int test_done(void)
{
	printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed ? 1 : 0;
}

#endif
