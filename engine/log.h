/* log.h - log lines with key=value fields, to stderr (and a file: --log).
 *
 *   mf_log(MF_LOG_INFO, "event=store mailbox=%s folder=%s", ...);
 *
 * Thread-safe (one line is written with one write()). Never pass a secret:
 * the drivers' structs keep secrets in fields that are never formatted. */
#ifndef MF_LOG_H
#define MF_LOG_H

enum mf_log_level { MF_LOG_DEBUG, MF_LOG_INFO, MF_LOG_WARN, MF_LOG_ERROR };

void mf_log_set_level(enum mf_log_level lvl);
enum mf_log_level mf_log_level(void);
void mf_log(enum mf_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Also append every line to `path` (created 0600 if missing; O_APPEND, so
 * runs add to it and one line is one write). 0, or -1 with errno. Call once,
 * before any thread logs. */
int mf_log_open_file(const char *path);

/* For a display that owns the bottom of the terminal (run's progress): the
 * hooks run, under the log lock and on the logging thread, before and after
 * every log line is written to stderr: `before` erases the display, `after`
 * draws it again below the line (from text the display prepared, not from
 * live state), so that log lines scroll above it. mf_log_lock/unlock keep
 * the display's own writes from mixing with log lines. */
void mf_log_set_hook(void (*before_write)(void *arg), void (*after_write)(void *arg),
		     void *arg);
void mf_log_lock(void);
void mf_log_unlock(void);

/* Quote a value for a key=value field if it needs it ("a b" -> "\"a b\"").
 * Writes into buf (always NUL-terminated) and returns buf. */
const char *mf_log_quote(const char *value, char *buf, unsigned size);

#endif
