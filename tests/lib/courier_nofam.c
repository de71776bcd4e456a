/* courier_nofam.c - a libfam.so.0 for the test Courier (tests/lib/courier.sh)
 * that says at once that there is no File Alteration Monitor.
 *
 * Courier's imapd watches Maildirs through libfam (Debian: libgamin0). With
 * no gam_server on the machine (it is part of a package we do not install),
 * libgamin retries its socket for about 1.2 s on every FAMOpen, and imapd
 * opens one on every SELECT, APPEND and NOOP: a test run against it would
 * spend most of its time waiting. Without FAM, imapd does what it does when
 * gam_server is not running (it says so in an untagged ALERT once) and
 * rescans the Maildir instead; everything else it does is unchanged. This
 * is not Courier code: only the seven entry points imapd links to.
 */
#include <errno.h>

typedef struct {
	int fd;
	int *client;
} FAMConnection;
typedef struct {
	int reqnum;
} FAMRequest;
typedef struct FAMEvent FAMEvent;

int FAMErrno = 0;

int FAMOpen(FAMConnection *fc);
int FAMClose(FAMConnection *fc);
int FAMMonitorDirectory(FAMConnection *fc, const char *filename, FAMRequest *fr, void *userData);
int FAMMonitorFile(FAMConnection *fc, const char *filename, FAMRequest *fr, void *userData);
int FAMCancelMonitor(FAMConnection *fc, const FAMRequest *fr);
int FAMNextEvent(FAMConnection *fc, FAMEvent *fe);
int FAMPending(FAMConnection *fc);

int FAMOpen(FAMConnection *fc)
{
	(void)fc;
	FAMErrno = 1;
	errno = ECONNREFUSED;
	return -1;
}

int FAMClose(FAMConnection *fc)
{
	(void)fc;
	return 0;
}

int FAMMonitorDirectory(FAMConnection *fc, const char *filename, FAMRequest *fr, void *userData)
{
	(void)fc, (void)filename, (void)fr, (void)userData;
	return -1;
}

int FAMMonitorFile(FAMConnection *fc, const char *filename, FAMRequest *fr, void *userData)
{
	(void)fc, (void)filename, (void)fr, (void)userData;
	return -1;
}

int FAMCancelMonitor(FAMConnection *fc, const FAMRequest *fr)
{
	(void)fc, (void)fr;
	return -1;
}

int FAMNextEvent(FAMConnection *fc, FAMEvent *fe)
{
	(void)fc, (void)fe;
	return -1;
}

int FAMPending(FAMConnection *fc)
{
	(void)fc;
	return 0;
}
