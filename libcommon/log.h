/* log: messages to stderr in the skalibs style, "prog: level: text". */
#ifndef MANTA_LOG_H
#define MANTA_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Sets the program name printed before every line and the lowest level shown. */
void log_init(const char *prog, enum log_level min);
void log_set_level(enum log_level min);
/* "DEBUG", "INFO", "WARNING", "ERROR" (any case) -> level; -1 if unknown. */
int log_level_parse(const char *s);
const char *log_prog(void);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* warn/error append ": <strerror(errno)>"; the x variants do not. errno is preserved. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "prog: fatal: ..." then exit(code). */
void log_fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void log_fatalx(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#endif
