/* toml_shim: toml++ behind a C interface (see toml_shim.h).
 *
 * The Debian package builds toml++ as a shared library and its pkg-config
 * flags say so; libcommon.a is linked into every program, which should not
 * need libtomlplusplus.so, so the header-only mode is forced here. Its
 * symbols live in an ABI namespace of their own and cannot clash. */
#undef TOML_HEADER_ONLY
#undef TOML_SHARED_LIB
#define TOML_HEADER_ONLY 1
#define TOML_ENABLE_FORMATTERS 0

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "toml_shim.h"

namespace {

/* Deeper documents are refused: a configuration has three levels. */
constexpr int MAX_DEPTH = 32;

/* Thrown from the conversion: refused at a position. */
struct refused {
	int line, column;
	const char *msg;
};

char *
dup(std::string_view s)
{
	char *p;

	/* C strings end at NUL: "a\u0000b" would silently read as "a". */
	if (s.find('\0') != std::string_view::npos)
		throw refused{ 0, 0, "NUL character in a string or key" };
	p = static_cast<char *>(std::malloc(s.size() + 1));

	if (p == nullptr)
		throw std::bad_alloc();
	std::memcpy(p, s.data(), s.size());
	p[s.size()] = '\0';
	return p;
}

void
set_pos(tshim_node *out, const toml::source_region &r)
{
	out->line = r.begin.line > 0x7fffffff ? 0 : (int)r.begin.line;
	out->column = r.begin.column > 0x7fffffff ? 0 : (int)r.begin.column;
}

template <typename T>
char *
text_of(const T &v)
{
	std::ostringstream os;

	os << v;
	return dup(os.str());
}

void convert(const toml::node &n, tshim_node *out, int depth);

void
alloc_kids(tshim_node *out, size_t n)
{
	if (n == 0)
		return;
	out->kids = static_cast<tshim_node *>(std::calloc(n, sizeof(*out->kids)));
	if (out->kids == nullptr)
		throw std::bad_alloc();
}

void
convert_table(const toml::table &t, tshim_node *out, int depth)
{
	std::vector<std::pair<const toml::key *, const toml::node *>> members;

	out->type = TSHIM_TABLE;
	out->inline_table = t.is_inline();
	for (auto &&[k, v] : t)
		members.emplace_back(&k, &v);
	/* toml++ keeps keys sorted; C callers want them as written. */
	std::stable_sort(members.begin(), members.end(), [](auto &a, auto &b) {
		const auto &ra = a.first->source().begin, &rb = b.first->source().begin;
		return ra.line != rb.line ? ra.line < rb.line : ra.column < rb.column;
	});
	alloc_kids(out, members.size());
	for (auto &[k, v] : members) {
		tshim_node *kid = &out->kids[out->nkids++];

		try {
			kid->key = dup(k->str());
		} catch (refused &e) {
			set_pos(kid, k->source());
			e.line = kid->line;
			e.column = kid->column;
			throw;
		}
		convert(*v, kid, depth + 1);
		/* A member is where its key was written (a [header] for tables). */
		if (k->source().begin.line > 0)
			set_pos(kid, k->source());
	}
}

void
convert(const toml::node &n, tshim_node *out, int depth)
{
	set_pos(out, n.source());
	if (depth > MAX_DEPTH)
		throw refused{ out->line, out->column, "tables or arrays nested too deep" };
	switch (n.type()) {
	case toml::node_type::table:
		convert_table(*n.as_table(), out, depth);
		break;
	case toml::node_type::array: {
		const toml::array &a = *n.as_array();

		out->type = TSHIM_ARRAY;
		alloc_kids(out, a.size());
		for (const toml::node &e : a)
			convert(e, &out->kids[out->nkids++], depth + 1);
		break;
	}
	case toml::node_type::string:
		out->type = TSHIM_STRING;
		try {
			out->str = dup(n.as_string()->get());
		} catch (refused &e) {
			e.line = out->line;
			e.column = out->column;
			throw;
		}
		break;
	case toml::node_type::integer:
		out->type = TSHIM_INT;
		out->i = n.as_integer()->get();
		break;
	case toml::node_type::floating_point:
		out->type = TSHIM_FLOAT;
		out->f = n.as_floating_point()->get();
		break;
	case toml::node_type::boolean:
		out->type = TSHIM_BOOL;
		out->b = n.as_boolean()->get();
		break;
	case toml::node_type::date:
		out->type = TSHIM_DATETIME;
		out->str = text_of(n.as_date()->get());
		break;
	case toml::node_type::time:
		out->type = TSHIM_DATETIME;
		out->str = text_of(n.as_time()->get());
		break;
	case toml::node_type::date_time:
		out->type = TSHIM_DATETIME;
		out->str = text_of(n.as_date_time()->get());
		break;
	default:
		throw std::bad_alloc();	/* no other node types exist */
	}
}

void
free_kids(tshim_node *n)
{
	for (size_t i = 0; i < n->nkids; i++)
		free_kids(&n->kids[i]);
	std::free(n->kids);
	std::free(n->key);
	std::free(n->str);
}

/* toml++ builds and destroys dotted keys recursively, so a line such as
 * "[a.a.a...]" with 100000 parts exhausts the stack. A key cannot span
 * lines, so bounding the dots on each line bounds the depth. */
constexpr size_t MAX_DOTS_PER_LINE = 256;

bool
dots_ok(const char *buf, size_t len, int *line)
{
	size_t dots = 0;

	*line = 1;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			dots = 0;
			++*line;
		} else if (buf[i] == '.' && ++dots > MAX_DOTS_PER_LINE) {
			return false;
		}
	}
	return true;
}

void
set_err(tshim_error *err, int line, int column, const char *msg)
{
	if (err == nullptr)
		return;
	err->line = line;
	err->column = column;
	std::snprintf(err->msg, sizeof(err->msg), "%s", msg);
}

} // namespace

extern "C" struct tshim_node *
tshim_parse(const char *buf, size_t len, const char *source, struct tshim_error *err)
{
	tshim_node *root = nullptr;
	int line;

	if (!dots_ok(buf, len, &line)) {
		set_err(err, line, 1, "more than 256 dots on one line (keys nested too deep?)");
		return nullptr;
	}
	try {
		toml::table tbl = toml::parse(std::string_view(buf, len),
		    std::string_view(source ? source : ""));

		root = static_cast<tshim_node *>(std::calloc(1, sizeof(*root)));
		if (root == nullptr)
			throw std::bad_alloc();
		convert(tbl, root, 0);
		return root;
	} catch (const toml::parse_error &e) {
		const toml::source_position &p = e.source().begin;

		set_err(err, (int)std::min<toml::source_index>(p.line, 0x7fffffff),
		    (int)std::min<toml::source_index>(p.column, 0x7fffffff),
		    std::string(e.description()).c_str());
	} catch (const refused &e) {
		set_err(err, e.line, e.column, e.msg);
	} catch (const std::bad_alloc &) {
		set_err(err, 0, 0, "out of memory");
	} catch (...) {
		set_err(err, 0, 0, "unexpected parser failure");
	}
	if (root != nullptr) {
		free_kids(root);
		std::free(root);
	}
	return nullptr;
}

extern "C" void
tshim_free(struct tshim_node *root)
{
	if (root == nullptr)
		return;
	free_kids(root);
	std::free(root);
}

extern "C" const struct tshim_node *
tshim_get(const struct tshim_node *table, const char *key)
{
	if (table == nullptr || table->type != TSHIM_TABLE)
		return nullptr;
	for (size_t i = 0; i < table->nkids; i++)
		if (std::strcmp(table->kids[i].key, key) == 0)
			return &table->kids[i];
	return nullptr;
}

extern "C" const char *
tshim_type_name(enum tshim_type t)
{
	switch (t) {
	case TSHIM_TABLE: return "table";
	case TSHIM_ARRAY: return "array";
	case TSHIM_STRING: return "string";
	case TSHIM_INT: return "integer";
	case TSHIM_FLOAT: return "float";
	case TSHIM_BOOL: return "boolean";
	case TSHIM_DATETIME: return "date-time";
	}
	return "value";
}
