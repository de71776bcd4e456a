/* log.c - key=value log lines on stderr. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum mf_log_level min_level = MF_LOG_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void (*hook)(void *arg), (*hook_after)(void *arg);
static void *hook_arg;
static int file_fd = -1;

int mf_log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&lock);
	if (file_fd >= 0)
		close(file_fd);
	file_fd = fd;
	pthread_mutex_unlock(&lock);
	return 0;
}

void mf_log_set_hook(void (*before_write)(void *arg), void (*after_write)(void *arg),
		     void *arg)
{
	pthread_mutex_lock(&lock);
	hook = before_write;
	hook_after = after_write;
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
	if (hook_after)
		hook_after(hook_arg);
	if (file_fd >= 0 && write(file_fd, line, len) < 0 && errno != EINTR) {
		/* a full disk or a removed file: say so once on stderr, then
		 * stop writing to it */
		static const char msg[] = "mailferry: cannot write the --log file; logging "
					  "to stderr only\n";
		w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
		close(file_fd);
		file_fd = -1;
	}
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
