/* test_cfg_notes: cfg_reference_notes(), what the keys a reference node
 * ignores do here, from the effective values of a struct manta_cfg. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg.h"

struct notes {
	char text[8192];
	int n;
};

static void
collect(void *arg, const char *note)
{
	struct notes *ns = arg;
	size_t len = strlen(ns->text);

	snprintf(ns->text + len, sizeof(ns->text) - len, "%s\n", note);
	ns->n++;
}

/* A reference file's values (WIRE.md section 10). */
static void
reference(struct manta_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->max_concurrent = 2;
	c->task_timeout = 3600;
	c->default_cpu_limit = (char *)"2.0";
	c->cpu_limit = 2.0;
	c->default_memory_limit = (char *)"4G";
	c->memory_limit_bytes = 4ULL << 30;
	c->reserve_memory_mb = 512;
	c->reserve_cpu_percent = 10;
	c->stream_logs = true;
	c->retry_attempts = 3;
	c->cleanup_on_failure = true;
	c->max_disk_usage_percent = 90;
	c->verify_ssl = true;
}

static void
test_reference_file(void **state)
{
	struct manta_cfg c;
	struct notes ns = { "", 0 };
	int n;

	(void)state;
	reference(&c);
	n = cfg_reference_notes(&c, collect, &ns);
	assert_int_equal(n, ns.n);
	assert_non_null(strstr(ns.text, "tasks.task_timeout = 3600: tasks running"
	    " longer than 3600 s are stopped and reported FAILED"));
	assert_non_null(strstr(ns.text, "tasks.max_concurrent = 2: at most 2"));
	assert_non_null(strstr(ns.text, "containers.default_cpu_limit = \"2.0\":"
	    " each task is capped at 2.0 CPUs (cgroup quota); tasks share"));
	assert_non_null(strstr(ns.text, "containers.default_memory_limit = \"4G\""));
	assert_non_null(strstr(ns.text, "tasks.stream_logs = true: no effect"));
	/* Said only when they do something. */
	assert_null(strstr(ns.text, "live_logs_to_manager"));
	assert_null(strstr(ns.text, "reserve_cpu_percent"));
	assert_null(strstr(ns.text, "verify_ssl"));
	assert_null(strstr(ns.text, "cleanup_on_failure"));
}

static void
test_variants(void **state)
{
	struct manta_cfg c;
	struct notes ns = { "", 0 };

	(void)state;
	reference(&c);
	c.task_timeout = 0;
	c.reserve_cpu = true;
	c.live_logs_to_manager = true;
	c.verify_ssl = false;
	c.cleanup_on_failure = false;
	(void)cfg_reference_notes(&c, collect, &ns);
	assert_null(strstr(ns.text, "task_timeout"));
	assert_non_null(strstr(ns.text, "with resources.reserve_cpu, starts only"
	    " when 2.0 CPUs are not reserved"));
	assert_non_null(strstr(ns.text, "resources.reserve_cpu_percent = 10"));
	assert_non_null(strstr(ns.text, "tasks.live_logs_to_manager = true"));
	assert_non_null(strstr(ns.text, "security.verify_ssl = false"));
	assert_non_null(strstr(ns.text, "tasks.cleanup_on_failure = false"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_file),
		cmocka_unit_test(test_variants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
