/* log.c - key=value log lines on stderr. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum mf_log_level min_level = MF_LOG_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void (*hook)(void *arg);
static void *hook_arg;

void mf_log_set_hook(void (*before_write)(void *arg), void *arg)
{
	pthread_mutex_lock(&lock);
	hook = before_write;
	hook_arg = arg;
	pthread_mutex_unlock(&lock);
}

void mf_log_lock(void)
{
	pthread_mutex_lock(&lock);
}

void mf_log_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

enum mf_log_level mf_log_level(void)
{
	return min_level;
}

void mf_log_set_level(enum mf_log_level lvl)
{
	min_level = lvl;
}

void mf_log(enum mf_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	if (lvl < min_level)
		return;
	char line[2048];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, " level=%s ", names[lvl]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	pthread_mutex_lock(&lock);
	if (hook)
		hook(hook_arg);
	ssize_t w = write(STDERR_FILENO, line, len);
	pthread_mutex_unlock(&lock);
	(void)w; /* nowhere to report a failing stderr */
}

const char *mf_log_quote(const char *value, char *buf, unsigned size)
{
	if (!value)
		value = "";
	int plain = *value != '\0';
	for (const char *p = value; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
			plain = 0;
	if (plain) {
		snprintf(buf, size, "%s", value);
		return buf;
	}
	unsigned w = 0;
	if (size < 3) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	buf[w++] = '"';
	for (const char *p = value; *p && w + 3 < size; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			buf[w++] = '\\';
			buf[w++] = (char)c;
		} else if (c < 0x20) {
			buf[w++] = ' ';
		} else {
			buf[w++] = (char)c;
		}
	}
	buf[w++] = '"';
	buf[w] = '\0';
	return buf;
}
