/* toml_shim: the one C entry to toml++ (C++17). A document becomes a plain
 * tree that C walks: tables keep their keys in source order, every node
 * carries the line and column where it was written. */
#ifndef MANTA_TOML_SHIM_H
#define MANTA_TOML_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tshim_type {
	TSHIM_TABLE = 0,
	TSHIM_ARRAY,
	TSHIM_STRING,
	TSHIM_INT,
	TSHIM_FLOAT,
	TSHIM_BOOL,
	TSHIM_DATETIME,		/* date, time or date-time; text in str */
};

struct tshim_node {
	enum tshim_type type;
	int line;		/* 1-based; 0 when unknown */
	int column;
	bool inline_table;	/* TSHIM_TABLE written as { ... } */
	char *key;		/* member name inside a table, NULL in arrays and the root */
	char *str;		/* TSHIM_STRING, TSHIM_DATETIME */
	int64_t i;		/* TSHIM_INT */
	double f;		/* TSHIM_FLOAT */
	bool b;			/* TSHIM_BOOL */
	struct tshim_node *kids;	/* table members (source order) or array elements */
	size_t nkids;
};

struct tshim_error {
	int line;
	int column;
	char msg[384];
};

/* Parses len bytes of TOML (source names it in toml++'s messages). Returns
 * the root table, or NULL with *err filled (line 0 when not a syntax error,
 * e.g. out of memory). */
struct tshim_node *tshim_parse(const char *buf, size_t len, const char *source,
    struct tshim_error *err);
void tshim_free(struct tshim_node *root);
/* The member named key of a table, or NULL. */
const struct tshim_node *tshim_get(const struct tshim_node *table, const char *key);
const char *tshim_type_name(enum tshim_type t);

#ifdef __cplusplus
}
#endif

#endif
