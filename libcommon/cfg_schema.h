/* cfg_schema: the key table shared by cfg.c (loading), cfg_print.c and
 * cfg_schema.c (the table and its checks). Internal to libcommon's cfg
 * files; the daemons use cfg.h. */
#ifndef MANTA_CFG_SCHEMA_H
#define MANTA_CFG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

enum kind {
	K_STR,		/* char * */
	K_PATH,		/* char *, "~" expanded */
	K_INT,		/* int, within [min, max] */
	K_FLOAT,	/* double, within [min, max] */
	K_BOOL,		/* bool */
	K_TRIBOOL,	/* int: -1 unset, 0, 1 */
	K_TIME,		/* char *: a string or a TOML date-time */
	K_TOPICS,	/* mqtt.topics */
	K_LOGCFG,	/* containers.log_config */
	K_MAPPINGS,	/* datasets.mappings */
	K_PERMISSIONS,	/* datasets.permissions */
	K_OPTBOOL,	/* security.task_token_required: bool, and whether set */
	K_STRLIST,	/* struct cfg_strlist: an array of non-empty strings */
};

/* Checks (and may normalize) a string value; returns NULL or a message. */
typedef const char *(*check_fn)(struct manta_cfg *c, char **val);

struct key_spec {
	const char *section;
	const char *name;
	enum kind kind;
	size_t off;
	int64_t min, max;
	check_fn check;
	bool secret;
};

#define FIELD(c, k, type) ((type *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, type) ((type const *)(const void *)((const char *)(c) + (k)->off))

/* The keys in the reference's order (cfg_print writes them so), and the
 * sections as `config init` writes them. */
extern const struct key_spec cfg_keys[];
extern const size_t cfg_nkeys;
extern const char *const cfg_sections[];
extern const size_t cfg_nsections;

/* The flags (CFG_LOAD_*) of the cfg_load_flags in progress in this thread,
 * for the checks that depend on them. */
extern __thread int cfg_load_flags_now;

#endif
